"""Training time against ranking quality at a fraction of ML-25M's shape, for batches of users against drawn negatives:
the default (`DRAWN_NEG` negatives, a user per `NEG_PER_USER` of them) beside other `user_bs` / `n_neg`, in one run.

    python bench/scale_quality.py [--frac 0.25] [--epochs 5] [--configs "[dict(user_bs=32, n_neg=1024), ...]"]

`synthetic_movielens` at `frac` of ML-25M's shape (a quarter: 6,250,023 ratings, 40,635 users, 14,761 items: more
than `ALL_ITEMS_MAX`, so the negatives are drawn), `valid_pct=0.1`, positives: ratings >= 4. Each configuration:
`from_df(..., implicit=True, min_rating=4, **config)`, the default ranking learner, `fit_one_cycle(epochs)` with the
validations skipped (their cost is the same for every configuration), then one `validate()`: P@10 and NDCG@10 of
the validation users (a sample of `RANK_EVAL_USERS` when there are more), against every item they did not see.
"""
import argparse, platform, sys
from common import *
import scale as S

DEFAULT_CONFIGS = "[dict(user_bs=32, n_neg=1024), dict(), dict(user_bs=512), dict(user_bs=256, n_neg=8192)]"


class TrainOnly(Callback):
    "Skip the validations of the fit (one `validate` follows it)"
    def before_validate(self): raise CancelValidException()


def measure(ratings, items, config, epochs):
    set_seed(42, reproducible=True)
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.1, seed=42,
                                            implicit=True, min_rating=4, **config)
    learn = collab_multicat_learner(dls)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, cbs=[TrainOnly()])
    fit_s = time.perf_counter()-start
    with learn.no_bar(): v = learn.validate()
    names = [m.name for m in learn.metrics]  # `validate` gives the loss, then these
    at = lambda n: float(v[1+names.index(n)])
    return {'config': f'`{config}`' if config else '**the default**', 'user_bs': f'{dls.train.bs:,}',
            'n_neg': f'{dls.train.n_neg:,}',
            'steps an epoch': f'{len(dls.train):,}', 'lr': f'{learn.lr:.3g}', 'fit (s)': f'{fit_s:.1f}',
            'P@10': at('precision@10'), 'NDCG@10': at('ndcg@10')}


def main(args=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--frac', type=float, default=0.25, help="share of ML-25M's shape")
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--configs', default=DEFAULT_CONFIGS, help="a Python list of dicts of from_df arguments")
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help="also write the table into nbs/benchmarks.md")
    args = p.parse_args(args)
    configs = eval(args.configs, {'dict': dict})  # noqa: S307 (the command line of whoever runs the benchmark)
    shape = {k: int(v*args.frac) for k,v in S.SHAPE.items()}
    ratings,items = synthetic_movielens(**shape)
    rows = []
    for c in configs:
        rows.append(measure(ratings, items, c, args.epochs))
        print(rows[-1], flush=True)
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}")
    md = report(rows, shape, args, env)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'scale_quality.md').write_text(md)
    if args.docs: write_docs_block('scale_quality', md, "## Drawn negatives: time against quality\n\n"
                                   "`python bench/scale_quality.py --docs` (about 7 minutes):\n\n", before='## Threads')
    print(md)


def report(rows, shape, args, env):
    "The markdown table of the configurations' fit times and quality"
    return '\n'.join([
        f"### Drawn negatives: {shape['n_ratings']:,} ratings, {shape['n_users']:,} users, "
        f"{shape['n_items']:,} items\n",
        f"`synthetic_movielens` at {args.frac:g} of ML-25M's shape, ratings >= 4 positive, `valid_pct=0.1`; "
        f"`fit_one_cycle({args.epochs})` of the default ranking learner, its validations skipped, then one "
        "`validate()` (P@10 / NDCG@10 of every validation user, against every item the user did not see in "
        "training). One run.\n",
        markdown_table(rows, list(rows[0])), f"\n_{env}_\n"])


if __name__ == '__main__': sys.exit(main())
