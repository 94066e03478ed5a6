"""Threads for small models on a busy machine: one training epoch (validation excluded, after a warm-up epoch) of
tabcollab's default dot-product learner on MovieLens 100K u1 (80,000 training rows, genres as a bag), at each batch
size, with each PyTorch thread count, alone and beside one competing CPU-bound process (`while True: pass`), with
`fast_adam` (dense fused AdamW) and with `lazy_adam` on `sparse_embeddings` (LazyAdamW).

    python bench/threads.py [--data path/to/ml-100k] [--bs 64,4096] [--threads 1,2] [--opts fast,lazy]
                            [--repeats 3] [--out results]

Each configuration runs `--repeats` times, interleaved with the others (so a change in the machine's load spreads
over all of them); the table gives the median and the range. The load average before and after is printed and
written with the results: on a shared machine the numbers are only as quiet as the neighbours.
"""
import argparse, platform, statistics, subprocess, sys
from common import *
from tabcollab.sparse import *


class TrainTime(Callback):
    "Seconds spent in the training part of each epoch (validation excluded)"
    order = 0
    def before_fit(self): self.times,self.threads = [],torch.get_num_threads()
    def before_train(self): self.start = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter()-self.start)


def make_learner(dls, opt):
    "tabcollab's default learner, with `fast_adam` ('fast') or with `lazy_adam` on sparse embeddings ('lazy')"
    learn = collab_multicat_learner(dls, sparse=opt=='lazy')
    return learn.remove_cb(ThreadPolicy)  # this script sets the thread count itself


def competitor():
    "A CPU-bound process (`while True: pass`), given a moment to get going"
    p = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    time.sleep(0.3)
    return p


def epoch_time(learn, threads, busy):
    "Seconds of the training part of one epoch on `threads` threads, after a warm-up epoch; `busy`: beside a competitor"
    p = competitor() if busy else None
    try:
        with num_threads(threads), learn.no_bar(), learn.no_logging():
            cb = TrainTime()
            learn.fit(2, cbs=cb)
    finally:
        if p is not None: p.kill(); p.wait()
    if cb.threads!=threads:
        raise RuntimeError(f"the epoch ran on {cb.threads} threads, not {threads}: a callback changed it")
    return cb.times[-1]


def load_avg(): return ', '.join(f'{x:.2f}' for x in os.getloadavg())


def main():
    p = data_arg(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('--bs', default='64,4096', help='batch sizes, comma-separated')
    p.add_argument('--threads', default='1,2', help='PyTorch thread counts, comma-separated')
    p.add_argument('--opts', default='fast,lazy',
                   help="optimisers: 'fast' (fast_adam), 'lazy' (lazy_adam, sparse embeddings)")
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', default='results')
    args = p.parse_args()
    path = ml100k(args.data)
    df,valid_idx = official_split(path, 'u1')
    _,items = load_movielens(path)
    n_train = len(df)-len(valid_idx)
    bss,threads,opts = [list(map(f, s.split(','))) for f,s in [(int,args.bs), (int,args.threads), (str,args.opts)]]
    for o in opts:
        if o not in ('fast','lazy'): raise SystemExit(f"--opts: unknown optimiser {o!r} (use 'fast' or 'lazy')")
    configs = [(bs,o,busy,t) for bs in bss for o in opts for busy in (False,True) for t in threads]
    learners = {}
    for bs in bss:
        dls = CollabMultiCatDataLoaders.from_df(df, items=items, user_name='user', item_name='item',
                                                rating_name='rating', multicat_names=['genres'],
                                                valid_idx=valid_idx, bs=bs)
        for o in opts: set_seed(42); learners[bs,o] = make_learner(dls, o)
    load_before = load_avg()
    print(f'load average before: {load_before}', flush=True)
    times = {c: [] for c in configs}
    for r in range(args.repeats):
        for c in configs:
            bs,o,busy,t = c
            times[c].append(epoch_time(learners[bs,o], t, busy))
            print(f'repeat {r}: bs={bs} opt={o} competitor={busy} threads={t}: {times[c][-1]:.2f}s', flush=True)
    load_after = load_avg()
    width = {bs: embedding_width(learners[bs,opts[0]].model) for bs in bss}
    rows = [{'bs': bs, 'bs x width': f'{bs*width[bs]:,}', 'optimiser': o, 'competitor': 'yes' if busy else 'no',
             'threads': t, 'epoch (s), median': f'{statistics.median(times[c]):.2f}',
             'range (s)': f'{min(times[c]):.2f}-{max(times[c]):.2f}'}
            for c in configs for bs,o,busy,t in [c]]
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    md = '\n'.join([f"### Threads, MovieLens 100K u1 ({n_train:,} training rows)\n",
                    f"One training epoch after a warm-up epoch, {args.repeats} runs each.\n",
                    markdown_table(rows, list(rows[0])), f"\n_{env}_\n"])
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'threads.md').write_text(md)
    (out/'threads.json').write_text(json.dumps({'n_train': n_train, 'env': env, 'width': width,
        'times': [{'bs': bs, 'opt': o, 'competitor': busy, 'threads': t, 'seconds': times[c]}
                  for c in configs for bs,o,busy,t in [c]]}, indent=1))
    print(md)


if __name__ == '__main__': main()
