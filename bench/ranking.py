"""Top-10 recommendation on MovieLens 100K u1 (implicit feedback), and ranking brand-new items from their genres.
Writes markdown and JSON to --out and, with --docs, the markdown into the documentation (nbs/benchmarks.md).

    python bench/ranking.py [--data path/to/ml-100k] [--out results] [--docs] [--no-cold]

Protocol: train on u1.base. For each u1.test user the relevant items are the ones rated >= 4 in u1.test, the
candidates every item the user did not rate in u1.base; each model lists its 10 best candidates. Reported:
precision@10, recall@10, NDCG@10, hit rate@10 (means over the users with a relevant item), catalogue coverage
and fit time, all computed by `tabcollab.metrics`.

Strict cold start: 10% of the items (seeded, the same as bench/accuracy.py's) are held out of training entirely;
each user ranks them from their genres; relevant are the user's ratings >= 4 of those items (u1.base + u1.test).
Reported: the mean per-user AUC.

LightFM (`pip install lightfm-next`) is a benchmark peer only, skipped when it is not installed.
"""
import argparse, inspect, platform, traceback
import scipy.sparse as sp
from common import *

K,SEED,EPOCHS,MIN_RATING = 10,42,5,4
EASE_LAMBDA = 300.
LIGHTFM = dict(loss='warp', no_components=50)
LIGHTFM_FIT = dict(epochs=30, num_threads=2)

try: import lightfm
except ImportError: lightfm = None


class Problem:
    "Users x items index of a ranking problem: the training ratings, and who may get what"
    def __init__(self, train, users, items):
        self.train,self.users,self.items = train,np.asarray(users),items
        self.item_ids = items['item'].to_numpy()
        self.ucol,self.icol = pd.Index(self.users),pd.Index(self.item_ids)
        self.all_users = np.union1d(train['user'].unique(), self.users)  # the models train on every training user
        self.rows = pd.Index(self.all_users).get_indexer(self.users)       # ... and score the evaluated ones

    def mask(self, df):
        "Users x items bool mask of the rows of `df` (users or items outside the index are dropped)"
        u,i = self.ucol.get_indexer(df['user']),self.icol.get_indexer(df['item'])
        keep = (u>=0)&(i>=0)
        m = torch.zeros(len(self.users), len(self.item_ids), dtype=torch.bool)
        m[torch.tensor(u[keep]), torch.tensor(i[keep])] = True
        return m

    def positives(self):
        "The training ratings >= MIN_RATING"
        return self.train[self.train.rating>=MIN_RATING]


def genre_matrix(items):
    "Items x genres 0/1 matrix (scipy CSR) and the genre names"
    g = items['genres'].reset_index(drop=True).explode().dropna()
    cat = pd.Categorical(g.to_numpy())
    m = sp.csr_matrix((np.ones(len(g), np.float32), (g.index.to_numpy(), cat.codes)),
                      shape=(len(items), len(cat.categories)))
    return m,list(cat.categories)


def interactions(p:Problem, users, item_ids):
    "Users x items 0/1 CSR matrix of the training ratings >= MIN_RATING (LightFM's and EASE's input)"
    pos = p.positives()
    u,i = pd.Index(users).get_indexer(pos['user']),pd.Index(item_ids).get_indexer(pos['item'])
    keep = (u>=0)&(i>=0)
    return sp.csr_matrix((np.ones(keep.sum(), np.float32), (u[keep], i[keep])), shape=(len(users), len(item_ids)))


def row_normalise(m):
    "Rows scaled to sum to 1 (what LightFM's `Dataset.build_item_features` does by default)"
    s = np.asarray(m.sum(1)).ravel()
    return sp.diags(1/np.where(s>0, s, 1)).dot(m).tocsr()


# --- models: each returns (users x items scores over `p.item_ids` for `p.users`, fit seconds), or (topk, seconds)

def timed(f):
    start = time.perf_counter()
    res = f()
    return res,time.perf_counter()-start


def most_popular(p:Problem):
    "Count of training ratings >= 4 of each item, the same list for everyone (minus what they have seen)"
    counts,secs = timed(lambda: p.positives()['item'].value_counts().reindex(p.item_ids, fill_value=0).to_numpy())
    return torch.tensor(counts, dtype=torch.float32).expand(len(p.users), -1),secs


def ease(p:Problem, lam=EASE_LAMBDA):
    "EASE (Steck 2019): item-item weights B = I - P/diag(P), P = (X'X + lam I)^-1, in closed form; scores X B"
    def fit():
        X = interactions(p, p.all_users, p.item_ids).toarray().astype(np.float64)
        P = np.linalg.inv(X.T@X + lam*np.eye(X.shape[1]))
        B = -P/np.diag(P)
        np.fill_diagonal(B, 0.)
        return X[p.rows]@B
    scores,secs = timed(fit)
    return torch.tensor(scores),secs


