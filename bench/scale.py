"""Scale: a synthetic MovieLens of ML-25M's shape (25,000,095 ratings, 162,541 users, 59,047 items, genres), from
DataFrame to DataLoaders with tabcollab (genres included) and with fastai's `CollabDataLoaders.from_df` (ids only):
time and peak memory (RSS) of each, time to the first training batch, the rate at which each loader delivers
batches; one training epoch at bs=4096 with dense and with sparse embedding gradients (`sparse=True`, `lazy_adam`),
on the ratings and on their implicit version (ratings >= 4, 256 sampled negatives per batch); and top-10 lists for
every user (`recommend(None)`) with its peak memory. Then, on MovieLens 100K u1 (train u1.base, validate u1.test),
the accuracy of both: RMSE of the default rating model, P@10 / NDCG@10 of the default ranking model (`implicit=True,
min_rating=4`), each `fit_one_cycle(5)` with dense and with sparse gradients.

    python bench/scale.py [--n-ratings 25000095] [--bs 4096] [--no-epoch] [--no-fastai] [--no-implicit] [--data ml-100k]
                          [--no-ml100k] [--out results] [--docs]

Each library runs in a fresh process that first loads the saved frame, so its peak RSS is its own (the frame
included, reported separately).
"""
import argparse, platform, pickle, resource, subprocess, sys, tempfile
from common import *

SHAPE = dict(n_users=162_541, n_items=59_047, n_ratings=25_000_095)


def peak_gb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e6


def data_rate(dl, n_batches=200):
    "Rows per second delivered by `dl` over `n_batches` batches (after the first)"
    it = iter(dl)
    next(it)
    start,n = time.perf_counter(),0
    for _,b in zip(range(n_batches), it): n += len(b[0])
    return n/(time.perf_counter()-start)


class StepTimes(Callback):
    "Record the time between consecutive training batches (data, forward, loss, backward, step) and stop after `n`"
    order = 99
    def __init__(self, n): self.n,self.times = n,[]
    def before_fit(self): self.last = None
    def after_batch(self):
        now = time.perf_counter()
        if self.last is not None: self.times.append(now-self.last)
        self.last = now
        if len(self.times)>=self.n: raise CancelFitException()


def step_ms(learn, n=60, skip=10):
    "Median time of a training step, over `n` steps after the first `skip` (ms)"
    cb = StepTimes(n+skip)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[cb, TrainOnly()])
    return 1000*float(np.median(cb.times[skip:]))


def steps_worker(frame, bs, n):
    "Median step of the default learner, ratings then implicit, with the tabcollab on the path; print a JSON line"
    import tabcollab
    with open(frame, 'rb') as f: ratings,items = pickle.load(f)
    res = {'tabcollab': str(Path(tabcollab.__file__).parent)}
    for kind,kw in [('rating', {}), ('implicit', dict(implicit=True, min_rating=4))]:
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1,
                                                seed=42, bs=bs, **kw)
        res[f'step_ms_{kind}'] = step_ms(collab_multicat_learner(dls), n)
        print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
        del dls
    print('RESULT ' + json.dumps(res), flush=True)


def worker(lib, frame, bs, epoch, implicit=True):
    "Measure one library in this (fresh) process; print a JSON line"
    with open(frame, 'rb') as f: ratings,items = pickle.load(f)
    res = {'frame_rss_gb': peak_gb()}
    start = time.perf_counter()
    if lib=='fastai':
        dls = CollabDataLoaders.from_df(ratings[['user','item','rating']], valid_pct=0.1, seed=42, bs=bs)
    else:
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1,
                                                seed=42, bs=bs)
    res['from_df_s'],res['peak_rss_gb'] = time.perf_counter()-start,peak_gb()
    start = time.perf_counter(); next(iter(dls.train)); res['first_batch_s'] = time.perf_counter()-start
    res['data_rows_per_s'] = data_rate(dls.train)
    if epoch and lib=='tabcollab':
        for sparse in [True, False]:
            learn = collab_multicat_learner(dls, sparse=sparse)
            res.update({f'{k}_{"sparse" if sparse else "dense"}': v for k,v in one_epoch(learn).items()})
            print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
        start = time.perf_counter()
        recs = learn.recommend(None, n=10)
        res['recommend_all_s'] = time.perf_counter()-start
        res['recommend_users'],res['recommend_peak_rss_gb'] = int(recs.iloc[:,0].nunique()),peak_gb()
        print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
        del dls,learn,recs
        if implicit:
            idls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1,
                                                     seed=42, bs=bs, implicit=True, min_rating=4, history=False)
            for sparse in [True, False]:  # users by id: the default by history is in `implicit_worker`
                r = one_epoch(collab_multicat_learner(idls, sparse=sparse))
                res.update({f'{k}_implicit_{"sparse" if sparse else "dense"}': v for k,v in r.items()})
                print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
    print('RESULT ' + json.dumps(res), flush=True)


