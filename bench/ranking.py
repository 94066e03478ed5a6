"""Top-10 recommendation on MovieLens 100K (implicit feedback) over the splits u1..u5, new users served from a few
liked items without retraining, and brand-new items ranked from their genres. Writes markdown and JSON to --out and,
with --docs, the markdown into the documentation (nbs/benchmarks.md).

    python bench/ranking.py [--data path/to/ml-100k] [--splits u1 u2 u3 u4 u5] [--out results] [--docs]
                            [--no-new-users] [--no-new-items]

Top-10: train on uN.base. For each uN.test user the relevant items are the ones rated >= 4 in uN.test, the candidates
every item the user did not rate in uN.base; each model lists its 10 best candidates. Reported per split and as the
mean (± sd) over the splits: precision@10, recall@10, NDCG@10, hit rate@10 (means over the users with a relevant
item), catalogue coverage and fit time, all computed by `tabcollab.metrics`.

New users: 20% of the users of u.data (seeded) are held out of training entirely; each one's liked items (>= 4) are
split in half at random (seeded): one half is given as their history, the other half is to be found. Candidates:
every item but the given ones. No model is retrained for them.

New items: 10% of the items (seeded, the same as bench/accuracy.py's) are held out of training entirely; each user
ranks all of them from their genres; relevant are the user's ratings >= 4 of them (u1.base + u1.test). Reported:
the mean per-user AUC, the AUC among the held-out items each user rated (liked against not liked), and NDCG@10.

LightFM (`pip install lightfm-next`) and `implicit` (iALS) are benchmark peers only, skipped when not installed.
"""
import argparse, inspect, platform
import scipy.sparse as sp
from common import *

K,SEED,EPOCHS,MIN_RATING = 10,42,5,4
EASE_LAMBDA = 300.
LIGHTFM = dict(loss='warp', no_components=50)
LIGHTFM_FIT = dict(epochs=30, num_threads=2)

try: import lightfm
except ImportError: lightfm = None
try: import implicit
except ImportError: implicit = None
IALS_GRID = [dict(factors=f, regularization=r, alpha=a) for f in (32, 64) for r in (10., 30.) for a in (1., 3.)]


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


def tabcollab_ranking(p:Problem, genres:bool=True, history:bool=None, seed=SEED, **dls_kw):
    "tabcollab's ranking model on the training ratings >= 4 (with genres or ids only; users by history or by id)"
    if not has_implicit(): return None
    set_seed(seed, reproducible=True)
    kw = dict(multicat_names=['genres'], **dls_kw) if genres else dls_kw
    if history is not None: kw['history'] = history
    dls = CollabMultiCatDataLoaders.from_df(p.train[['user','item','rating']], items=p.items, implicit=True,
                                            min_rating=MIN_RATING, valid_pct=0.02, seed=seed, **kw)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): _,secs = timed(lambda: learn.fit_one_cycle(EPOCHS))
    return learn,secs


def ials(p:Problem, factors=32, regularization=30., alpha=3., iterations=15, seed=SEED):
    "iALS (`implicit`): (model, users x items scores, fit seconds), on the training ratings >= 4"
    from implicit.als import AlternatingLeastSquares
    X = interactions(p, p.all_users, p.item_ids).tocsr()
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                                    random_state=seed)
    _,secs = timed(lambda: model.fit(X, show_progress=False))
    return model,torch.tensor(model.user_factors[p.rows]@model.item_factors.T),secs


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


