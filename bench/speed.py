"""Training speed on MovieLens 100K u1 (80,000 training rows), in one run, at each batch size: one training epoch,
after a warm-up epoch, of fastai's `collab_learner`, of tabcollab's default learner (sparse gradients for the user
and item tables, `lazy_adam`; each user's id and history), of the same without the history (`history=False`), of
the same with `sparse=False` (dense, fused AdamW), and of a raw PyTorch loop (pre-built tensors, `torch.optim.Adam`,
no fastai) driving tabcollab's own model, dense, which stands for the limit.

    python bench/speed.py [--data path/to/ml-100k] [--bs 64,1024] [--out results] [--docs]
"""
import platform
from common import *


class TrainTime(Callback):
    "Seconds spent in the training part of each epoch (validation excluded)"
    order = 0
    def before_fit(self): self.times = []
    def before_train(self): self.start = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter()-self.start)


def learner_epoch(learn):
    "Seconds of the second of two training epochs"
    cb = TrainTime()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, cbs=cb)
    return cb.times[-1]


def raw_epoch(dls, model, bs, lr=5e-3):
    "Seconds of one epoch of a plain PyTorch loop over pre-built tensors, after one warm-up epoch"
    dl = dls.train
    cats,conts,bag_ids,ys = dl.cats,dl.conts,dl.bag_ids,dl.ys
    bags = [dl.dataset.bags[n] for n in dl.dataset.multicat_names]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    def epoch():
        perm = torch.randperm(len(ys))
        for i in range(0, len(perm)-bs+1, bs):
            idx = perm[i:i+bs]
            x = (cats[idx], conts[idx], *[b[bag_ids[idx,j]] for j,b in enumerate(bags)])
            loss = F.mse_loss(model(*x), ys[idx])
            opt.zero_grad(); loss.backward(); opt.step()
    epoch()
    start = time.perf_counter(); epoch()
    return time.perf_counter()-start


def main():
    p = report_parser(__doc__)
    p.add_argument('--bs', default='64,1024')
    args = p.parse_args()
    path = ml100k(args.data)
    df,valid_idx = official_split(path, 'u1')
    _,items = load_movielens(path)
    n_train,rows,res = len(df)-len(valid_idx),[],{}
    for bs in map(int, args.bs.split(',')):
        set_seed(42)
        fa = learner_epoch(collab_learner(fastai_collab_dls(df, valid_idx, bs=bs), n_factors=50, y_range=(0,5.5)))
        set_seed(42)
        dls = CollabMultiCatDataLoaders.from_df(df, items=items, user_name='user', item_name='item',
                                                rating_name='rating', multicat_names=['genres'],
                                                valid_idx=valid_idx, bs=bs)
        tc = learner_epoch(collab_multicat_learner(dls))
        set_seed(42)
        dls_ids = CollabMultiCatDataLoaders.from_df(df, items=items, user_name='user', item_name='item',
                                                    rating_name='rating', multicat_names=['genres'],
                                                    valid_idx=valid_idx, bs=bs, history=False)
        ids = learner_epoch(collab_multicat_learner(dls_ids))
        set_seed(42)
        dense = learner_epoch(collab_multicat_learner(dls, sparse=False))
        set_seed(42)
        # torch's Adam takes dense gradients only
        raw = raw_epoch(dls, collab_multicat_learner(dls, sparse=False).model, bs)
        res[bs] = {'fastai_s': fa, 'tabcollab_s': tc, 'tabcollab_ids_s': ids, 'tabcollab_dense_s': dense, 'raw_s': raw}
        for name,s in [('fastai collab_learner', fa), ('tabcollab default learner (sparse)', tc),
                       ('tabcollab default, history=False', ids),
                       ('tabcollab learner, sparse=False', dense), ('raw PyTorch loop, tabcollab model (dense)', raw)]:
            rows.append({'bs': bs, 'loop': name, 'epoch (s)': f'{s:.2f}', 'samples/s': f'{n_train/s:,.0f}',
                         'ms/batch': f'{1000*s/(n_train//bs):.2f}'})
        rows.append({'bs': bs, 'loop': '**tabcollab default / fastai**', 'epoch (s)': f'{tc/fa:.2f}'})
        rows.append({'bs': bs, 'loop': '**tabcollab history=False / fastai**', 'epoch (s)': f'{ids/fa:.2f}'})
        rows.append({'bs': bs, 'loop': '**tabcollab sparse=False / fastai**', 'epoch (s)': f'{dense/fa:.2f}'})
        rows.append({'bs': bs, 'loop': '**tabcollab sparse=False / raw loop**', 'epoch (s)': f'{dense/raw:.2f}'})
        print(f'bs={bs}: fastai {fa:.2f}s  tabcollab {tc:.2f}s  dense {dense:.2f}s  raw {raw:.2f}s', flush=True)
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}")
    md = '\n'.join([f"### Training speed, MovieLens 100K u1 ({n_train:,} training rows)\n",
                    "One training epoch (validation excluded) after a warm-up epoch. The raw loop indexes the same "
                    "pre-built tensors with `torch.optim.Adam` and no fastai.\n",
                    markdown_table(rows, ['bs','loop','epoch (s)','samples/s','ms/batch']), f"\n_{env}_\n"])
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'speed.md').write_text(md)
    (out/'speed.json').write_text(json.dumps({'n_train': n_train, 'results': res, 'env': env}, indent=1))
    if args.docs: write_docs_block('speed', md)
    print(md)


if __name__ == '__main__': main()
