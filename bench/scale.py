"""Scale: a synthetic MovieLens of ML-25M's shape (25,000,095 ratings, 162,541 users, 59,047 items, genres), from
DataFrame to DataLoaders with tabcollab (genres included) and with fastai's `CollabDataLoaders.from_df` (ids only):
time and peak memory (RSS) of each, time to the first training batch, the rate at which each loader delivers
batches, and one training epoch of tabcollab's default learner at bs=4096.

    python bench/scale.py [--n-ratings 25000095] [--bs 4096] [--no-epoch] [--out results] [--docs]

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


def worker(lib, frame, bs, epoch):
    "Measure one library in this (fresh) process; print a JSON line"
    with open(frame, 'rb') as f: ratings,items = pickle.load(f)
    res = {'frame_rss_gb': peak_gb()}
    start = time.perf_counter()
    if lib=='fastai':
        dls = CollabDataLoaders.from_df(ratings[['user','item','rating']], valid_pct=0.1, seed=42, bs=bs)
    else:
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1, seed=42, bs=bs)
    res['from_df_s'],res['peak_rss_gb'] = time.perf_counter()-start,peak_gb()
    start = time.perf_counter(); next(iter(dls.train)); res['first_batch_s'] = time.perf_counter()-start
    res['data_rows_per_s'] = data_rate(dls.train)
    if epoch and lib=='tabcollab':
        learn = collab_multicat_learner(dls)
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[TrainOnly()])
        res['epoch_s'] = time.perf_counter()-start
        res['epoch_rows_per_s'] = len(dls.train)*bs/res['epoch_s']
        res['epoch_peak_rss_gb'] = peak_gb()
    print('RESULT ' + json.dumps(res), flush=True)


class TrainOnly(Callback):
    "Skip validation (25M-row epochs are timed on their training part)"
    def before_validate(self): raise CancelValidException()


def run(lib, frame, bs, epoch):
    cmd = [sys.executable, __file__, '--worker', lib, '--frame', str(frame), '--bs', str(bs)] + (['--epoch'] if epoch else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
    line = next((l for l in out.stdout.splitlines() if l.startswith('RESULT ')), None)
    if line is None: raise SystemExit(f"{lib} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(line[7:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n-ratings', type=int, default=SHAPE['n_ratings'])
    p.add_argument('--bs', type=int, default=4096)
    p.add_argument('--no-epoch', action='store_true', help="skip the training epoch")
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help='also write the report to nbs/benchmarks.md')
    p.add_argument('--worker'); p.add_argument('--frame'); p.add_argument('--epoch', action='store_true')
    args = p.parse_args()
    if args.worker: return worker(args.worker, args.frame, args.bs, args.epoch)
    scale = args.n_ratings/SHAPE['n_ratings']
    shape = dict(n_users=max(100, int(SHAPE['n_users']*scale)), n_items=max(100, int(SHAPE['n_items']*scale)), n_ratings=args.n_ratings)
    start = time.perf_counter()
    ratings,items = synthetic_movielens(**shape)
    gen_s = time.perf_counter()-start
    print(f"generated {len(ratings):,} ratings in {gen_s:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as d:
        frame = Path(d)/'frame.pkl'
        with open(frame, 'wb') as f: pickle.dump((ratings, items), f, protocol=5)
        del ratings,items
        res = {lib: run(lib, frame, args.bs, not args.no_epoch) for lib in ['fastai','tabcollab']}
    for k,v in res.items(): print(k, v, flush=True)
    fa,tc = res['fastai'],res['tabcollab']
    rows = [{'': 'DataFrame to DataLoaders (s)', 'fastai CollabDataLoaders (ids only)': f"{fa['from_df_s']:.1f}", 'tabcollab (genres included)': f"{tc['from_df_s']:.1f}"},
            {'': 'peak RSS, frame included (GB)', 'fastai CollabDataLoaders (ids only)': f"{fa['peak_rss_gb']:.2f}", 'tabcollab (genres included)': f"{tc['peak_rss_gb']:.2f}"},
            {'': 'after imports and loading the frame (GB)', 'fastai CollabDataLoaders (ids only)': f"{fa['frame_rss_gb']:.2f}", 'tabcollab (genres included)': f"{tc['frame_rss_gb']:.2f}"},
            {'': 'first training batch (s)', 'fastai CollabDataLoaders (ids only)': f"{fa['first_batch_s']:.2f}", 'tabcollab (genres included)': f"{tc['first_batch_s']:.2f}"},
            {'': 'data alone (rows/s)', 'fastai CollabDataLoaders (ids only)': f"{fa['data_rows_per_s']:,.0f}", 'tabcollab (genres included)': f"{tc['data_rows_per_s']:,.0f}"}]
    if 'epoch_s' in tc:
        rows += [{'': f'one training epoch, default learner (s)', 'fastai CollabDataLoaders (ids only)': '', 'tabcollab (genres included)': f"{tc['epoch_s']:.0f}"},
                 {'': 'training (rows/s)', 'fastai CollabDataLoaders (ids only)': '', 'tabcollab (genres included)': f"{tc['epoch_rows_per_s']:,.0f}"}]
    env = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, fastai {fastai.__version__}"
    md = '\n'.join([f"### Scale: {shape['n_ratings']:,} ratings, {shape['n_users']:,} users, {shape['n_items']:,} items\n",
                    f"`synthetic_movielens` at ML-25M's shape (generated in {gen_s:.0f}s), `valid_pct=0.1`, bs={args.bs}. Each "
                    "library measured in a fresh process that first loads the frame.\n",
                    markdown_table(rows, ['', 'fastai CollabDataLoaders (ids only)', 'tabcollab (genres included)']), f"\n_{env}_\n"])
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'scale.md').write_text(md); (out/'scale.json').write_text(json.dumps({'shape': shape, 'results': res, 'env': env}, indent=1))
    if args.docs: write_docs_block('scale', md)
    print(md)


if __name__ == '__main__': main()