def top10(p:Problem, test):
    "Every model's metrics on one split"
    exclude,relevant = p.mask(p.train),p.mask(test[test.rating>=MIN_RATING])
    res = {}
    def report(name, secs, scores=None, topk=None):
        topk = topk_items(scores, K, exclude) if topk is None else topk
        m = ranking_metrics(topk, relevant, K, exclude=exclude)
        res[name] = {**m, 'coverage': catalogue_coverage(topk, len(p.item_ids)), 'fit_s': secs}
        print(f"  {name:52s} P@{K} {m[f'precision@{K}']:.4f}  R@{K} {m[f'recall@{K}']:.4f}  "
              f"NDCG@{K} {m[f'ndcg@{K}']:.4f}  hit@{K} {m[f'hit@{K}']:.4f}  "
              f"coverage {res[name]['coverage']:.4f}  {secs:5.1f}s", flush=True)

    s,secs = most_popular(p); report('most popular', secs, s)
    s,secs = ease(p); report(f'EASE (lambda {EASE_LAMBDA:g})', secs, s)
    if implicit is None: print("  iALS: `implicit` not installed (pip install implicit), skipped")
    else:
        for cfg in IALS_GRID:
            _,s,secs = ials(p, **cfg)
            report(f"iALS ({cfg['factors']} factors, reg {cfg['regularization']:g}, alpha {cfg['alpha']:g})", secs, s)
    if lightfm is None: print("  LightFM: not installed (pip install lightfm-next), skipped")
    else:
        for genres in [False, True]:
            s,secs = lightfm_model(p, genres)
            report(f"LightFM WARP, {'id + genres' if genres else 'ids only'}", secs, s)
    learn,secs = tabcollab_rating(p)
    report('tabcollab rating model (genres)', secs, tabcollab_scores(learn, p.users, p.item_ids))
    r = tabcollab_ranking(p, history=False)
    report('tabcollab ranking model, users by id (history=False)', r[1], topk=lists_from_recommend(r[0], p, exclude))
    r = tabcollab_ranking(p)
    report('tabcollab ranking model (default: users by history)', r[1], topk=lists_from_recommend(r[0], p, exclude))
    return res


def summary(per_split):
    "{model: {metric: (mean, sd)}} over the splits of `per_split` ({split: {model: metrics}})"
    models = next(iter(per_split.values())).keys()
    stat = lambda m,k: [r[m][k] for r in per_split.values() if m in r]
    return {m: {k: (float(np.mean(stat(m, k))), float(np.std(stat(m, k)))) for k in next(iter(per_split.values()))[m]
                if isinstance(next(iter(per_split.values()))[m][k], (int, float))} for m in models}


def best_ials(summ):
    "The name of the best iALS configuration (by mean NDCG@10 over the splits: tuned on the test sets, a peer's best)"
    names = [n for n in summ if n.startswith('iALS')]
    return max(names, key=lambda n: summ[n][f'ndcg@{K}'][0]) if names else None


# --- new users, no retraining

def new_users(ratings, items, frac=0.2, seed=SEED):
    "P@10 and NDCG@10 of finding half of held-out users' liked items from the other half, per model"
    rng = np.random.default_rng(seed)
    ids = np.sort(ratings.user.unique())
    held = np.sort(rng.choice(ids, int(frac*len(ids)), replace=False))
    train,test = ratings[~ratings.user.isin(held)],ratings[ratings.user.isin(held) & (ratings.rating>=MIN_RATING)]
    given,find = [],[]
    for u,g in test.groupby('user'):
        if len(g)<2: continue
        perm = rng.permutation(len(g))
        half = len(g)//2
        given.append(g.iloc[perm[:half]]); find.append(g.iloc[perm[half:]])
    given,find = pd.concat(given),pd.concat(find)
    users = np.sort(given.user.unique())
    p = Problem(train, users, items)
    G,F = p.mask(given),p.mask(find)  # the given history, the items to find (users x items)
    res = {}
    def report(name, secs, scores=None, topk=None):
        topk = topk_items(scores, K, G) if topk is None else topk
        m = ranking_metrics(topk, F, K, exclude=G)
        res[name] = {f'precision@{K}': m[f'precision@{K}'], f'ndcg@{K}': m[f'ndcg@{K}'], 'n_users': m['n_users'],
                     'fit_s': secs}
        print(f"  new users  {name:45s} P@{K} {m[f'precision@{K}']:.4f}  NDCG@{K} {m[f'ndcg@{K}']:.4f}", flush=True)
    counts = p.positives()['item'].value_counts().reindex(p.item_ids, fill_value=0).to_numpy()
    report('most popular', 0., torch.tensor(counts, dtype=torch.float32).expand(len(users), -1))
    def ease_new():
        X = interactions(p, np.sort(train.user.unique()), p.item_ids).toarray().astype(np.float64)
        P = np.linalg.inv(X.T@X + EASE_LAMBDA*np.eye(X.shape[1]))
        B = -P/np.diag(P)
        np.fill_diagonal(B, 0.)
        return G.double().numpy()@B
    s,secs = timed(ease_new); report(f'EASE (lambda {EASE_LAMBDA:g}), x_history @ B', secs, torch.tensor(s))
    if implicit is not None:
        trained = Problem(train, np.sort(train.user.unique()), items)
        model,_,secs = ials(trained)
        Xg = sp.csr_matrix(G.numpy().astype(np.float32))
        # `recalculate_user`: each new user's factors solved from their history, the item factors as trained
        vecs = model.recalculate_user(np.arange(len(users)), Xg)
        report('iALS (32 factors, reg 30, alpha 3), recalculate_user', secs, torch.tensor(vecs@model.item_factors.T))
    learn,secs = tabcollab_ranking(Problem(train, np.sort(train.user.unique()), items))
    hist = {f'new {u}': given.item[given.user==u].tolist() for u in users}
    rec = learn.recommend(history=hist, n=K)
    rec['user'] = rec['user'].str[4:].astype(users.dtype)
    u,i = p.ucol.get_indexer(rec['user']),p.icol.get_indexer(rec['item'])
    topk = torch.full((len(users), K), -1, dtype=torch.long)
    topk[torch.tensor(u), torch.tensor(rec['rank'].to_numpy()-1)] = torch.tensor(i, dtype=torch.long)
    report('tabcollab, recommend(history=...)', secs, topk=topk)
    return res,len(users),len(held)


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


