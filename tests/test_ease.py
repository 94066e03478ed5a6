"""The EASE start of the history ranking model (`ease_init`): what it computes, from which rows, and when it applies"""
import warnings
import numpy as np, pandas as pd, pytest, torch
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


# --- the EASE prior blended into prediction (`ease_blend`, `EaseBlend`)

@pytest.fixture(scope='module')
def blended(data):
    learn = learner(dls_of(*data))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    return learn


def test_fit_sets_the_blend_weight(blended):
    m = blended.model.eval()
    w = float(m.prior_w)
    assert w > 0
    assert w == pytest.approx(learner_mod.ease_blend_weight(m, blended.dls.train_ds), rel=1e-5)
    assert learner_mod.ease_blend_weight(m, blended.dls.train_ds, share=0.5) == pytest.approx(2*w, rel=1e-5)


def test_training_never_sees_the_prior(blended):
    m, b = blended.model, blended.dls.one_batch()
    with torch.no_grad():
        m.train(); torch.manual_seed(0); a = m(*b[:-1])
        w = float(m.prior_w); m.prior_w.fill_(100.)
        torch.manual_seed(0); c = m(*b[:-1])
        m.prior_w.fill_(w)
    for x, y in zip(a, c): assert torch.equal(x, y)


def test_prediction_adds_the_weighted_ease_score(blended):
    m, ds = blended.model.eval(), blended.dls.train_ds
    users = torch.arange(1, 6)
    with torch.no_grad():
        both = score_items(m, ds, users)
        w = float(m.prior_w); m.prior_w.zero_(); trained = score_items(m, ds, users); m.prior_w.fill_(w)
    assert not torch.allclose(both, trained)
    assert (both - trained)[:, 0].abs().max() < 1e-6  # `#na#`, a new item: no EASE vector, nothing added


def test_the_weight_follows_the_weights_only(blended):
    "Predicting again leaves `prior_w` as it is; predicting after the weights change sets it anew"
    m, dl = blended.model, blended.dls.test_dl(blended.dls.train_ds.decode().items.iloc[:3])
    w = float(m.prior_w)
    try:
        m.prior_w.fill_(7.)
        blended.get_preds(dl=dl)
        assert float(m.prior_w) == 7.  # the weights are as when it was set: not computed again
        with torch.no_grad(): m.bag_embeds[0].mlp[-1].bias.add_(1.)  # a change the fingerprint sees
        blended.get_preds(dl=dl)
        assert float(m.prior_w) == pytest.approx(learner_mod.ease_blend_weight(m, blended.dls.train_ds), rel=1e-5)
    finally:
        with torch.no_grad(): m.bag_embeds[0].mlp[-1].bias.sub_(1.)
        m.prior_w.fill_(w)
        blended.get_preds(dl=dl)
    assert float(m.prior_w) == pytest.approx(w, rel=1e-5)


def test_no_validation_set_still_sets_the_weight(data):
    learn = learner(CollabMultiCatDataLoaders.from_df(data[0], items=data[1], implicit=True, min_rating=4,
                                                      multicat_names=['genres'], valid_pct=0, seed=0))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    assert float(learn.model.prior_w) > 0  # after fit, with no validation to set it before


