"""Accuracy on MovieLens 100K: every model on the five official splits u1..u5 (train uN.base, validate uN.test), in
one run, with the same epochs and seeds, plus a strict cold-start protocol. Writes markdown and JSON to --out and,
with --docs, the markdown into the documentation (nbs/benchmarks.md).

    python bench/accuracy.py [--data path/to/ml-100k] [--splits u1,u2,u3,u4,u5] [--out results] [--docs]

For each model: RMSE per split, mean and standard deviation, RMSE on the cold subset (test rows whose item has at
most 5 ratings in the training split) and the fit time. Strict cold start: 10% of the items (seeded) are held out
entirely; models train on the other ratings and predict every rating of the held-out items.
"""
import platform
from common import *

EPOCHS,SEED = 5,42
FASTAI = dict(n_factors=50, y_range=(0,5.5))
FIT_FASTAI = lambda l: l.fit_one_cycle(EPOCHS, 5e-3, wd=0.1)
FIT_DEFAULT = lambda l: l.fit_one_cycle(EPOCHS)


def genre_flags(path):
    "The 19 genre flag columns of u.item (item id first)"
    genres = pd.read_csv(path/'u.genre', sep='|', names=['genre','idx'])['genre'].tolist()
    items = pd.read_csv(path/'u.item', sep='|', names=['item','title','release','video','url',*genres],
                        encoding='latin-1')
    return items[['item', *genres]],genres


def users_table(path, train):
    "Demographics of each user and the items the user rated in `train` (an SVD++-style implicit-feedback bag)"
    users = movielens_users(path)
    rated = train.groupby('user')['item'].agg(lambda s: list(s.astype(str)))
    users['rated'] = users.user.map(rated).map(lambda o: o if isinstance(o, list) else [])
    return users


# Each model: name -> function(df, valid_idx, ctx) returning the validation predictions (valid_idx order) and fit time
def bias_model(**kw):
    def f(df, valid_idx, ctx):
        train,valid = df.drop(index=valid_idx),df.iloc[valid_idx]
        start = time.perf_counter()
        m = BiasBaseline(**kw).fit(train.user, train.item, train.rating)
        secs = time.perf_counter()-start
        return m.predict(valid.user, valid.item),secs
    return f


def learner_model(make, fit):
    def f(df, valid_idx, ctx):
        set_seed(SEED, reproducible=True)
        learn = make(df, valid_idx, ctx)
        _,secs,preds,_ = fit_and_score(learn, fit)
        return preds.flatten().numpy(),secs
    return f


def fastai_collab(use_nn=False):
    return learner_model(lambda df,v,ctx: collab_learner(fastai_collab_dls(df, v), use_nn=use_nn, **FASTAI), FIT_FASTAI)


def fastai_tabular_flags(df, valid_idx, ctx):
    "fastai's tabular_learner: user and item as categories, the 19 genre flags as 0/1 continuous columns"
    flags,genres = ctx['flags']
    data = df.merge(flags, on='item', how='left')
    to = TabularPandas(data[['user','item','rating',*genres]], [Categorify, FillMissing, Normalize],
                       cat_names=['user','item'], cont_names=genres, y_names='rating',
                       splits=IndexSplitter(list(valid_idx))(data))
    return tabular_learner(to.dataloaders(bs=64), y_range=(0,5.5))


def tabcollab_default(df, valid_idx, ctx, **kw):
    dls = CollabMultiCatDataLoaders.from_df(df, items=ctx['items'], user_name='user', item_name='item',
                                            rating_name='rating', multicat_names=['genres'], valid_idx=valid_idx, **kw)
    return collab_multicat_learner(dls)


BEST = ("genres, the user's demographics and a bag of all the items the user rated (SVD++ style, training rows only), "
        "`wd=0.2`, `bs=64`")
def tabcollab_best(df, valid_idx, ctx):
    dls = CollabMultiCatDataLoaders.from_df(df, items=ctx['items'],
                                            users=users_table(ctx['path'], df.drop(index=valid_idx)),
                                            multicat_names=['genres','rated'], valid_idx=valid_idx, bs=64,
                                            history=False)  # its own bag, all the rated items, not the default's
    return collab_multicat_learner(dls, wd=0.2)


MODELS = {
    'global mean': bias_model(users=False, items=False),
    'user + item bias': bias_model(),
    'fastai collab_learner (dot)': fastai_collab(),
    'fastai collab_learner (use_nn=True)': fastai_collab(use_nn=True),
    'fastai tabular_learner + 19 genre flags': learner_model(fastai_tabular_flags, FIT_FASTAI),
    'tabcollab default': learner_model(tabcollab_default, FIT_DEFAULT),
    'tabcollab default (history=False)': learner_model(partial(tabcollab_default, history=False), FIT_DEFAULT),
    'tabcollab best': learner_model(tabcollab_best, FIT_DEFAULT),
}
COLD = ['user bias only', 'fastai collab_learner (dot)', 'tabcollab default']