def lightfm_cold(p:Problem, held, ids:bool=True, seed=SEED):
    "LightFM trained on the other items, with id + genre features or genre features only; new items from genres"
    from lightfm import LightFM
    G,_ = genre_matrix(p.items)
    is_held = np.isin(p.item_ids, held)
    train_ids = p.item_ids[~is_held]
    # only the other items: the held-out ones are not even negatives
    X = interactions(p, p.all_users, train_ids).tocoo()
    eye = lambda n: sp.identity(n, format='csr') if ids else sp.csr_matrix((n, 0))
    feats = row_normalise(sp.hstack([eye(len(train_ids)), G[~is_held]]).tocsr())
    model = LightFM(random_state=seed, **LIGHTFM)
    model.fit(X, item_features=feats, **LIGHTFM_FIT)
    zeros = sp.csr_matrix((len(held), len(train_ids) if ids else 0))
    new = row_normalise(sp.hstack([zeros, G[p.icol.get_indexer(held)]]).tocsr())
    return torch.tensor(lightfm_scores(model, p.rows, np.arange(len(held)), new))


def tabcollab_cold_scores(learn, users, items_frame):
    "Users x items scores of a tabcollab learner for items it never saw, from their metadata (the `items` table)"
    return tabcollab_scores(learn, users, items_frame['item'].to_numpy())


def strict_cold_start(p:Problem, ratings):
    "Per model: the mean per-user AUC of ranking the held-out items, the AUC among those each user rated, NDCG@10"
    held = held_out_items(ratings)
    cold = Problem(p.train[~p.train['item'].isin(held)], p.users, p.items)
    held_items = p.items.set_index('item').loc[held].reset_index()
    cols = torch.tensor(p.icol.get_indexer(held))
    relevant = p.mask(ratings[ratings['item'].isin(held) & (ratings.rating>=MIN_RATING)])[:, cols]
    rated = p.mask(ratings[ratings['item'].isin(held)])[:, cols]
    res = {}
    def report(name, scores):
        auc,among = auc_of(scores, relevant),auc_of(scores, relevant, exclude=~rated)
        m = ranking_metrics(topk_items(scores, K), relevant, K)
        res[name] = {'auc': float(auc.nanmean()), 'auc_rated': float(among.nanmean()), f'ndcg@{K}': m[f'ndcg@{K}'],
                     'n_users': int((~auc.isnan()).sum())}
        print(f"  new items  {name:45s} AUC {res[name]['auc']:.4f}  among rated {res[name]['auc_rated']:.4f}  "
              f"NDCG@{K} {m[f'ndcg@{K}']:.4f} ({res[name]['n_users']} users)", flush=True)

    report('genre popularity', genre_popularity(cold, held))
    if lightfm is not None:
        report('LightFM WARP, genre features only', lightfm_cold(cold, held, ids=False))
        report('LightFM WARP, id + genre features (new items: genres)', lightfm_cold(cold, held))
    learn,_ = tabcollab_rating(cold)
    report('tabcollab rating model (genres)', tabcollab_cold_scores(learn, p.users, held_items))
    for history in [False, None]:
        learn,_ = tabcollab_ranking(cold, history=history)
        name = 'tabcollab ranking model, users by id' if history is False else 'tabcollab ranking model (default)'
        report(name, tabcollab_cold_scores(learn, p.users, held_items))
    return res,len(held),int(relevant.sum())