def implicit_worker(frame, bs):
    """The ranking learner with users by id (the previous default) and by history (the default): one epoch and the
    top-10 of every user each, in this process; print a JSON line"""
    with open(frame, 'rb') as f: ratings,items = pickle.load(f)
    res = {}
    for name,history in [('ids', False), ('history', True)]:
        start = time.perf_counter()
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1, seed=42,
                                                bs=bs, implicit=True, min_rating=4, history=history)
        res[f'from_df_s_{name}'] = time.perf_counter()-start
        learn = collab_multicat_learner(dls)
        res.update({f'{k}_{name}': v for k,v in one_epoch(learn).items()})
        ds = dls.train_ds
        res[f'batches_{name}'],res[f'positives_{name}'] = len(dls.train),int(ds.positives()[:ds.n_train].sum())
        res[f'bs_{name}'],res[f'n_neg_{name}'] = dls.train.bs,dls.train.n_neg
        print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
        start = time.perf_counter()
        recs = learn.recommend(None, n=10)
        res[f'recommend_all_s_{name}'] = time.perf_counter()-start
        res[f'recommend_users_{name}'] = int(recs.user.nunique())
        res[f'peak_rss_gb_{name}'] = peak_gb()
        print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
        del dls,learn,recs
    print('RESULT ' + json.dumps(res), flush=True)


def peers_worker(frame, threads=2):
    """One pass of LightFM (WARP, BPR) and `implicit` (BPR; ALS: one iteration) over the training positives (>= 4),
    in this process, on `threads` threads; print a JSON line"""
    import scipy.sparse as sp
    with open(frame, 'rb') as f: ratings,_ = pickle.load(f)
    _,valid = splits_of(len(ratings))
    train = ratings.drop(index=ratings.index[valid])
    pos = train[train.rating>=4]
    u,uid = pd.factorize(pos.user); i,iid = pd.factorize(pos.item)
    X = sp.csr_matrix((np.ones(len(pos), np.float32), (u, i)), shape=(len(uid), len(iid)))
    res = {'positives': int(X.nnz)}
    try:
        from lightfm import LightFM
        for loss in ['warp', 'bpr']:
            m = LightFM(loss=loss, no_components=50, random_state=42)
            start = time.perf_counter(); m.fit_partial(X.tocoo(), epochs=1, num_threads=threads)
            res[f'lightfm_{loss}_s'] = time.perf_counter()-start
            print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
    except ImportError: print("LightFM not installed (pip install lightfm-next): skipped", file=sys.stderr)
    try:
        from implicit.bpr import BayesianPersonalizedRanking
        from implicit.als import AlternatingLeastSquares
        kw = dict(factors=64, iterations=1, num_threads=threads, random_state=42)
        for name,m in [('bpr', BayesianPersonalizedRanking(**kw)), ('als', AlternatingLeastSquares(**kw))]:
            start = time.perf_counter(); m.fit(X, show_progress=False)
            res[f'implicit_{name}_s'] = time.perf_counter()-start
            print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
    except ImportError: print("implicit not installed (pip install implicit): skipped", file=sys.stderr)
    print('RESULT ' + json.dumps(res), flush=True)


def splits_of(n, valid_pct=0.1, seed=42):
    "The training and validation row positions `from_df(valid_pct=0.1, seed=42)` draws"
    torch.manual_seed(seed)
    idx = torch.randperm(n).numpy()
    return idx[int(valid_pct*n):],idx[:int(valid_pct*n)]