def cold_mask(df, valid_idx, max_ratings=5):
    "Validation rows whose item has at most `max_ratings` ratings in the training rows"
    counts = df.drop(index=valid_idx)['item'].value_counts()
    return df.iloc[valid_idx]['item'].map(counts).fillna(0).to_numpy() <= max_ratings


def strict_cold_start(ratings, ctx, frac=0.1, seed=SEED):
    "Hold out `frac` of the items entirely; train on the rest; RMSE on every rating of the held-out items"
    item_ids = np.sort(ratings['item'].unique())
    held = np.random.default_rng(seed).choice(item_ids, int(frac*len(item_ids)), replace=False)
    valid_idx = np.flatnonzero(ratings['item'].isin(held).to_numpy())
    targs = ratings['rating'].to_numpy()[valid_idx]
    models = {'user bias only': bias_model(items=False),
              'fastai collab_learner (dot)': MODELS['fastai collab_learner (dot)'],
              'tabcollab default': MODELS['tabcollab default']}
    res = {}
    for name,f in models.items():
        preds,secs = f(ratings, valid_idx, ctx)
        res[name] = {'rmse': rmse(torch.tensor(preds), torch.tensor(targs)), 'fit_s': secs}
        print(f'  strict cold start  {name:45s} {res[name]["rmse"]:.4f}', flush=True)
    return res,len(held),len(valid_idx)


def report(results, splits, cold, n_held, n_rows, env):
    "The markdown report"
    rows = []
    for name,r in results.items():
        per = [r['rmse'][k] for k in splits]
        row = {'model': name, **{k: r['rmse'][k] for k in splits},
               'mean ± sd': f'{np.mean(per):.4f} ± {np.std(per, ddof=1) if len(per)>1 else 0:.4f}',
               'cold subset': f"{np.mean([r['cold'][k] for k in splits]):.4f}",
               'fit (s)': f"{np.mean([r['fit_s'][k] for k in splits]):.1f}"}
        rows.append(row)
    md = ["### MovieLens 100K, official splits\n",
          f"RMSE on uN.test after training on uN.base; every learner `fit_one_cycle({EPOCHS})`, seed {SEED}. "
          "fastai's models use `n_factors=50, y_range=(0,5.5)` and `fit_one_cycle(5, 5e-3, wd=0.1)`; "
          f"tabcollab's default is `collab_multicat_learner(dls).fit_one_cycle(5)`; tabcollab best: {BEST}. "
          "Cold subset: test rows whose item has at most 5 ratings in the training split (mean over the splits). "
          "Fit time: mean seconds per split.\n",
          markdown_table(rows, ['model', *splits, 'mean ± sd', 'cold subset', 'fit (s)']),
          "\n### Strict cold start\n",
          f"10% of the items ({n_held}, seed {SEED}) held out entirely: trained on the other ratings, "
          f"RMSE on all {n_rows:,} ratings of the held-out items. "
          "fastai can only give them its `#na#` embedding; tabcollab uses their genres.\n",
          markdown_table([{'model': k, 'RMSE': v['rmse']} for k,v in cold.items()], ['model','RMSE']),
          f"\n_{env}_\n"]
    return '\n'.join(md)


def main():
    p = report_parser(__doc__)
    p.add_argument('--splits', default='u1,u2,u3,u4,u5')
    p.add_argument('--models', default=','.join(MODELS), help='comma-separated subset of: ' + ', '.join(MODELS))
    p.add_argument('--no-strict', action='store_true', help='skip the strict cold-start protocol')
    args = p.parse_args()
    path,splits = ml100k(args.data),args.splits.split(',')
    ratings,items = load_movielens(path)
    ctx = {'path': path, 'items': items, 'flags': genre_flags(path)}
    results = {m: {'rmse': {}, 'cold': {}, 'fit_s': {}} for m in args.models.split(',')}
    for k in splits:
        df,valid_idx = official_split(path, k)
        targs,cold = torch.tensor(df['rating'].to_numpy()[valid_idx]),cold_mask(df, valid_idx)
        for name in results:
            preds,secs = MODELS[name](df, valid_idx, ctx)
            preds = torch.tensor(np.asarray(preds, dtype=np.float32))
            r = results[name]
            r['rmse'][k],r['cold'][k],r['fit_s'][k] = rmse(preds, targs),rmse(preds[cold], targs[cold]),secs
            print(f'{k} {name:45s} {r["rmse"][k]:.4f}  cold {r["cold"][k]:.4f} ({cold.sum()} rows)  {secs:5.1f}s',
                  flush=True)
    strict,n_held,n_rows = ({},0,0) if args.no_strict else strict_cold_start(ratings.astype({'rating': 'float32'}), ctx)
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}")
    md = report(results, splits, strict, n_held, n_rows, env)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'accuracy.md').write_text(md)
    (out/'accuracy.json').write_text(json.dumps({'splits': splits, 'models': results, 'strict_cold_start': strict,
                                                  'held_out_items': n_held, 'env': env}, indent=1))
    if args.docs: write_docs_block('accuracy', md)
    print(md)


if __name__ == '__main__': main()
