"""Users from their history: the batches of users (a target is never in its own input, validation rows never in a
history), new users without retraining, candidates (`items=`, new items from their metadata), `exclude=`, bad input"""
import warnings
import numpy as np, pandas as pd, pytest, torch
from tabcollab.all import (CollabMultiCatDataLoaders, collab_multicat_learner, synthetic_movielens, set_seed)
from tabcollab.save import save_tabcollab, load_tabcollab
from tabcollab.cli import main


@pytest.fixture(scope='module')
def data():
    r, it = synthetic_movielens(n_users=80, n_items=120, n_ratings=4000, seed=7)
    new = pd.DataFrame({'item': [900, 901], 'title': ['New A (2026)', 'New B (2026)'],
                        'genres': [['Comedy', 'Drama'], ['Horror']]})
    return r, pd.concat([it, new], ignore_index=True)  # two items only the item table lists


def dls_of(ratings, items, **kw):
    return CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], implicit=True,
                                             min_rating=4, valid_pct=0.2, seed=0, **kw)


@pytest.fixture(scope='module')
def learn(data):
    ratings, items = data
    set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = collab_multicat_learner(dls_of(ratings, items))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    return learn


def history_of(learn, user):
    t = learn.dls.train_ds.side['user']
    return list(t.loc[t.user==user, 'history'].iloc[0])


def test_a_target_is_never_in_its_own_input(learn):
    ds, dl = learn.dls.train_ds, learn.dls.train
    nb = len(ds.multicat_names)
    hc, item_of = ds.multicat_names.index('history'), ds.history_items()
    for _, b in zip(range(20), dl):
        kept, rows = b[2+hc]
        inputs = item_of[kept][rows]  # each row's own input history, as item codes
        assert len(rows)==len(b[0]) and not (inputs==b[0][:, 1:2]).any()
        assert (b[0][:, 1] > 0).all() and torch.isfinite(b[-1]).any()  # targets are real items; some negatives count
        assert b[2+nb][:, 1].gt(0).all()  # negatives too


def test_validation_rows_never_enter_a_history(learn, data):
    ratings, _ = data
    ds = learn.dls.train_ds
    valid = ds.items.iloc[ds.n_train:]
    users = pd.Series(list(ds.classes['user']))[valid['user'].to_numpy()].to_numpy()
    items = pd.Series(list(ds.classes['item']))[valid['item'].to_numpy()].to_numpy()
    train_pairs = set(zip(ratings.user, ratings.item)) - set(zip(users, items))
    t = ds.side['user']
    hist_pairs = {(u, i) for u, h in zip(t.user, t.history) if isinstance(h, np.ndarray) for i in h}
    assert hist_pairs and hist_pairs <= train_pairs  # training positives only
    rating_of = dict(zip(zip(ratings.user, ratings.item), ratings.rating))
    assert all(rating_of[p] >= 4 for p in hist_pairs)


def test_a_known_users_history_gives_their_recommendations(learn, data):
    "On a model that places users by history alone, a known user's training history is that user"
    ratings, _ = data
    u = ratings.user.iloc[0]
    a = learn.recommend(u, n=8)
    b = learn.recommend(history={u: history_of(learn, u)}, n=8)  # a known user: adds nothing new
    assert a.item.tolist() == b.item.tolist() and np.allclose(a.score, b.score, atol=1e-6)
    c = learn.recommend(history={'someone new': history_of(learn, u)}, n=200, exclude_seen=False)
    d = learn.recommend(u, n=200, exclude_seen=False)
    both = pd.merge(c, d, on='item')
    assert len(both) > 50 and np.allclose(both.score_x, both.score_y, atol=1e-5)


