"""The EASE start of the history ranking model (`ease_init`): what it computes, from which rows, and when it applies"""
import warnings
import numpy as np, pytest, torch
import tabcollab.learner as learner_mod
from tabcollab.all import (CollabMultiCatDataLoaders, collab_multicat_learner, synthetic_movielens, set_seed,
                           score_items, EASE_LAMBDA, ease_factors)


@pytest.fixture(scope='module')
def data():
    return synthetic_movielens(n_users=120, n_items=150, n_ratings=6000, seed=3)


def dls_of(ratings, items, **kw):
    kw = {'implicit': True, 'min_rating': 4, **kw}
    return CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0,
                                             **kw)


def learner(dls, **kw):
    set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return collab_multicat_learner(dls, **kw)


def ease_scores(ds):
    "Every training user's EASE scores (numpy, the textbook formula) from the training positives, and their codes"
    u, i = ds.items['user'].to_numpy(np.int64), ds.items['item'].to_numpy(np.int64)
    ok = ds.positives() & (u > 0) & (i > 0)
    X = np.zeros((ds.n_users, ds.n_items)); X[u[ok], i[ok]] = 1
    P = np.linalg.inv(X.T@X + EASE_LAMBDA*np.eye(ds.n_items)); B = -P/np.diag(P); np.fill_diagonal(B, 0)
    users = np.flatnonzero(X.sum(1) > 0)
    return (X[users]@B)[:, 1:], users, X[users].sum(1, keepdims=True)


def model_scores(learn, users):
    with torch.no_grad():
        return score_items(learn.model.eval(), learn.dls.train_ds, torch.as_tensor(users)).numpy()[:, 1:]


def corr(a, b): return np.corrcoef(a.ravel(), b.ravel())[0, 1]


@pytest.mark.parametrize('shape', [(120, 150), (200, 60)])  # fewer users than items (Woodbury), and more
def test_default_starts_at_ease(shape):
    dls = dls_of(*synthetic_movielens(n_users=shape[0], n_items=shape[1], n_ratings=6000, seed=3))
    ref, users, n = ease_scores(dls.train_ds)
    learn = learner(dls)
    assert corr(model_scores(learn, users)*n, ref) > 0.95  # a mean of the history: times its length, EASE's sum
    assert corr(model_scores(learner(dls, ease_start=False), users), ref) < 0.5


@pytest.mark.parametrize('shape', [(50, 300), (300, 50)])
def test_ease_factors_are_the_best_low_rank_ease(shape):
    "Either way round (a users x users inverse when fewer users), H V' is the rank-k truncation of EASE's B"
    rng = np.random.default_rng(0)
    X = (rng.random(shape) < 0.1)*1.
    X[:, 0] = 0
    B = np.linalg.inv(X.T@X + EASE_LAMBDA*np.eye(shape[1])); B = -B/np.diag(B); np.fill_diagonal(B, 0)
    U, S, Vt = np.linalg.svd(B)
    best = (U[:, :20]*S[:20])@Vt[:20]
    h, v = ease_factors(np.argwhere(X), shape[1], 20)
    err = np.linalg.norm(h.numpy()@v.numpy().T - B)/np.linalg.norm(B)
    assert err < 1.01*np.linalg.norm(best - B)/np.linalg.norm(B), err


def test_string_and_category_ids_start_at_ease(data):
    ratings, items = data
    for conv in (lambda s: 'id' + s.astype(str), lambda s: s.astype(str).astype('category')):
        r, it = ratings.copy(), items.copy()
        r['user'], r['item'], it['item'] = conv(r['user']), conv(r['item']), conv(it['item'])
        dls = dls_of(r, it)
        ref, users, n = ease_scores(dls.train_ds)
        assert corr(model_scores(learner(dls), users)*n, ref) > 0.95


def test_only_training_positives_enter(data):
    "Validation rows and ratings below min_rating change nothing: the start is EASE of the training positives"
    ratings, items = data
    dls = dls_of(ratings, items)
    a = learner(dls).model.state_dict()
    valid = dls.valid_ds.items.index
    changed = ratings.copy()
    changed.loc[valid, 'rating'] = np.where(changed.loc[valid, 'rating'] >= 4, 1, 5)  # every validation row flipped
    low = changed.index.difference(valid)[changed.loc[changed.index.difference(valid), 'rating'] < 4]
    changed.loc[low, 'rating'] = 3 - changed.loc[low, 'rating'] % 2  # below 4 either way
    dls2 = dls_of(changed, items)
    assert dls2.valid_ds.items.index.equals(valid)
    b = learner(dls2).model.state_dict()
    for k in ('embeds.1.weight', 'bag_embeds.1.weight'):  # the item ids, the history
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_other_tables_start_at_zero(data):
    m = learner(dls_of(*data)).model.requires_grad_(False)
    assert float(m.bag_embeds[0].weight.abs().max()) == 0  # genres
    assert float(m.bag_embeds[0].mlp[-1].weight.abs().max()) == 0
    assert float(m.bag_embeds[1].weight[:2].abs().max()) == 0  # padding, #na#
    assert float(m.embeds[1].weight[1:].abs().max()) > 0


def test_sum_pooling_scores_as_ease(data):
    "With a sum of the history the scores are EASE's themselves (no rescaling by the history length)"
    dls = dls_of(*data)
    ref, users, _ = ease_scores(dls.train_ds)
    s = model_scores(learner(dls, bag_mode='sum'), users)
    assert corr(s, ref) > 0.95
    assert 0.5 < np.linalg.norm(s)/np.linalg.norm(ref) < 1.5


def test_max_pooling_starts_at_random(data):
    dls = dls_of(*data)
    ref, users, _ = ease_scores(dls.train_ds)
    assert corr(model_scores(learner(dls, bag_mode='max'), users), ref) < 0.5
    with pytest.raises(ValueError, match="'max' bag cannot start there"): learner(dls, bag_mode='max', ease_start=True)


def test_large_catalogues_start_at_random(data, monkeypatch):
    dls = dls_of(*data)
    ref, users, n = ease_scores(dls.train_ds)
    monkeypatch.setattr(learner_mod, 'EASE_INIT_MAX', 100)  # fewer than the 150 items
    assert corr(model_scores(learner(dls), users), ref) < 0.5
    with pytest.warns(UserWarning, match="ease_start=True: EASE inverts a 1[0-9][0-9] x 1[0-9][0-9] matrix.* GB"):
        learn = collab_multicat_learner(dls, ease_start=True)
    assert corr(model_scores(learn, users)*n, ref) > 0.95


@pytest.mark.parametrize('kw', [dict(use_nn=True), dict(history=False)])
def test_ease_start_needs_the_history_dot_model(data, kw):
    dls = dls_of(*data, **{k: v for k, v in kw.items() if k == 'history'})
    with pytest.raises(ValueError, match='ease_start=True: EASE starts the dot model of users by their history'):
        learner(dls, ease_start=True, **{k: v for k, v in kw.items() if k != 'history'})
    learner(dls, **{k: v for k, v in kw.items() if k != 'history'})  # by default: no start, no error


def test_ratings_take_no_ease_start(data):
    with pytest.raises(ValueError, match='ease_start=True'):
        learner(dls_of(*data, implicit=False, min_rating=None), ease_start=True)


def test_trains_from_the_start(data):
    learn = learner(dls_of(*data))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    assert all(np.isfinite(p.detach().numpy()).all() for p in learn.model.parameters())
    assert len(learn.recommend(None, n=5)) > 0