def lightfm_model(p:Problem, genres:bool, seed=SEED):
    "LightFM WARP on the training ratings >= 4: ids only, or item features = identity + genre one-hot"
    from lightfm import LightFM
    X = interactions(p, p.all_users, p.item_ids).tocoo()
    feats = (row_normalise(sp.hstack([sp.identity(len(p.item_ids), format='csr'), genre_matrix(p.items)[0]]).tocsr())
             if genres else None)
    model = LightFM(random_state=seed, **LIGHTFM)
    _,secs = timed(lambda: model.fit(X, item_features=feats, **LIGHTFM_FIT))
    return torch.tensor(lightfm_scores(model, p.rows, np.arange(len(p.item_ids)), feats)),secs


def lightfm_scores(model, user_rows, item_rows, item_features=None):
    "Users x items scores of a LightFM model (`item_rows`: rows of `item_features`)"
    u,i = np.repeat(user_rows, len(item_rows)),np.tile(item_rows, len(user_rows))
    return model.predict(u.astype(np.int32), i.astype(np.int32), item_features=item_features,
                         num_threads=LIGHTFM_FIT['num_threads']).reshape(len(user_rows), len(item_rows))


def tabcollab_scores(learn, users, item_ids, bs=16384):
    "Users x items scores of a tabcollab learner: every (user, item) row through `dls.test_dl` (item metadata joined)"
    ds = learn.dls.train_ds
    frame = pd.DataFrame({ds.roles.user: np.repeat(users, len(item_ids)), ds.roles.item: np.tile(item_ids, len(users))})
    with learn.no_bar(): preds,_ = learn.get_preds(dl=learn.dls.test_dl(frame, bs=bs))
    preds = preds.float().reshape(len(users)*len(item_ids), -1)[:,-1]  # a single output: rating or score
    return preds.reshape(len(users), len(item_ids))


def tabcollab_rating(p:Problem, seed=SEED):
    "tabcollab's rating model (genres), predicted ratings as scores"
    set_seed(seed, reproducible=True)
    dls = CollabMultiCatDataLoaders.from_df(p.train[['user','item','rating']], items=p.items, multicat_names=['genres'],
                                            valid_pct=0.02, seed=seed)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): _,secs = timed(lambda: learn.fit_one_cycle(EPOCHS))
    return learn,secs


def has_implicit():
    "Whether this tabcollab's `CollabMultiCatDataLoaders.from_df` takes `implicit` (it swallows unknown keywords)"
    return 'implicit' in inspect.signature(CollabMultiCatDataLoaders.from_df).parameters


def tabcollab_ranking(p:Problem, genres:bool, seed=SEED):
    "tabcollab's ranking model on the training ratings >= 4 (with genres, or ids only); None when not available"
    if not has_implicit(): return None
    set_seed(seed, reproducible=True)
    kw = dict(multicat_names=['genres']) if genres else {}
    try: dls = CollabMultiCatDataLoaders.from_df(p.train[['user','item','rating']], items=p.items, implicit=True,
                                                 min_rating=MIN_RATING, valid_pct=0.02, seed=seed, **kw)
    except TypeError as e:
        if 'implicit' not in str(e) and 'min_rating' not in str(e): raise
        return None
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): _,secs = timed(lambda: learn.fit_one_cycle(EPOCHS))
    return learn,secs


def lists_from_recommend(learn, p:Problem, exclude, k=K):
    "Top-k lists (users x k item indices) from `learn.recommend(users, n)`, the items `exclude`d here dropped"
    n = min(len(p.item_ids), k + int(exclude.sum(1).max()))  # enough to drop every excluded item and keep k
    rec = learn.recommend(list(p.users), n=n)
    u,i = p.ucol.get_indexer(rec['user']),p.icol.get_indexer(rec['item'])
    keep = (u>=0)&(i>=0)
    u,i = u[keep],i[keep]
    keep = ~exclude[torch.tensor(u), torch.tensor(i)].numpy()
    u,i = u[keep],i[keep]
    rank = pd.Series(u).groupby(u).cumcount().to_numpy()  # frames come in rank order per user
    topk = torch.full((len(p.users), k), -1, dtype=torch.long)
    top = rank<k
    topk[torch.tensor(u[top]), torch.tensor(rank[top])] = torch.tensor(i[top], dtype=torch.long)
    return topk


NA = "tabcollab ranking model: not available in this version"


