"""Few users: the ranking one-liner against EASE on MovieLens 100K's ratings of a random 150, 300 and 600 users (the
regime of small releases such as ml-latest-small, 610 users), and what capping an epoch's passes over the users
(`max_passes`, 13 by default) does there. Each draw (seeds 0, 1, 2) holds out 20% of the chosen users' ratings at
random; relevant are the held-out ratings >= 4, candidates every item the user did not rate in training.

    python bench/few_users.py [--data path/to/ml-100k] [--users 150 300 600] [--out results] [--docs]
"""
import platform, warnings
from common import *
from ranking import Problem, ease, tabcollab_ranking, lists_from_recommend, K, MIN_RATING

SECTION = ("## Few users\n\n`python bench/few_users.py --docs` (about 5 minutes):\n\n")
SEEDS = (0, 1, 2)


def draw(ratings, items, n_users, seed):
    "(Problem, test rows): `n_users` users drawn at random, 20% of their ratings held out"
    rng = np.random.default_rng(seed)
    users = rng.choice(ratings.user.unique(), n_users, replace=False)
    df = ratings[ratings.user.isin(users)].reset_index(drop=True)
    test = rng.random(len(df)) < 0.2
    return Problem(df[~test], np.sort(df[test].user.unique()), items),df[test]


def run(ratings, items, n_users, seed):
    p,test = draw(ratings, items, n_users, seed)
    exclude,relevant = p.mask(p.train),p.mask(test[test.rating>=MIN_RATING])
    def score(topk=None, scores=None):
        topk = topk_items(scores, K, exclude) if topk is None else topk
        m = ranking_metrics(topk, relevant, K, exclude=exclude)
        return m[f'precision@{K}'],m[f'ndcg@{K}']
    s,secs = ease(p)
    res = {'EASE (lambda 300)': (*score(scores=s), secs)}
    for name,kw in [('tabcollab one-liner (default, max_passes=13)', {}),
                    ('tabcollab, no cap on the passes (before)', dict(max_passes=10**6))]:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            learn,secs = tabcollab_ranking(p, seed=seed, **kw)
            res[name] = (*score(topk=lists_from_recommend(learn, p, exclude)), secs)
        res[name] += (learn.dls.train.n//len(learn.dls.train.users),)
    return res


def main():
    p = report_parser(__doc__)
    p.add_argument('--users', nargs='+', type=int, default=[150, 300, 600])
    args = p.parse_args()
    ratings,items = load_movielens(ml100k(args.data))
    rows = []
    for n in args.users:
        runs = [run(ratings, items, n, s) for s in SEEDS]
        for name in runs[0]:
            m = np.mean([r[name][:3] for r in runs], 0)
            passes = runs[0][name][3:]  # tabcollab's: how many times an epoch goes over the users
            rows.append({'users': n, 'model': name, 'P@10': float(m[0]), 'NDCG@10': float(m[1]),
                         'fit (s)': f'{m[2]:.1f}', 'passes an epoch': str(passes[0]) if passes else ''})
            print(rows[-1], flush=True)
    env = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}"
    md = '\n'.join(["### Few users: MovieLens 100K's ratings of a random 150, 300, 600 users\n",
                    "Mean of three draws (seeds 0, 1, 2), 20% of the chosen users' ratings held out at random. "
                    "tabcollab: `from_df(..., implicit=True, min_rating=4)`, `collab_multicat_learner(dls)` (which "
                    "starts from EASE on data this size), `fit_one_cycle(5)`.\n",
                    markdown_table(rows, ['users', 'model', 'P@10', 'NDCG@10', 'fit (s)', 'passes an epoch']),
                    f"\n_{env}_\n"])
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'few_users.md').write_text(md)
    (out/'few_users.json').write_text(json.dumps(rows, indent=1))
    if args.docs: write_docs_block('few_users', md, SECTION, before='## Time to quality')
    print(md)


if __name__ == '__main__': main()
