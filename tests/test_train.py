"End to end: data from a synthetic frame built here, training, prediction, cold start, test sets"
import numpy as np, pandas as pd, pytest, torch
from fastai.tabular.all import load_learner
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, collab_multicat_learner,
                           tabular_multicat_learner, load_movielens)


def quiet_fit(learn, epochs=3, lr=None):
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
        return learn.get_preds()


def rmse(preds, targs): return float(((preds.flatten()-targs.flatten())**2).mean().sqrt())


@pytest.fixture(scope='module')
def trained(small_ml):
    ratings,items = small_ml
    valid_idx = np.arange(len(ratings)-1200, len(ratings))
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_idx=valid_idx, bs=64)
    learn = collab_multicat_learner(dls)
    preds,targs = quiet_fit(learn)
    return learn,preds,targs,valid_idx


def test_collab_learner_beats_the_global_mean(small_ml, trained):
    ratings,_ = small_ml
    learn,preds,targs,valid_idx = trained
    mean = ratings.rating.drop(valid_idx).mean()
    assert rmse(preds, targs) < rmse(torch.full_like(targs, mean), targs) - 0.05


def test_predictions_come_in_valid_idx_order(small_ml, trained):
    ratings,_ = small_ml
    _,preds,targs,valid_idx = trained
    assert preds.shape == (len(valid_idx), 1)
    assert np.allclose(targs.flatten().numpy(), ratings.rating.to_numpy()[valid_idx])


def test_cold_start_uses_the_row_genres(trained):
    "An item never seen in training gets #na# as its id, and its genres still count"
    learn = trained[0]
    rows = pd.DataFrame({'user': [5,5,5], 'item': [-1,-1,-1], 'genres': [['Comedy'], ['Horror','War'], None]})
    dl = learn.dls.test_dl(rows)
    cats,conts,genres,history = dl.one_batch()
    assert (cats[:,1] == 0).all() and (history > 1).any()  # user 5's history of rated items
    assert genres[2].tolist()[0] == 1  # no genres: #na#
    with learn.no_bar(): preds,_ = learn.get_preds(dl=dl)
    assert len(set(preds.flatten().tolist())) == 3
    _,pred,_ = learn.predict(pd.Series({'user': 5, 'item': -1, 'genres': ['Comedy']}))
    assert torch.allclose(pred, preds[0], atol=1e-5)


def test_known_item_joins_its_genres_from_items(small_ml, trained):
    ratings,items = small_ml
    learn = trained[0]
    item = int(ratings.item.iloc[0])
    dl = learn.dls.test_dl(pd.DataFrame({'user': [1], 'item': [item]}))
    genres = dl.one_batch()[2][0]
    vocab = learn.dls.multicat_classes['genres']
    assert {vocab[i] for i in genres.tolist() if i>1} == set(items.genres[items.item==item].iloc[0]) or \
        (genres.tolist()==[1] and items.genres[items.item==item].iloc[0]==[])


def test_export_round_trip(tmp_path, trained):
    learn = trained[0]
    rows = pd.DataFrame({'user': [1,2,999], 'item': [1,5,-7], 'genres': [None, None, 'Drama']})
    with learn.no_bar(): before,_ = learn.get_preds(dl=learn.dls.test_dl(rows))
    learn.export(tmp_path/'model.pkl')
    learn2 = load_learner(tmp_path/'model.pkl')
    with learn2.no_bar(): after,_ = learn2.get_preds(dl=learn2.dls.test_dl(rows))
    assert torch.allclose(before, after)
    assert list(learn2.dls.multicat_classes['genres']) == list(learn.dls.multicat_classes['genres'])


def test_neural_model_trains(small_ml):
    ratings,items = small_ml
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0)
    learn = collab_multicat_learner(dls, use_nn=True, layers=[32])
    preds,targs = quiet_fit(learn, 2)
    assert rmse(preds, targs) < 1.05


def test_show_batch_and_results_print_genres_as_text(trained, monkeypatch):
    "show_batch and show_results display decoded rows: genres as 'A|B' text, ids as ids"
    import tabcollab.core, tabcollab.data
    shown = []
    for m in (tabcollab.core, tabcollab.data): monkeypatch.setattr(m, 'display_df', shown.append)
    learn = trained[0]
    learn.dls.show_batch(max_n=3)
    with learn.no_bar(): learn.show_results(max_n=4)
    batch,results = shown
    cols = ['user','item','n_ratings','genres','history','rating']  # history: the user's rated items (ids)
    assert list(batch.columns) == cols and len(batch) == 3
    assert list(results.columns) == cols+['rating_pred'] and len(results) == 4
    vocab = set(learn.dls.multicat_classes['genres'])
    for df in shown:
        assert df.genres.map(lambda s: isinstance(s, str) and all(g in vocab for g in s.split('|') if g)).all()


