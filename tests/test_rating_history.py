"""Ratings with a history (the default): each user's bag of at most `HISTORY_MAX` training items next to their id,
new users predicted from the items they rated, and the sparse pooling of larger bags (`bag_shares`)"""
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from tabcollab.all import (CollabMultiCatDataLoaders, collab_multicat_learner, synthetic_movielens, set_seed,
                           MultiHotEmbedding, bag_shares, HISTORY_MAX, HISTORY_ROWS_MAX, COLLAB_HISTORY_WD)
from tabcollab.save import save_tabcollab, load_tabcollab


@pytest.fixture(scope='module')
def data():
    return synthetic_movielens(n_users=80, n_items=200, n_ratings=5000, seed=3)


def dls_of(ratings, items, **kw):
    return CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0,
                                             **kw)


@pytest.fixture(scope='module')
def learn(data):
    set_seed(0)
    learn = collab_multicat_learner(dls_of(*data))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    return learn


def test_the_rating_history_is_a_capped_sample_of_training_items(data):
    ratings, items = data
    dls = dls_of(ratings, items)
    ds = dls.train_ds
    assert ds.roles.history=='history' and ds.multicat_names[-1]=='history' and not ds.roles.implicit
    train = ratings.loc[ds.items.index]  # the training rows (the frame's own index labels)
    assert 0 < len(train) < len(ratings)
    by_user = train.groupby('user')['item'].agg(set)
    t = ds.side['user']
    longer = 0
    for u,h in zip(t.user, t.history):
        h = list(h)
        assert len(h)<=HISTORY_MAX and set(h) <= by_user.get(u, set())  # training items only, at most 32
        if len(by_user.get(u, ()))>HISTORY_MAX: longer += 1; assert len(h)==HISTORY_MAX
        else: assert set(h)==by_user.get(u, set())  # a short history whole
    assert longer>0  # the data has users above the cap
    # the same sample each time (seeded), and history_max sets the cap
    again = dls_of(ratings, items).train_ds.side['user']
    assert all(list(a)==list(b) for a,b in zip(t.history, again.history))
    t5 = dls_of(ratings, items, history_max=5).train_ds.side['user']
    assert max(len(h) for h in t5.history)==5


def test_the_caller_frames_are_not_changed(data):
    ratings, items = data
    r0, i0 = ratings.copy(), items.copy()
    dls_of(ratings, items)
    pd.testing.assert_frame_equal(ratings, r0); pd.testing.assert_frame_equal(items, i0)


def test_history_false_and_bad_values(data):
    ratings, items = data
    ds = dls_of(ratings, items, history=False).train_ds
    assert ds.roles.history is None and 'history' not in ds.multicat_names
    for bad in (0, -3, 2.5, 'x'):
        with pytest.raises((ValueError, TypeError), match='history_max'): dls_of(ratings, items, history_max=bad)
    with pytest.raises(ValueError, match='history is None, True or False'): dls_of(ratings, items, history='yes')
    with pytest.raises(ValueError, match="a column is already named 'history'"):
        dls_of(ratings.assign(history=1.), items)
    assert dls_of(ratings.assign(history=1.), items, history=False).train_ds.roles.history is None


def test_the_rating_learner_keeps_the_user_id(learn):
    m = learn.model
    assert not m.skip_cats and learn.wd==COLLAB_HISTORY_WD and m.n_factors==50
    assert getattr(m, 'ease_prior', None) is None
    assert len(learn.embeddings('user'))==learn.dls.train_ds.n_users-1  # a user table, unlike a ranking history
    with pytest.raises(ValueError, match='ease_blend'): collab_multicat_learner(learn.dls, ease_blend=0.5)
    with pytest.raises(ValueError, match='ease_start'): collab_multicat_learner(learn.dls, ease_start=True)