def test_history_items_are_never_returned_and_the_frame_form(learn, data):
    ratings, _ = data
    hist = {'ann': [1, 5, 9, 14], 'bob': [2, 3]}
    recs = learn.recommend(history=hist, n=15)
    assert list(recs.columns[:2]) == ['user', 'rank'] and set(recs.user) == {'ann', 'bob'}
    for u, items in hist.items(): assert not set(items) & set(recs.item[recs.user==u])
    # rows below min_rating are seen (left out), not liked (not in the history)
    frame = pd.DataFrame({'user': ['zoe']*4, 'item': [1, 5, 9, 14], 'rating': [5., 4., 1., 2.]})
    zoe = learn.recommend(history=frame, n=15)
    liked = learn.recommend(history={'zoe': [1, 5]}, n=30, exclude=[9, 14])
    assert not {1, 5, 9, 14} & set(zoe.item)
    assert zoe.item.tolist() == liked.item.tolist()[:15]


def test_items_are_the_only_candidates_and_new_ones_score_as_predict(learn, data):
    ratings, _ = data
    u = ratings.user.iloc[3]
    seen = set(ratings.item[ratings.user==u])
    cands = [i for i in [2, 7, 50, 99] if i not in seen] + [900, 901]
    recs = learn.recommend([u], n=10, items=cands)
    assert set(recs.item) == set(cands)
    new = recs[recs.item.isin([900, 901])].sort_values('item')
    assert new.genres.tolist() == [['Comedy', 'Drama'], ['Horror']]  # their metadata, from the item table
    rows = pd.DataFrame({'user': [u, u], 'item': [900, 901]})
    with learn.no_bar(): preds, _ = learn.get_preds(dl=learn.dls.test_dl(rows))
    assert np.allclose(new.score.to_numpy(), preds.flatten().numpy(), atol=1e-5)
    assert np.isclose(float(learn.predict(rows.iloc[0])[1]), new.score.iloc[0], atol=1e-5)
    ex = learn.explain(u, 900)
    assert {'genres: Comedy', 'genres: Drama'} <= set(ex.piece)  # a new item's genres, joined from the item table
    with pytest.warns(UserWarning, match=r"1 of the 3 distinct items= ids are neither items the model was"):
        assert set(learn.recommend([u], n=5, items=[900, 901, 123456]).item) == {900, 901}


def test_exclude_per_user_and_for_everyone(learn, data):
    ratings, _ = data
    u, v = ratings.user.iloc[0], ratings.user.iloc[1]
    full = learn.recommend([u, v], n=6)
    top_u, top_v = full.item[full.user==u].tolist(), full.item[full.user==v].tolist()
    per = learn.recommend([u, v], n=6, exclude={u: top_u[:2]})
    assert not set(top_u[:2]) & set(per.item[per.user==u]) and per.item[per.user==v].tolist() == top_v
    everyone = learn.recommend([u, v], n=6, exclude=[top_u[0], top_v[0]])
    assert not {top_u[0], top_v[0]} & set(everyone.item)


def test_exclude_takes_one_id_per_user_and_says_what_it_ignores(learn, data):
    ratings, _ = data
    u = ratings.user.iloc[0]
    top = learn.recommend([u], n=3).item.tolist()
    exclude = {u: top[0], 'nobody': [top[1]]}
    with pytest.warns(UserWarning, match=r"exclude: 1 of its 2 users are not among the users recommended to, "
                                         r"e.g. 'nobody': ignored"):
        recs = learn.recommend([u], n=3, exclude=exclude)
    assert top[0] not in set(recs.item) and top[1] in set(recs.item)  # one id as itself; another user's not applied
    assert exclude == {u: top[0], 'nobody': [top[1]]}


def test_unknown_exclude_ids_and_repeated_new_items_are_said(learn, data):
    ratings, items = data
    u = ratings.user.iloc[0]
    with pytest.warns(UserWarning, match=r"exclude: 1 of its 2 ids are neither items the model was trained on nor in "
                                         r"the item table, e.g. 'zzz'"):
        learn.recommend([u], n=3, exclude=[int(items.item.iloc[0]), 'zzz'])
    new = pd.DataFrame({'item': ['new1', 'new1'], 'genres': [['Comedy'], ['Horror']]})
    before = new.copy()
    with pytest.warns(UserWarning, match=r"items: 1 row\(s\) repeat the id of an earlier row, e.g. 'new1'"):
        recs = learn.recommend([u], n=3, items=new)
    assert recs.item.tolist() == ['new1'] and new.equals(before)