def test_save_load_and_export_keep_the_blend(blended, tmp_path):
    from tabcollab.all import save_tabcollab, load_tabcollab
    from fastai.learner import load_learner
    ref = blended.recommend([1, 2, 3], n=5)
    loaded = load_tabcollab(save_tabcollab(blended, tmp_path/'m.safetensors'))
    assert loaded.model.ease_prior == blended.model.ease_prior
    assert float(loaded.model.prior_w) == float(blended.model.prior_w) > 0
    np.testing.assert_allclose(loaded.recommend([1, 2, 3], n=5)['score'], ref['score'], rtol=1e-5)
    assert loaded.recommend([1, 2, 3], n=5)['item'].tolist() == ref['item'].tolist()
    blended.export(tmp_path/'m.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        exported = load_learner(tmp_path/'m.pkl')
    assert exported.recommend([1, 2, 3], n=5)['item'].tolist() == ref['item'].tolist()


def test_explain_shows_the_ease_share(blended):
    e = blended.explain(1, 2)
    assert 'EASE, from the history' in e.piece.tolist()
    total, pred = e.set_index('piece').loc[['total', 'prediction'], 'total']
    assert total == pytest.approx(pred, abs=1e-4)
    assert e.set_index('piece').loc['EASE, from the history', 'fit'] != 0


def test_new_users_get_the_blend_too(blended):
    "A new user with a known user's training history scores every item as that user does, EASE's share included"
    t = blended.dls.train_ds.side['user']
    user, hist = t.user.iloc[0], list(t.history.iloc[0])
    c = blended.recommend(history={'someone new': hist}, n=100, exclude_seen=False)
    d = blended.recommend(user, n=100, exclude_seen=False)
    both = pd.merge(c, d, on='item')
    assert len(both) > 50 and np.allclose(both.score_x, both.score_y, atol=1e-5)
    m = blended.model
    w = float(m.prior_w); m.prior_w.zero_()
    try: e = blended.recommend(history={'someone new': hist}, n=100, exclude_seen=False)
    finally: m.prior_w.fill_(w)
    assert not np.allclose(pd.merge(c, e, on='item').pipe(lambda f: f.score_x - f.score_y), 0)


@pytest.mark.parametrize('bad', [-0.1, float('nan'), float('inf'), 'a', True, None])
def test_ease_blend_checked(data, bad):
    dls = dls_of(*data)
    if bad is None: assert learner(dls, ease_blend=bad).model.ease_prior is not None; return
    with pytest.raises(ValueError, match='ease_blend is a share'): learner(dls, ease_blend=bad)


def test_ease_blend_needs_the_ease_start(data, monkeypatch):
    dls = dls_of(*data)
    with pytest.raises(ValueError, match='ease_blend=0.5: EASE'): learner(dls, ease_start=False, ease_blend=0.5)
    with pytest.raises(ValueError, match='ease_blend=0.5: EASE'): learner(dls, use_nn=True, ease_blend=0.5)
    assert learner(dls, ease_blend=0).model.ease_prior is None
    assert learner(dls, ease_start=False).model.ease_prior is None
    monkeypatch.setattr(learner_mod, 'EASE_INIT_MAX', 100)  # the default start does not apply
    with pytest.warns(UserWarning, match='ease_blend=0.5: the model does not start from EASE here'):
        assert collab_multicat_learner(dls, ease_blend=0.5).model.ease_prior is None


def test_string_ids_blend(data):
    ratings, items = data
    r = ratings.assign(user='u' + ratings.user.astype(str), item='i' + ratings.item.astype(str))
    it = items.assign(item='i' + items.item.astype(str))
    learn = learner(dls_of(r, it))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    assert float(learn.model.prior_w) > 0
    rec = learn.recommend(history={'ann': ['i1', 'i2', 'i3']}, n=5)
    assert len(rec) == 5 and not set(rec['item']) & {'i1', 'i2', 'i3'}


def test_ease_blend_refused_where_it_cannot_apply(data):
    dls = dls_of(*data)
    with pytest.raises(ValueError, match="bag_mode 'mean' or 'sum'"): learner(dls, bag_mode='max', ease_blend=0.5)
    assert learner(dls, bag_mode='max').model.ease_prior is None  # the default: no start, no blend, no error
    with pytest.raises(ValueError, match='implicit=True and history=True in from_df'):
        learner(dls_of(*data, implicit=False, min_rating=None), ease_blend=0.5)
    with pytest.raises(ValueError, match='from 0 .none. to 100'): learner(dls, ease_blend=1e40)
    assert learner(dls, ease_blend=100).model.ease_prior is not None


def test_weights_saved_without_a_prior_load(blended, tmp_path):
    "fastai's learn.save of a model from before the prior (no prior keys) loads, keeping the model's own prior"
    m = blended.model
    sd = {k: v for k, v in m.state_dict().items() if not k.startswith('prior_')}
    prior = m.prior_items.clone()
    with pytest.warns(UserWarning, match='have no EASE prior'): m.load_state_dict(sd)
    assert torch.equal(m.prior_items, prior)
    with pytest.raises(RuntimeError, match='prior_items'):  # only all three missing are forgiven
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != 'prior_items'})


def test_unknown_history_items_change_nothing(blended):
    t = blended.dls.train_ds.side['user']
    hist = list(t.history.iloc[0])[:3]
    a = blended.recommend(history={'a': hist}, n=20)
    with pytest.warns(UserWarning, match='1 of the 4 history items is an item the model has no history of'):
        b = blended.recommend(history={'a': hist + [987654]}, n=20)
    assert a.item.tolist() == b.item.tolist() and np.allclose(a.score, b.score, atol=1e-6)


def test_no_user_table_with_a_history(blended):
    with pytest.raises(ValueError, match="places users by their history.*embeddings\\('history'\\)"):
        blended.embeddings('user')
    assert len(blended.embeddings('history')) > 0