def test_a_new_user_is_predicted_from_the_items_they_rated(learn, data):
    ratings, _ = data
    liked = ratings[(ratings.user==ratings.user.iloc[0]) & (ratings.rating>=4)]['item'].tolist()[:10]
    disliked = ratings[ratings.rating<=1]['item'].value_counts().index[:10].tolist()
    a = learn.recommend(history={'new a': liked}, n=200)
    b = learn.recommend(history={'new b': disliked}, n=200)
    assert set(a.columns) >= {'user', 'item', 'predicted'} and not set(a.item) & set(liked)
    assert np.isfinite(a.predicted).all() and not np.allclose(a.sort_values('item').predicted.to_numpy()[:50],
                                                              b.sort_values('item').predicted.to_numpy()[:50])
    with pytest.raises(KeyError, match='history='): learn.recommend('no such user')


def test_string_and_category_ids(data):
    ratings, items = data
    for conv in (lambda s: 'u' + s.astype(str), lambda s: ('u' + s.astype(str)).astype('category')):
        r = ratings.assign(user=conv(ratings.user))
        set_seed(0)
        learn = collab_multicat_learner(dls_of(r, items))
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        user = r.user.iloc[0]
        _,pred,_ = learn.predict(pd.Series({'user': user, 'item': ratings.item.iloc[0]}))
        assert 0.5 <= float(pred) <= 5.5
        rec = learn.recommend(history={'someone new': list(items.item[:5])}, n=5)
        assert len(rec)==5


def test_save_and_load_keep_the_history(learn, tmp_path):
    path = tmp_path/'m.safetensors'
    save_tabcollab(learn, path)
    new = load_tabcollab(path)
    users = list(learn.dls.train_ds.side['user'].user[:5])
    a,b = learn.recommend(users, n=5),new.recommend(users, n=5)
    assert list(a.item)==list(b.item) and np.allclose(a.predicted, b.predicted, atol=1e-5)
    h = {'new': list(learn.dls.train_ds.side['item'].item[:6])}
    a,b = learn.recommend(history=h, n=5),new.recommend(history=h, n=5)
    assert list(a.item)==list(b.item)


bags_st = st.integers(1, 12).flatmap(lambda bs: st.integers(1, 9).flatmap(lambda L: st.tuples(
    st.lists(st.lists(st.integers(0, 99), min_size=L, max_size=L), min_size=bs, max_size=bs),
    st.lists(st.lists(st.floats(0, 5, allow_nan=False, width=32), min_size=L, max_size=L), min_size=bs, max_size=bs))))

@settings(max_examples=60, deadline=None)
@given(bags_st, st.sampled_from(['mean', 'sum']), st.booleans())
def test_sparse_pooling_is_embedding_bag(bw, mode, weighted):
    "A table above MULTI_HOT_MAX pools through `bag_shares`: embedding_bag's vectors and gradients, weights or not"
    bags,w = torch.tensor(bw[0]),torch.tensor(bw[1])
    e = MultiHotEmbedding(100, 5, mode)
    w = w if weighted else None
    out = e(bags, w)
    pw = (torch.ones(bags.shape) if w is None else w)*(bags!=0)
    if mode=='mean': pw = pw/pw.sum(1, keepdim=True).clamp_min(1e-12)
    ref = F.embedding_bag(bags, e.weight, per_sample_weights=pw, mode='sum', padding_idx=0)
    assert torch.allclose(out, ref, atol=1e-5)
    g, = torch.autograd.grad((out*torch.arange(5.)).sum(), e.weight)
    g_ref, = torch.autograd.grad((ref*torch.arange(5.)).sum(), e.weight)
    assert torch.allclose(g, g_ref, atol=1e-5) and not g[0].any()  # never the padding row
    assert bag_shares(bags, w, 100, mode).shape==(len(bags), 100)