SECTION = "## Ranking\n\n`python bench/ranking.py --docs` (about 7 minutes):\n\n"


def fmt(ms): return f"{ms[0]:.4f} ± {ms[1]:.4f}"


def report_md(per_split, summ, newu, cold, info, env, draws=None):
    "The markdown report"
    ials = best_ials(summ)
    shown = [n for n in summ if not n.startswith('iALS') or n==ials]
    splits = list(per_split)
    rows = [{'model': n, **{f'{sp} P@{K} / NDCG@{K}': f"{per_split[sp][n][f'precision@{K}']:.4f} / "
                                                        f"{per_split[sp][n][f'ndcg@{K}']:.4f}" for sp in splits},
             f'mean P@{K}': fmt(summ[n][f'precision@{K}']), f'mean NDCG@{K}': fmt(summ[n][f'ndcg@{K}']),
             f'mean R@{K}': f"{summ[n][f'recall@{K}'][0]:.4f}", 'coverage': f"{summ[n]['coverage'][0]:.3f}",
             'fit (s)': f"{summ[n]['fit_s'][0]:.1f}"} for n in shown]
    cols = ['model', *[f'{sp} P@{K} / NDCG@{K}' for sp in splits], f'mean P@{K}', f'mean NDCG@{K}', f'mean R@{K}',
            'coverage', 'fit (s)']
    md = [f"### Top-{K} recommendation, MovieLens 100K {', '.join(splits)}\n",
          f"Trained on uN.base; for each uN.test user the relevant items are their uN.test ratings >= {MIN_RATING}, "
          f"the candidates every item they did not rate in uN.base (users without a relevant item left out). Means "
          f"(± sd) over the splits. Most popular: training ratings >= {MIN_RATING} per item. EASE, iALS and LightFM "
          f"train on the ratings >= {MIN_RATING}; iALS: the best of a grid of {len(IALS_GRID)} (factors 32/64, "
          "regularisation 10/30, alpha 1/3; chosen by its mean NDCG on the test splits, a peer's best case: "
          f"{ials}); LightFM: WARP, {LIGHTFM['no_components']} components, {LIGHTFM_FIT['epochs']} epochs, "
          f"{LIGHTFM_FIT['num_threads']} threads, item features row-normalised. tabcollab: "
          "`CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], implicit=True, "
          f"min_rating=4, valid_pct=0.02)`, `collab_multicat_learner(dls).fit_one_cycle({EPOCHS})`, the rating model "
          f"its predicted ratings ranked. Seed {SEED}; fit times on a shared 2-core CPU, indicative.\n",
          markdown_table(rows, cols)]
    if newu:
        res,n_users,n_held = newu
        md += ["\n### New users, served without retraining\n",
               f"{n_held} users (20% of u.data's, seed {SEED}) held out of training entirely; for the {n_users} of "
               f"them who liked (>= {MIN_RATING}) two items or more, half of those (rounded down, at random) are given "
               "as their history and the other half is to be found; candidates: every item but the given ones. EASE: "
               "`x_history @ B`; iALS: `recalculate_user`; tabcollab: `learn.recommend(history={user: items}, "
               "n=10)`.\n",
               markdown_table([{'model': n, f'P@{K}': r[f'precision@{K}'], f'NDCG@{K}': r[f'ndcg@{K}']}
                               for n,r in res.items()], ['model', f'P@{K}', f'NDCG@{K}'])]
        if draws:
            md += [f"\nThe same, as the mean over {len(draws['seeds'])} draws of held-out users (seeds "
                   f"{', '.join(map(str, draws['seeds']))}; each model trained anew for each draw):\n",
                   markdown_table([{'model': n, f'P@{K}': r[f'precision@{K}'], f'NDCG@{K}': r[f'ndcg@{K}']}
                                   for n,r in draws['mean'].items()], ['model', f'P@{K}', f'NDCG@{K}'])]
    if cold:
        res,n_held,n_rel = cold
        md += ["\n### New items, ranked from their genres\n",
               f"10% of the items ({n_held}, seed {SEED}, the same as the accuracy benchmark's) held out of "
               f"training entirely. Each user ranks all {n_held} of them; relevant are the user's ratings "
               f">= {MIN_RATING} of them in u1.base + u1.test ({n_rel:,}). AUC: mean per-user AUC over the users "
               "with a relevant and a non-relevant item; among rated: the same over the held-out items the user "
               f"rated (liked against not liked); NDCG@{K} of each user's 10 best. Genre popularity: the mean over "
               f"the item's genres of the genre's count of training ratings >= {MIN_RATING}. LightFM trains on the "
               "other items and scores the new ones from their genres.\n",
               markdown_table([{'model': n, 'AUC': r['auc'], 'AUC among rated': r['auc_rated'],
                                f'NDCG@{K}': r[f'ndcg@{K}'], 'users': r['n_users']} for n,r in res.items()],
                              ['model', 'AUC', 'AUC among rated', f'NDCG@{K}', 'users'])]
    md.append(f"\n_{env}_\n")
    return '\n'.join(md)