def top10(p:Problem, test):
    "Every model's metrics on the u1 protocol"
    exclude,relevant = p.mask(p.train),p.mask(test[test.rating>=MIN_RATING])
    res = {}
    def report(name, secs, scores=None, topk=None):
        topk = topk_items(scores, K, exclude) if topk is None else topk
        m = ranking_metrics(topk, relevant, K, exclude=exclude)
        res[name] = {**m, 'coverage': catalogue_coverage(topk, len(p.item_ids)), 'fit_s': secs}
        print(f"{name:50s} P@{K} {m[f'precision@{K}']:.4f}  R@{K} {m[f'recall@{K}']:.4f}  "
              f"NDCG@{K} {m[f'ndcg@{K}']:.4f}  hit@{K} {m[f'hit@{K}']:.4f}  "
              f"coverage {res[name]['coverage']:.4f}  {secs:5.1f}s", flush=True)

    s,secs = most_popular(p); report('most popular', secs, s)
    s,secs = ease(p); report(f'EASE (lambda {EASE_LAMBDA:g})', secs, s)
    if lightfm is None: print("LightFM: not installed (pip install lightfm-next), skipped")
    else:
        for genres in [False, True]:
            s,secs = lightfm_model(p, genres)
            report(f"LightFM WARP, {'id + genres' if genres else 'ids only'}", secs, s)
    learn,secs = tabcollab_rating(p)
    report('tabcollab rating model (genres)', secs, tabcollab_scores(learn, p.users, p.item_ids))
    for genres in [True, False]:
        name = f"tabcollab ranking model ({'genres' if genres else 'ids only'})"
        try:
            r = tabcollab_ranking(p, genres)
            if r is None: print(NA); break
            report(name, r[1], topk=lists_from_recommend(r[0], p, exclude))
        except Exception: print(f"{name}: failed\n{traceback.format_exc()}")  # the other models' results still count
    return res


# --- strict cold start

def held_out_items(ratings, frac=0.1, seed=SEED):
    "The items held out entirely (as in bench/accuracy.py's strict cold start)"
    item_ids = np.sort(ratings['item'].unique())
    return np.sort(np.random.default_rng(seed).choice(item_ids, int(frac*len(item_ids)), replace=False))


def genre_popularity(p:Problem, held):
    "Mean over the item's genres of the genre's count of training ratings >= 4"
    G,_ = genre_matrix(p.items)
    counts = G.T@np.bincount(p.icol.get_indexer(p.positives()['item']), minlength=len(p.item_ids))
    n = np.asarray(G.sum(1)).ravel()
    pop = (G@counts)/np.where(n>0, n, 1)
    return torch.tensor(pop[p.icol.get_indexer(held)], dtype=torch.float64).expand(len(p.users), -1)


def lightfm_cold(p:Problem, held, seed=SEED):
    "LightFM trained with id + genres on the other items; the held-out items get their genres only"
    from lightfm import LightFM
    G,_ = genre_matrix(p.items)
    is_held = np.isin(p.item_ids, held)
    train_ids = p.item_ids[~is_held]
    # only the other items: the held-out ones are not even negatives
    X = interactions(p, p.all_users, train_ids).tocoo()
    feats = row_normalise(sp.hstack([sp.identity(len(train_ids), format='csr'), G[~is_held]]).tocsr())
    model = LightFM(random_state=seed, **LIGHTFM)
    model.fit(X, item_features=feats, **LIGHTFM_FIT)
    new = row_normalise(sp.hstack([sp.csr_matrix((len(held), len(train_ids))), G[p.icol.get_indexer(held)]]).tocsr())
    return torch.tensor(lightfm_scores(model, p.rows, np.arange(len(held)), new))


def tabcollab_cold_scores(learn, users, items_frame):
    """Users x items scores of a tabcollab learner for items it never saw, from their metadata (`items_frame`: item and
    genres; they reach the model through the `items` table given to `from_df`, which holds every item).
    TODO(ranking API): if the ranking learner gets a scoring method for new items, call it here."""
    return tabcollab_scores(learn, users, items_frame['item'].to_numpy())


def strict_cold_start(p:Problem, ratings):
    "Mean per-user AUC of ranking the held-out items, for each model"
    held = held_out_items(ratings)
    cold = Problem(p.train[~p.train['item'].isin(held)], p.users, p.items)
    held_items = p.items.set_index('item').loc[held].reset_index()
    rel = ratings[ratings['item'].isin(held) & (ratings.rating>=MIN_RATING)]
    relevant = p.mask(rel)[:, torch.tensor(p.icol.get_indexer(held))]
    res = {}
    def report(name, scores):
        auc = auc_of(scores, relevant)
        res[name] = {'auc': float(auc.nanmean()), 'n_users': int((~auc.isnan()).sum())}
        print(f"  strict cold start  {name:45s} AUC {res[name]['auc']:.4f} ({res[name]['n_users']} users)", flush=True)

    report('genre popularity', genre_popularity(cold, held))
    if lightfm is not None: report('LightFM WARP, genres only for the new items', lightfm_cold(cold, held))
    learn,_ = tabcollab_rating(cold)
    report('tabcollab rating model (genres)', tabcollab_cold_scores(learn, p.users, held_items))
    try:
        r = tabcollab_ranking(cold, genres=True)
        if r is None: print(NA)
        else: report('tabcollab ranking model (genres)', tabcollab_cold_scores(r[0], p.users, held_items))
    except Exception: print(f"tabcollab ranking model, cold start: failed\n{traceback.format_exc()}")
    return res,len(held),int(relevant.sum())