def test_sparse_pooling_leaves_the_inputs_alone_and_skips_sparse_tables():
    bags = torch.tensor([[3, 3, 0], [0, 0, 0]], dtype=torch.int32)
    before = bags.clone()
    e = MultiHotEmbedding(100, 4)
    out = e(bags)
    assert torch.equal(bags, before) and torch.allclose(out[0], e.weight[3]) and not out[1].any()
    e.sparse = True  # a sparse table keeps embedding_bag, whose gradient is sparse
    e(bags.long()).sum().backward()
    assert e.weight.grad.is_sparse


def test_large_rating_data_has_no_history_by_default(data, monkeypatch):
    "Above HISTORY_ROWS_MAX training rows the rating default leaves the history out; history=True still gives it"
    import tabcollab.data
    ratings, items = data
    monkeypatch.setattr(tabcollab.data, 'HISTORY_ROWS_MAX', 1000)  # the data has 4,000 training rows
    assert HISTORY_ROWS_MAX == 5_000_000 and dls_of(ratings, items).train_ds.roles.history is None
    assert dls_of(ratings, items, history=True).train_ds.roles.history == 'history'
    implicit = dls_of(ratings, items, implicit=True, min_rating=4)
    assert implicit.train_ds.roles.history == 'history'  # implicit data: at every size


@pytest.mark.parametrize('kw', [dict(items_history=True), dict(multicat_names=['genres', 'history']),
                                 dict(cat_names=['history']), dict(rating_history=True)])
@pytest.mark.parametrize('implicit', [{}, dict(implicit=True, min_rating=4)])
def test_no_other_column_takes_the_history_s_name(data, kw, implicit):
    "A 'history' column anywhere (ratings, items) or named as an input would take the users' history's place"
    ratings, items = data
    kw = dict(kw)
    if kw.pop('items_history', False): items = items.assign(history='x')
    if kw.pop('rating_history', False): ratings = ratings.assign(history=ratings.item.map(lambda i: [i % 5]))
    names = kw.pop('multicat_names', ['genres'])
    with pytest.raises(ValueError, match="a column is already named 'history'"):
        CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=names, valid_pct=0.2, seed=0, **kw,
                                          **implicit)


def test_a_rating_history_counts_an_item_once_and_history_max_needs_a_history(data):
    ratings, items = data
    doubled = pd.concat([ratings, ratings[ratings.user==ratings.user.iloc[0]]], ignore_index=True)
    with pytest.warns(UserWarning): t = dls_of(doubled, items, history_max=1000).train_ds.side['user']
    h = list(t.loc[t.user==ratings.user.iloc[0], 'history'].iloc[0])
    assert len(h)==len(set(h)) > 0
    with pytest.raises(ValueError, match='history_max caps'): dls_of(ratings, items, history=False, history_max=5)


def test_odd_ids_and_sizes(data):
    "NaN ids (warned) stay out of every history; float ids; no validation set; a single rating"
    ratings, items = data
    r = ratings.astype({'user': float, 'item': float})
    r.loc[r.index[:3], 'user'] = np.nan
    with pytest.warns(UserWarning, match="rows have no 'user' id"): t = dls_of(r, items.astype({'item': float}))
    side = t.train_ds.side['user']
    assert side.user.notna().all() and all(np.isin(h, r.item.to_numpy()).all() for h in side.history)
    whole = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0)
    assert whole.train_ds.roles.history == 'history' and not len(whole.valid_ds)
    one = CollabMultiCatDataLoaders.from_df(ratings.iloc[:1], multicat_names=[], valid_pct=0, bs=1)
    assert [list(h) for h in one.train_ds.side['user'].history] == [[ratings.item.iloc[0]]]


def test_the_sparse_pooling_warns_nothing():
    "PyTorch's 'sparse CSR support is in beta' is taken when tabcollab is imported, not shown in a user's first fit"
    import subprocess, sys
    code = ("import warnings\nfrom tabcollab.all import *\nwarnings.simplefilter('error')\n"
            "MultiHotEmbedding(100, 4)(torch.tensor([[5, 6, 0]])).sum().backward()\nprint('ok')")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == 'ok', res.stderr[-500:]