def main():
    p = data_arg(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('--splits', nargs='+', default=['u1','u2','u3','u4','u5'])
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help='also write the report to nbs/benchmarks.md ("## Ranking")')
    p.add_argument('--no-new-users', action='store_true', help='skip the new-user protocol')
    p.add_argument('--no-new-items', action='store_true', help='skip the new-item protocol')
    p.add_argument('--new-user-draws', type=int, default=5,
                   help='also report the new-user protocol as the mean over this many draws of held-out users')
    args = p.parse_args()
    path = ml100k(args.data)
    ratings,items = load_movielens(path)
    per_split = {}
    for split in args.splits:
        print(split, flush=True)
        df,valid_idx = official_split(path, split)
        train,test = df.drop(index=valid_idx),df.iloc[valid_idx]
        per_split[split] = top10(Problem(train, np.sort(test['user'].unique()), items), test)
    summ = summary(per_split)
    newu = None if args.no_new_users else new_users(ratings, items)
    draws = None
    if newu and args.new_user_draws>1:  # a draw is 188 users: the mean over more draws says more than one
        seeds = [SEED] + [s for s in range(1, args.new_user_draws)]
        runs = [newu[0]] + [new_users(ratings, items, seed=s)[0] for s in seeds[1:]]
        draws = {'seeds': seeds, 'mean': {n: {m: float(np.mean([r[n][m] for r in runs])) for m in runs[0][n]}
                                         for n in runs[0]}}
    cold = None
    if not args.no_new_items:
        df,valid_idx = official_split(path, 'u1')
        train = df.drop(index=valid_idx)
        cold = strict_cold_start(Problem(train, np.sort(df['user'].unique()), items), df)
    env = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch {torch.__version__}, "
           f"fastai {fastai.__version__}" + (f", lightfm {lightfm.__version__}" if lightfm else '')
           + (f", implicit {implicit.__version__}" if implicit else ''))
    md = report_md(per_split, summ, newu, cold, None, env, draws)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    (out/'ranking.md').write_text(md)
    (out/'ranking.json').write_text(json.dumps({'k': K, 'per_split': per_split, 'summary': summ, 'new_users': newu,
                                                 'new_users_draws': draws, 'new_items': cold, 'env': env},
                                                indent=1, default=str))
    if args.docs: write_docs_block('ranking', md, SECTION, before='## Speed')
    print(md)


if __name__ == '__main__': main()
