"""Every kind of id (int, str, float, category, nullable Int64 and string) through every collaborative method, and every
learner kind saved and loaded with identical predictions"""
import warnings
import numpy as np, pandas as pd, pytest, torch
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, collab_multicat_learner,
                           tabular_multicat_learner, synthetic_movielens, CategoryBlock, RankingEval)
from tabcollab.save import save_tabcollab, load_tabcollab
from tabcollab.cli import main

KINDS = {
    'int': lambda s, p: s.astype(np.int64),
    'str': lambda s, p: s.map(f'{p}{{}}'.format),
    'float': lambda s, p: s.astype(np.float64) + 0.5,
    'category': lambda s, p: s.map(f'{p}{{}}'.format).astype('category'),
    'Int64': lambda s, p: s.astype('Int64'),
    'string': lambda s, p: s.map(f'{p}{{}}'.format).astype('string'),
}


def data(kind, seed=0):
    "Small ratings and an item table (genres, title) whose user and item ids are of `kind`"
    r, it = synthetic_movielens(n_users=30, n_items=60, n_ratings=700, seed=seed)
    f = KINDS[kind]
    return r.assign(user=f(r.user, 'u'), item=f(r.item, 'i')), it.assign(item=f(it.item, 'i'))


def quiet(f):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return f()


def fit(dls, epochs=1, **kw):
    learn = collab_multicat_learner(dls, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, 1e-2)
    return learn


def preds_of(learn, df):
    with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(df))[0]


@pytest.mark.parametrize('implicit', [False, True], ids=['rating', 'ranking'])
@pytest.mark.parametrize('kind', list(KINDS))
def test_every_id_kind_through_every_method(kind, implicit, tmp_path, capsys):
    ratings, items = data(kind)
    kw = dict(implicit=True, min_rating=4) if implicit else {}
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, user_name='user', item_name='item',
                                            rating_name='rating', multicat_names=['genres'], valid_pct=0.2, seed=0,
                                            bs=64, **kw)
    learn = fit(dls)
    if implicit: assert set(RankingEval(5).compute(learn)) >= {'precision@5', 'ndcg@5'}
    user, item = ratings.user.iloc[0], ratings.item.iloc[0]
    # predict and test_dl/get_preds: the same score for the same row, whatever the frame's dtypes
    row = ratings.iloc[0]
    pred = learn.predict(row)[-1] if not implicit else None
    preds = preds_of(learn, ratings.iloc[:5])
    assert preds.shape[0]==5 and torch.isfinite(preds).all()
    if pred is not None: assert torch.allclose(pred.float().flatten(), preds[0].float().flatten(), atol=1e-5)
    # recommend: one user, a list, every user; ids come back as they were given (values, not codes)
    one = learn.recommend(user, n=3)
    assert len(one)==3 and set(one['item']) <= set(items['item'])
    two = learn.recommend(list(ratings.user.unique()[:2]), n=3)
    assert set(two['user']) == set(ratings.user.unique()[:2])
    every = learn.recommend(None, n=2)
    assert every['user'].nunique() == dls.train_ds.n_users-1
    sim = learn.similar_items(item, n=3)
    assert len(sim)==3 and item not in set(sim['item'])
    ex = learn.explain(user, item)
    assert 'prediction' in set(ex['piece']) or 'item id' in ' '.join(map(str, ex['piece']))
    pca = learn.item_pca(n_components=2, min_ratings=0)
    assert {'PC1', 'PC2'} <= set(pca.columns) and set(pca['item']) <= set(items['item'])
    # saved and loaded: the same predictions, recommendations and id types
    path = save_tabcollab(learn, tmp_path/'m.safetensors')
    back = load_tabcollab(path)
    assert torch.allclose(preds_of(back, ratings.iloc[:5]), preds, atol=1e-6)
    pd.testing.assert_frame_equal(back.recommend(user, n=3), one)
    # the command line: ids as typed in a shell
    assert main(['recommend', '--model', str(path), '--user', str(user), '-n', '3']) == 0
    out = capsys.readouterr().out
    assert str(one['item'].iloc[0]) in out


def tabular_frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    tags = np.array(['red', 'blue|big', 'small', 'big|red', ''], dtype=object)[rng.integers(0, 5, n)]
    return pd.DataFrame({'brand': rng.choice(['a', 'b', 'c'], n), 'weight': rng.normal(size=n), 'tags': tags,
                         'shop': rng.integers(0, 6, n), 'price': rng.normal(size=n),
                         'label': rng.choice(['cheap', 'dear'], n)})


SHOPS = pd.DataFrame({'shop': range(6), 'city': list('xyzxyz'), 'size': [1., 2., 3., 4., 5., 6.]})


def make_learner(kind, side):
    "A trained learner of each kind, with or without a side table"
    if kind in ('rating', 'ranking', 'neural'):
        ratings, items = data('str', seed=1)
        kw = dict(implicit=True, min_rating=4) if kind=='ranking' else {}
        dls = quiet(lambda: CollabMultiCatDataLoaders.from_df(
            ratings, items=items if side else None, multicat_names=['genres'] if side else None, valid_pct=0.2, seed=0,
            **kw))
        return fit(dls, use_nn=kind=='neural'), ratings.iloc[:20]
    df = tabular_frame()
    y = dict(y_names='price') if kind=='regression' else dict(y_names='label', y_block=CategoryBlock())
    extra = dict(meta=SHOPS, meta_on='shop', cat_names=['brand', 'city'], cont_names=['weight', 'size']) if side else \
        dict(cat_names=['brand'], cont_names=['weight'])
    dls = TabularMultiCatDataLoaders.from_df(df, multicat_names=['tags'], valid_idx=list(range(100, 120)), bs=16, **y,
                                             **extra)
    learn = tabular_multicat_learner(dls, layers=[8])
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    return learn, df.iloc[100:]


@pytest.mark.parametrize('side', [True, False], ids=['side tables', 'no side table'])
@pytest.mark.parametrize('kind', ['rating', 'ranking', 'neural', 'regression', 'classification'])
def test_every_learner_kind_round_trips_with_identical_predictions(kind, side, tmp_path):
    learn, rows = make_learner(kind, side)
    back = load_tabcollab(save_tabcollab(learn, tmp_path/'m.safetensors'))
    assert torch.equal(preds_of(back, rows), preds_of(learn, rows))
    if kind=='classification': assert back.predict(rows.iloc[0])[1] == learn.predict(rows.iloc[0])[1]