SECTION = "## Ranking\n\n`python bench/ranking.py --docs` (a few minutes):\n\n"


def report_md(top, cold, n_held, n_rel, n_users, n_items, env):
    "The markdown report"
    rows = [{'model': n, f'P@{K}': r[f'precision@{K}'], f'R@{K}': r[f'recall@{K}'], f'NDCG@{K}': r[f'ndcg@{K}'],
             f'hit@{K}': r[f'hit@{K}'], 'coverage': r['coverage'], 'fit (s)': f"{r['fit_s']:.1f}"}
            for n,r in top.items()]
    first = next(iter(top.values()))
    md = [f"### Top-{K} recommendation, MovieLens 100K u1\n",
          f"Trained on u1.base; for each of the {n_users} u1.test users the relevant items are their u1.test ratings "
          f">= {MIN_RATING}, the candidates every item they did not rate in u1.base ({first['n_users']} users with a "
          f"relevant item averaged, {first['n_no_relevant']} without one left out). Precision divides by {K}; coverage "
          f"is the share of the {n_items:,} items recommended to at least one u1.test user. Most popular: training "
          f"ratings >= {MIN_RATING} per item. EASE and LightFM train on the ratings >= {MIN_RATING}; LightFM: "
          f"WARP, {LIGHTFM['no_components']} components, {LIGHTFM_FIT['epochs']} epochs, {LIGHTFM_FIT['num_threads']} "
          "threads (not deterministic), item features row-normalised as LightFM's `Dataset` does. tabcollab's rating "
          "model: `CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], "
          f"valid_pct=0.02)`, `collab_multicat_learner(dls).fit_one_cycle({EPOCHS})`, its predicted ratings ranked. "
          f"Seed {SEED}; fit time on a shared 2-core CPU, indicative.\n",
          markdown_table(rows, ['model', f'P@{K}', f'R@{K}', f'NDCG@{K}', f'hit@{K}', 'coverage', 'fit (s)'])]
    if cold:
        md += ["\n### Strict cold start: ranking new items\n",
               f"10% of the items ({n_held}, seed {SEED}, the same as the accuracy benchmark's) held out of "
               f"training entirely. Each user ranks all {n_held} of them; relevant are the user's ratings "
               f">= {MIN_RATING} of them in u1.base + u1.test ({n_rel:,}). Mean per-user AUC over the users with a "
               "relevant and a non-relevant item. Genre popularity: the mean over the item's genres of the genre's "
               f"count of training ratings >= {MIN_RATING}. LightFM is trained with id + genre features on the other "
               "items and scores the new ones from their genres.\n",
               markdown_table([{'model': n, 'AUC': r['auc'], 'users': r['n_users']} for n,r in cold.items()],
                              ['model', 'AUC', 'users'])]
    md.append(f"\n_{env}_\n")
    return '\n'.join(md)


def main():
    p = data_arg(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help='also write the report to nbs/benchmarks.md ("## Ranking")')
    p.add_argument('--no-cold', action='store_true', help='skip the strict cold-start protocol')
    args = p.parse_args()
    path = ml100k(args.data)
    df,valid_idx = official_split(path, 'u1')
    ratings,items = load_movielens(path)
    train,test = df.drop(index=valid_idx),df.iloc[valid_idx]
    users = np.sort(test['user'].unique())
    prob = Problem(train, users, items)
    top = top10(prob, test)
    cold,n_held,n_rel = (({},0,0) if args.no_cold else
                         strict_cold_start(Problem(train, np.sort(df['user'].unique()), items), df))
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}" + (f", lightfm {lightfm.__version__}" if lightfm else ''))
    md = report_md(top, cold, n_held, n_rel, len(users), len(items), env)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'ranking.md').write_text(md)
    (out/'ranking.json').write_text(json.dumps({'k': K, 'top': top, 'strict_cold_start': cold, 'held_out_items': n_held,
                                                 'env': env}, indent=1))
    if args.docs: write_docs_block('ranking', md, SECTION, before='## Speed')
    print(md)


if __name__ == '__main__': main()