def test_tabular_tags_predict_price():
    "The pieces are not collab-only: tags next to a category and a number predict a price"
    rng = np.random.default_rng(0)
    names = np.array(['organic','premium','large','eco','vintage','sale'])
    values = np.array([3., 8., 5., 2., 6., -4.])
    has = rng.random((1500, len(names))) < 0.3
    df = pd.DataFrame({'brand': rng.choice(list('abc'), 1500), 'weight': rng.uniform(0, 5, 1500),
                       'tags': [list(names[h]) for h in has]})
    df['price'] = (10 + df.weight + has@values + rng.normal(0, 0.5, 1500)).astype('float32')
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['brand'], cont_names=['weight'], multicat_names=['tags'],
                                             y_names='price', valid_pct=0.2, seed=0, bs=64)
    # tag values add up: 'sum' pooling
    learn = tabular_multicat_learner(dls, layers=[32], y_range=(0,40), bag_mode='sum')
    preds,targs = quiet_fit(learn, 8, 1e-2)
    assert rmse(preds, targs) < 1.0  # without the tags it cannot go below their spread (about 5)


def test_movielens_100k_loads(ml100k):
    ratings,items = load_movielens(ml100k)
    assert ratings.shape == (100_000, 4) and list(ratings.columns) == ['user','item','rating','timestamp']
    assert len(items) == 1682 and list(items.columns) == ['item','title','genres']
    assert items.genres.map(len).between(0, 6).all()
    assert (items.genres.map(len) == 0).sum() == 2  # the two movies flagged only 'unknown'


def test_user_side_table_joins_demographics_and_a_bag(small_ml):
    "A user table gives categorical, continuous and list columns, joined at training and at prediction time"
    ratings,items = small_ml
    uids = np.sort(ratings.user.unique())
    rng = np.random.default_rng(0)
    users = pd.DataFrame({'user': uids, 'age': rng.integers(18, 70, len(uids)).astype(float),
                          'gender': rng.choice(['F','M'], len(uids)),
                          'rated': [list(ratings.item[ratings.user==u].astype(str)[:20]) for u in uids]})
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, users=users, multicat_names=['genres','rated'],
                                            cat_names=['gender'], cont_names=['age'], valid_pct=0.2, seed=0)
    learn = collab_multicat_learner(dls)
    item_cats = {1, dls.cat_names.index('n_ratings')}
    # genres with the item, the rest with the user
    assert learn.model.item_cats == item_cats and learn.model.item_bags == {0}
    quiet_fit(learn, 1)
    u = int(uids[0])
    dl = learn.dls.test_dl(pd.DataFrame({'user': [u, -5], 'item': [int(ratings.item[0])]*2}))
    cats,conts,genres,rated,history = dl.one_batch()
    assert dls.classes['gender'][int(cats[0,2])] == users.gender[0] and cats[1,2] == 0      # unknown user: #na#
    norm = dls.train_ds.procs.normalize
    assert np.isclose(float(conts[0,0])*norm.stds['age']+norm.means['age'], users.age[0], atol=1e-3)
    assert (rated[0]>1).sum() == len(set(users.rated[0])) and rated[1].tolist()[0] == 1
    _,pred,_ = learn.predict(pd.Series({'user': u, 'item': int(ratings.item[0])}))
    assert 0.5 <= float(pred) <= 5.5


def test_lean_dispatch_calls_every_callback_like_fastai(small_ml):
    "MultiCatLearner's cached dispatch fires the same events, in the same order, as fastai's Learner"
    from fastai.learner import Learner
    from fastai.callback.core import Callback
    ratings,items = small_ml
    class EventLog(Callback):
        order = 5
        def __init__(self): self.seen = []
        def before_epoch(self): self.seen.append('before_epoch')
        def before_batch(self): self.seen.append('before_batch')
        def after_loss(self): self.seen.append('after_loss')
        def after_step(self): self.seen.append('after_step')
        def after_batch(self): self.seen.append('after_batch')
    logs = []
    for cls in (Learner, None):
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0,
                                                bs=512)
        learn = collab_multicat_learner(dls)
        if cls is not None: learn.__class__ = type('PlainLearner', (cls,), {'predict': learn.predict})
        log = EventLog()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=log)   # a callback added for one fit only
        logs.append(log.seen)
    assert logs[0] == logs[1] and logs[0].count('after_step') == len(dls.train)