def ranking_report(rk, pe, shape, env):
    "The markdown of `--ranking`: the ranking learner by id and by history beside one pass of the peers"
    C = ['', 'one epoch / pass (s)', 'batches', 'top-10 for every user (s)', 'peak RSS (GB)']
    rows = [{'': f'tabcollab, users {label}', C[1]: f"{rk[f'epoch_s_{n}']:.1f}", C[2]: f"{rk[f'batches_{n}']:,}",
             C[3]: f"{rk[f'recommend_all_s_{n}']:.0f}", C[4]: f"{rk[f'peak_rss_gb_{n}']:.2f}"}
            for n,label in [('ids', 'by id (`history=False`)'), ('history', 'by history (the default)')]]
    rows.append({'': '  history / id', C[1]: f"{rk['epoch_s_history']/rk['epoch_s_ids']:.2f}x",
                 C[3]: f"{rk['recommend_all_s_history']/rk['recommend_all_s_ids']:.2f}x"})
    peers = [('lightfm_warp_s', 'LightFM WARP (50)'), ('lightfm_bpr_s', 'LightFM BPR (50)'),
             ('implicit_bpr_s', 'implicit BPR (64)'), ('implicit_als_s', 'implicit ALS (64), one iteration')]
    rows += [{'': label, C[1]: f"{pe[k]:.1f}"} for k,label in peers if k in pe]
    missing = [label for k,label in peers if k not in pe]
    return '\n'.join([
        f"### Ranking at scale: {shape['n_ratings']:,} ratings, {shape['n_users']:,} users, "
        f"{shape['n_items']:,} items\n",
        f"`synthetic_movielens` at ML-25M's shape, `valid_pct=0.1`, positives: ratings >= 4 "
        f"({rk['positives_ids']:,} training positives). tabcollab: `from_df(..., implicit=True, min_rating=4)` and "
        "the default ranking learner, one training epoch (validation skipped; by id "
        f"{rk['bs_ids']:,} rows a batch against {rk['n_neg_ids']:,} drawn negatives; by history an "
        f"epoch goes over every user once, {rk['bs_history']:,} users a batch against "
        f"{rk['n_neg_history']:,} drawn negatives, a random 30-70% of each history as targets), then "
        "`recommend` of the top 10 for "
        "every user, seen items excluded. The peers: one pass over the same positives, 2 threads, in one process."
        + (f" Not installed, skipped: {', '.join(missing)}." if missing else '') + "\n",
        markdown_table(rows, C), f"\n_{env}_\n"])


def ml100k_worker(path):
    "u1 accuracy and fit time of the default rating and ranking learners, dense and sparse; print a JSON line"
    df,valid_idx = official_split(ml100k(path), 'u1')
    _,items = load_movielens(ml100k(path))
    res = {}
    for kind in ['rating', 'ranking']:
        for sparse in [False, True]:
            set_seed(42, reproducible=True)
            extra = dict(implicit=True, min_rating=4) if kind=='ranking' else {}
            dls = CollabMultiCatDataLoaders.from_df(df, items=items, user_name='user', item_name='item',
                                                    rating_name='rating', multicat_names=['genres'],
                                                    valid_idx=valid_idx, **extra)
            learn = collab_multicat_learner(dls, sparse=sparse)
            start = time.perf_counter()
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5)
            secs = time.perf_counter()-start
            vals = dict(zip(learn.recorder.metric_names[2:-1], map(float, learn.recorder.values[-1][1:])))
            res[f'{kind}_{"sparse" if sparse else "dense"}'] = {'fit_s': secs, **vals}
            print('PARTIAL ' + json.dumps(res), file=sys.stderr, flush=True)
    print('RESULT ' + json.dumps(res), flush=True)


def one_epoch(learn):
    "Time, rows/s and peak RSS of one training epoch (validation skipped)"
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[TrainOnly()])
    secs = time.perf_counter()-start
    return {'epoch_s': secs, 'epoch_rows_per_s': learn.dls.train.n/secs, 'epoch_peak_rss_gb': peak_gb()}


class TrainOnly(Callback):
    "Skip validation (25M-row epochs are timed on their training part)"
    def before_validate(self): raise CancelValidException()


def run(lib, frame, bs, epoch, implicit=True, data=None, steps=0, lib_path=None):
    cmd = ([sys.executable, __file__, '--worker', lib, '--frame', str(frame), '--bs', str(bs), '--steps', str(steps)]
           + (['--epoch'] if epoch else []) + ([] if implicit else ['--no-implicit']))
    # the workers run in bench/: a relative path would not be found
    if data: cmd += ['--data', str(Path(data).resolve())]
    print(f"measuring {lib}{f' ({lib_path})' if lib_path else ''}...", flush=True)
    # another commit's library first on the path (its worktree), for a before/after in one run
    env = {**os.environ, 'PYTHONPATH': str(lib_path)} if lib_path else None
    # stderr: progress, to the console
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent, env=env)
    line = next((l for l in out.stdout.splitlines() if l.startswith('RESULT ')), None)
    if line is None: raise SystemExit(f"{lib} worker failed (its errors are above)")
    return json.loads(line[7:])