def test_bad_history_input_is_said(learn, data):
    ratings, _ = data
    with pytest.warns(UserWarning, match=r"3 of the 5 history items are items the model has no history of"):
        learn.recommend(history={'x': [1, 5, 123456, '1', 7.5]}, n=3)  # unknown, another type, another type
    with pytest.warns(UserWarning, match=r"1 of the 2 history items is an item the model has no history of"):
        learn.recommend(history={'x': [1, 123456]}, n=3)
    frame = pd.DataFrame({'user': ['a', None, 'a', np.nan], 'item': [1, 2, 3, 4]})
    before = frame.copy()
    with pytest.warns(UserWarning, match=r"history: 2 of its 4 rows have no 'user' id: ignored"):
        recs = learn.recommend(history=frame, n=3)
    assert set(recs.user) == {'a'} and not {1, 3} & set(recs.item) and frame.equals(before)
    with pytest.warns(UserWarning, match=r"1 user\(s\) have no history item the model knows, e.g. 'empty'"):
        recs = learn.recommend(history={'empty': []}, n=3)
    assert len(recs)==3
    u = ratings.user.iloc[0]
    with pytest.raises(ValueError, match=f"user {u} is both in `user` and in `history`"):
        learn.recommend([u], history={u: [1, 2]})
    with pytest.raises(TypeError, match="history=\\{user: \\[item ids\\]\\}: user 'x' has 5, not a list"):
        learn.recommend(history={'x': 5})
    with pytest.raises(KeyError, match=r"history: column\(s\) \['item'\] not found"):
        learn.recommend(history=pd.DataFrame({'user': [1], 'movie': [2]}))


def test_models_without_a_history_refuse_new_users(data):
    ratings, items = data
    learn = collab_multicat_learner(dls_of(ratings, items, history=False))
    assert learn.dls.train_ds.roles.history is None and not learn.dls.train.by_user
    with pytest.raises(ValueError, match="this model places users by their id, so a new user cannot be placed"):
        learn.recommend(history={'x': [1]})
    rating = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], history=True)
    assert rating.train_ds.roles.history == 'history' and not rating.train.by_user  # ratings: a bag beside the id


def test_saved_history_model_serves_new_users_and_the_cli(learn, tmp_path, capsys):
    path = save_tabcollab(learn, tmp_path/'h.safetensors')
    back = load_tabcollab(path)
    hist = {'ann': [1, 5, 9]}
    pd.testing.assert_frame_equal(back.recommend(history=hist, n=5), learn.recommend(history=hist, n=5))
    assert main(['recommend', '--model', str(path), '--items', '1,5,9', '-n', '5']) == 0
    out = capsys.readouterr().out
    assert out.startswith('We recommend to a new user who liked 1, 5, 9:')
    assert str(learn.recommend(history=hist, n=1).item.iloc[0]) in out


def test_the_neural_model_trains_on_batches_of_users(data):
    ratings, items = data
    learn = collab_multicat_learner(dls_of(ratings, items), use_nn=True)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert all(np.isfinite(v) for v in learn.validate())
    assert len(learn.recommend(history={'x': [1, 5]}, n=3)) == 3


@pytest.mark.parametrize('kw,passes', [({}, 13), ({'max_passes': 2}, 2), ({'min_batches': 10, 'user_bs': 32}, 5),
                                       ({'min_batches': 1}, 1)])
def test_an_epoch_goes_over_few_users_at_most_max_passes_times(data, kw, passes):
    dl = dls_of(*data, **kw).train
    n_users = len(dl.users)
    assert dl.n == passes*n_users
    assert len(dl) == passes*n_users//dl.bs  # whole batches of `user_bs` users (training drops the last)


def test_max_passes_must_be_a_whole_number(data):
    with pytest.raises(ValueError, match='max_passes must be an integer >= 1, got 0'): dls_of(*data, max_passes=0)