def steps_before_after(frame, bs, n, ref=None):
    "Step times of this tabcollab and (`ref`) of another commit's, each in a fresh process on the same frame"
    res = {'this': run('steps', frame, bs, False, steps=n)}
    if ref:
        root = Path(__file__).resolve().parents[1]
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(['git', 'worktree', 'add', '--detach', d, ref], cwd=root, check=True, capture_output=True)
            try: res[ref] = run('steps', frame, bs, False, steps=n, lib_path=d)
            finally: subprocess.run(['git', 'worktree', 'remove', '--force', d], cwd=root, capture_output=True)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n-ratings', type=int, default=SHAPE['n_ratings'])
    p.add_argument('--bs', type=int, default=4096)
    p.add_argument('--no-epoch', action='store_true', help="skip the training epochs and recommendations")
    p.add_argument('--no-fastai', action='store_true', help="skip fastai's DataLoaders")
    p.add_argument('--no-implicit', action='store_true', help="skip the implicit epochs")
    p.add_argument('--no-ml100k', action='store_true', help="skip the MovieLens 100K u1 accuracy of dense and sparse")
    p.add_argument('--data', default=None,
                   help="MovieLens 100K folder (default: $TABCOLLAB_ML100K or ../shared/data/ml-100k)")
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help='also write the report to nbs/benchmarks.md')
    p.add_argument('--steps', type=int, default=0,
                   help="also time this many training steps of the default learners (median), ratings and implicit")
    p.add_argument('--ref', default=None, help="with --steps: time them with the library of this git commit too")
    p.add_argument('--ranking', action='store_true',
                   help="the ranking learner, users by id and by history: one epoch, top-10 of every user; one pass "
                        "of LightFM and implicit over the same positives (its own table, \"## Ranking at scale\")")
    p.add_argument('--ranking-only', action='store_true', help="--ranking, and nothing else")
    p.add_argument('--worker'); p.add_argument('--frame'); p.add_argument('--epoch', action='store_true')
    args = p.parse_args()
    if args.worker=='ml100k': return ml100k_worker(args.data)
    if args.worker=='steps': return steps_worker(args.frame, args.bs, args.steps)
    if args.worker=='implicit': return implicit_worker(args.frame, args.bs)
    if args.worker=='peers': return peers_worker(args.frame)
    if args.worker: return worker(args.worker, args.frame, args.bs, args.epoch, not args.no_implicit)
    # a wrong --data fails now, not after the 25M part
    if args.data is not None and not args.no_ml100k: ml100k(args.data)
    scale = args.n_ratings/SHAPE['n_ratings']
    shape = dict(n_users=max(100, int(SHAPE['n_users']*scale)), n_items=max(100, int(SHAPE['n_items']*scale)),
                 n_ratings=args.n_ratings)
    start = time.perf_counter()
    ratings,items = synthetic_movielens(**shape)
    gen_s = time.perf_counter()-start
    print(f"generated {len(ratings):,} ratings in {gen_s:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as d:
        frame = Path(d)/'frame.pkl'
        with open(frame, 'wb') as f: pickle.dump((ratings, items), f, protocol=5)
        del ratings,items
        res = {lib: run(lib, frame, args.bs, not args.no_epoch, not args.no_implicit)
               for lib in ['fastai','tabcollab'] if not args.ranking_only and (lib!='fastai' or not args.no_fastai)}
        if args.steps and not args.ranking_only: res['steps'] = steps_before_after(frame, args.bs, args.steps, args.ref)
        if args.ranking or args.ranking_only:
            res['ranking'],res['peers'] = run('implicit', frame, args.bs, False),run('peers', frame, args.bs, False)
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}")
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    if 'ranking' in res:
        md = ranking_report(res['ranking'], res['peers'], shape, env)
        (out/'scale_ranking.md').write_text(md)
        (out/'scale_ranking.json').write_text(json.dumps({'shape': shape, 'results': res, 'env': env}, indent=1))
        if args.docs: write_docs_block('scale_ranking', md, "## Ranking at scale\n\n`python bench/scale.py "
                                       "--ranking-only --docs` (about 7 minutes):\n\n", before='## Threads')
        print(md)
    if args.ranking_only: return
    if not args.no_ml100k:
        if ml100k_path() is None and args.data is None:
            print("MovieLens 100K not found: skipping its accuracy (pass --data)", flush=True)
        else: res['ml100k'] = run('ml100k', frame, args.bs, False, data=args.data)
    for k,v in res.items(): print(k, v, flush=True)
    fa,tc = res.get('fastai', {}),res['tabcollab']
    g = lambda d,k,f: format(d[k], f) if k in d else 'not run'
    F,T = 'fastai CollabDataLoaders (ids only)','tabcollab (genres included)'
    rows = [{'': 'DataFrame to DataLoaders (s)', F: g(fa,'from_df_s','.1f'), T: g(tc,'from_df_s','.1f')},
            {'': 'peak RSS, frame included (GB)', F: g(fa,'peak_rss_gb','.2f'), T: g(tc,'peak_rss_gb','.2f')},
            {'': 'after imports and loading the frame (GB)', F: g(fa,'frame_rss_gb','.2f'),
             T: g(tc,'frame_rss_gb','.2f')},
            {'': 'first training batch (s)', F: g(fa,'first_batch_s','.2f'), T: g(tc,'first_batch_s','.2f')},
            {'': 'data alone (rows/s)', F: g(fa,'data_rows_per_s',',.0f'), T: g(tc,'data_rows_per_s',',.0f')}]
    for kind,label in [('dense','dense gradients, fused AdamW'), ('sparse','sparse gradients, lazy_adam'),
                       ('implicit_dense','implicit (>= 4, 256 negatives, users by id), dense'),
                       ('implicit_sparse','implicit (>= 4, 256 negatives, users by id), sparse')]:
        if f'epoch_s_{kind}' in tc:
            rows += [{'': f'one epoch, {label} (s)', F: '', T: f"{tc[f'epoch_s_{kind}']:.1f}"},
                     {'': '  rows/s, peak RSS (GB)', F: '',
                      T: f"{tc[f'epoch_rows_per_s_{kind}']:,.0f}, {tc[f'epoch_peak_rss_gb_{kind}']:.2f}"}]
    if 'recommend_all_s' in tc:
        rows += [{'': f"top-10 for all {tc['recommend_users']:,} users, seen items excluded (s)", F: '',
                  T: f"{tc['recommend_all_s']:.0f}"},
                 {'': '  peak RSS so far (GB)', F: '', T: f"{tc['recommend_peak_rss_gb']:.2f}"}]
    if 'steps' in res:
        for name,st in res['steps'].items():
            label = 'this commit' if name=='this' else f'commit {name}'
            rows += [{'': f'one training step, ratings / implicit, {label} (ms, median)', F: '',
                      T: f"{st['step_ms_rating']:.1f} / {st['step_ms_implicit']:.1f}"}]
    acc = ''
    if 'ml100k' in res:
        m = res['ml100k']
        arow = lambda label, k, f: {'': label, 'dense (fast_adam)': f(m[f'{k}_dense']),
                                    'sparse (lazy_adam, the default)': f(m[f'{k}_sparse'])}
        acc_rows = [arow('rating model: RMSE u1.test', 'rating', lambda d: f"{d['_rmse']:.4f}"),
                    arow('  fit_one_cycle(5) (s)', 'rating', lambda d: f"{d['fit_s']:.1f}"),
                    arow('ranking model: P@10 / NDCG@10', 'ranking',
                         lambda d: f"{d['precision@10']:.4f} / {d['ndcg@10']:.4f}"),
                    arow('  fit_one_cycle(5) (s)', 'ranking', lambda d: f"{d['fit_s']:.1f}")]
        acc = ("\nMovieLens 100K u1 (train u1.base, validate u1.test), the default learners with dense and with "
               "sparse gradients:\n\n"
               + markdown_table(acc_rows, ['', 'dense (fast_adam)', 'sparse (lazy_adam, the default)']) + "\n")
    md = '\n'.join([f"### Scale: {shape['n_ratings']:,} ratings, {shape['n_users']:,} users, "
                    f"{shape['n_items']:,} items\n",
                    f"`synthetic_movielens` at ML-25M's shape (generated in {gen_s:.0f}s), `valid_pct=0.1`, "
                    f"bs={args.bs}. Each library measured in a fresh process that first loads the frame.\n",
                    markdown_table(rows, ['', F, T]), acc, f"\n_{env}_\n"])
    (out/'scale.md').write_text(md)
    (out/'scale.json').write_text(json.dumps({'shape': shape, 'results': res, 'env': env}, indent=1))
    if args.docs: write_docs_block('scale', md)
    print(md)


if __name__ == '__main__': main()
