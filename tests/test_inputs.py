"The inputs real users have: frames never modified, ids of every dtype, no validation set, odd frames, bounded memory"
import gc, subprocess, sys, textwrap, tracemalloc
import numpy as np, pandas as pd, pytest, torch
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, TabularMultiCat, MultiCategorify,
                           Categorify, Normalize, collab_multicat_learner, tabular_multicat_learner,
                           synthetic_movielens, MultiCatBlock, DataBlock, RegressionBlock, ColReader, IndexSplitter)
from tabcollab.save import save_tabcollab, load_tabcollab


@pytest.fixture(scope='module')
def data():
    return synthetic_movielens(n_users=100, n_items=90, n_ratings=3000, seed=3)


def from_df(ratings, items=None, **kw):
    return CollabMultiCatDataLoaders.from_df(ratings, items=items,
                                             **{'multicat_names': ['genres'], 'valid_pct': 0.2, 'seed': 0, **kw})


def fit(dls, n=1, **kw):
    learn = collab_multicat_learner(dls, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(n)
    return learn


def frozen(*dfs): return [df.copy(deep=True) for df in dfs]


# --- nothing a user passes in is modified ----------------------------------------------------------------------

def test_test_dl_leaves_the_callers_rows_alone():
    df = pd.DataFrame({'brand': list('abcabcabca'), 'weight': np.arange(10.), 'price': np.arange(10.)*2,
                       'tags': ['red|big', ['blue'], 'small', None, 'red', 'big|blue', [], 'red|small', 'big',
                                'blue|red']})
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['brand'], cont_names=['weight'], multicat_names=['tags'],
                                             y_names='price', valid_idx=[8,9], bs=4)
    rows = df.iloc[:3].drop(columns='price')
    before, = frozen(rows)
    dls.test_dl(rows).one_batch()
    pd.testing.assert_frame_equal(rows, before)


def test_tabular_multicat_without_reduce_memory_leaves_the_frame_alone():
    df = pd.DataFrame({'brand': ['a','b','a'], 'w': [1.,2.,3.], 'tags': ['x|y', 'y', None], 'y': [1.,2.,3.]})
    before, = frozen(df)
    TabularMultiCat(df, [Categorify, MultiCategorify, Normalize], cat_names=['brand'], cont_names=['w'],
                    multicat_names=['tags'], y_names='y', reduce_memory=False)
    pd.testing.assert_frame_equal(df, before)


def test_collab_inputs_are_never_modified(data):
    ratings,items = data
    r0,i0 = frozen(ratings, items)
    learn = fit(from_df(ratings, items))
    learn.predict(ratings.iloc[0])
    learn.recommend(ratings.user[0], n=3)
    learn.dls.test_dl(ratings.iloc[:5]).one_batch()
    pd.testing.assert_frame_equal(ratings, r0); pd.testing.assert_frame_equal(items, i0)


# --- importing one module ----------------------------------------------------------------------------------------

def test_core_alone_gives_batches_with_bags():
    code = textwrap.dedent("""
        import pandas as pd
        from tabcollab.core import TabularMultiCat, MultiCategorify
        from fastai.tabular.all import Categorify
        df = pd.DataFrame({'a': ['x','y','x','y'], 'tags': ['p|q','q',None,'p'], 'y': [1.,2.,3.,4.]})
        to = TabularMultiCat(df, [Categorify, MultiCategorify], cat_names=['a'], multicat_names=['tags'], y_names='y',
                             splits=[[0,1],[2,3]])
        print(len(to.dataloaders(bs=2).one_batch()))
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '4'  # cats, conts, tags, y


# --- no validation set -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('kw', [dict(valid_pct=0), dict(valid_idx=[])])
def test_training_on_everything(data, kw):
    ratings,items = data
    learn = fit(from_df(ratings, items, **kw))
    assert len(learn.dls.valid_ds) == 0
    _,pred,_ = learn.predict(ratings.iloc[0])
    assert torch.isfinite(pred).all()
    assert len(learn.recommend(ratings.user[0], n=5)) == 5


@pytest.mark.parametrize('n', [1, 2])
def test_one_or_two_rows(n):
    ratings = pd.DataFrame({'user': [1,2][:n], 'item': [10,11][:n], 'rating': [4.,2.][:n]})
    learn = fit(CollabMultiCatDataLoaders.from_df(ratings, valid_pct=0.2, seed=0))
    _,pred,_ = learn.predict(ratings.iloc[0])
    assert torch.isfinite(pred).all()


def test_an_empty_test_set(data):
    ratings,items = data
    learn = fit(from_df(ratings, items))
    with learn.no_bar(): preds,targs = learn.get_preds(dl=learn.dls.test_dl(ratings.iloc[:0]))
    assert preds.shape[0] == 0


# --- ids of every dtype ----------------------------------------------------------------------------------------

def test_int_ids_and_str_item_table_are_refused(data):
    ratings,items = data
    with pytest.raises(TypeError, match="column 'item' holds number ids .* but items holds string ids"):
        from_df(ratings, items.assign(item=items.item.astype(str)))


def test_ratings_without_metadata_are_counted(data):
    ratings,items = data
    with pytest.warns(UserWarning, match=r"of 3,000 rows \(.*\) have a 'item' value that items does not list: "
                                         r"their 'title', 'genres' are missing \(#na#\)"):
        from_df(ratings, items.iloc[10:])


def test_mixed_id_types_are_refused(data):
    ratings,items = data
    mixed = ratings.assign(item=ratings.item.astype(object))
    mixed.loc[0, 'item'] = str(mixed.loc[0, 'item'])
    with pytest.raises(TypeError, match="column 'item' mixes id types"):
        from_df(mixed, items.assign(item=items.item.astype(object)))


def test_large_float_ids_stay_distinct():
    ids = 2.0**24 + np.arange(30)  # float32 would merge them
    ratings = pd.DataFrame({'user': np.repeat(ids, 4), 'item': np.tile([1,2,3,4], 30),
                            'rating': np.tile([1.,2.,4.,5.], 30)})
    dls = CollabMultiCatDataLoaders.from_df(ratings, valid_pct=0, seed=0)
    assert len(dls.classes['user']) == 31


def test_float_ids_keep_their_genres(data):
    ratings,items = data
    dls = from_df(ratings.assign(item=ratings.item.astype(float)), items.assign(item=items.item.astype(float)))
    genres = dls.train_ds.bags['genres'][dls.train_ds.items['genres'].to_numpy()]
    assert (genres[:,0] > 1).all()  # every rated item has genres, none is `#na#`


@pytest.mark.parametrize('kind', ['int', 'str', 'float', 'category'])
def test_validation_only_items_are_unknown_whatever_the_id_dtype(data, kind):
    ratings,items = data
    conv = {'int': lambda s: s, 'str': lambda s: s.astype(str), 'float': lambda s: s.astype(float),
            'category': lambda s: s.astype(str).astype('category')}[kind]
    r = ratings.assign(user=conv(ratings.user), item=conv(ratings.item))
    i = items.assign(item=conv(items.item).astype(r.item.dtype) if kind!='category' else items.item.astype(str))
    valid = ratings.item.isin(ratings.item.unique()[:5]).to_numpy() | (np.arange(len(r)) % 10 == 0)
    train_idx,valid_idx = np.flatnonzero(~valid),np.flatnonzero(valid)
    dls = from_df(r, i, valid_idx=valid_idx)
    cold = ~r.item.iloc[valid_idx].isin(set(r.item.iloc[train_idx]))
    assert cold.sum() > 0
    assert len(dls.classes['item'])-1 == r.item.iloc[train_idx].nunique()   # classes come from the training rows only
    assert (dls.valid_ds.items['item'].to_numpy() == 0).sum() == cold.sum()  # validation-only items are `#na#`


def test_integer_column_names(data, tmp_path):
    ratings,items = data
    r = pd.DataFrame(ratings[['user','item','rating']].to_numpy())  # what pd.read_csv(..., header=None) gives
    learn = fit(CollabMultiCatDataLoaders.from_df(r, valid_pct=0.2, seed=0))
    assert learn.dls.train_ds.roles.user == 0 and learn.dls.train_ds.roles.rating == 2
    assert learn.dls.train_ds.roles.history == 'history'  # the users' history, joined on column 0
    assert len(learn.recommend(r[0][0], n=3)) == 3
    path = save_tabcollab(learn, tmp_path/'m.safetensors')  # a bag joined on column 0 survives saving
    pd.testing.assert_frame_equal(load_tabcollab(path).recommend(r[0][0], n=3), learn.recommend(r[0][0], n=3))


# --- odd values ----------------------------------------------------------------------------------------------------

def test_object_ratings_in_a_test_frame_are_not_truncated(data):
    ratings,items = data
    learn = fit(from_df(ratings, items))
    rows = ratings.iloc[:4].assign(rating=pd.Series(['4.5', 3.5, '2', 1], dtype=object).to_numpy())
    ys = learn.dls.test_dl(rows).one_batch()[-1]
    assert ys.flatten().tolist() == [4.5, 3.5, 2.0, 1.0]


@pytest.mark.parametrize('bad', [np.nan, np.inf, 'x'])
def test_bad_ratings_in_a_test_frame(data, bad):
    ratings,items = data
    learn = fit(from_df(ratings, items))
    rows = ratings.iloc[:4].astype({'rating': object})
    rows.iloc[2, rows.columns.get_loc('rating')] = bad
    with pytest.raises(ValueError, match="rating column 'rating' holds 1 missing, non-numeric or infinite value"):
        learn.dls.test_dl(rows)


def test_an_infinite_training_rating_is_refused(data):
    ratings,items = data
    with pytest.raises(ValueError, match="infinite"):
        from_df(ratings.assign(rating=ratings.rating.where(ratings.index!=5, np.inf)), items)


def test_a_column_cannot_have_two_roles(data):
    ratings,items = data
    with pytest.raises(ValueError, match="column 'genres' is in both cat_names and multicat_names"):
        from_df(ratings, items, cat_names=['genres'])


def test_recommend_n_must_be_positive(data):
    ratings,items = data
    learn = fit(from_df(ratings, items))
    for n in [-5, 0, 2.5]:
        with pytest.raises(ValueError, match="n must be an integer >= 1"): learn.recommend(ratings.user[0], n=n)


def test_multicat_block_keeps_every_value_of_a_tuple():
    df = pd.DataFrame({'tags': [('red','big'), ('blue','small','red'), ('red',), ()], 'price': [1., 2., 3., 4.]})
    dls = DataBlock(blocks=(MultiCatBlock, RegressionBlock), get_x=ColReader('tags'), get_y=ColReader('price'),
                    splitter=IndexSplitter([3])).dataloaders(df, bs=3, shuffle=False)
    x,_ = dls.one_batch()
    assert (x>0).sum(1).tolist() == [2, 3, 1]


def test_save_tabcollab_takes_the_default_tabular_learner(tmp_path):
    df = pd.DataFrame({'brand': list('abcabcabca'),
                       'tags': ['red|big', 'blue', 'small', None, 'red', 'big|blue', '', 'red', 'big', 'blue'],
                       'price': np.arange(10.)})
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['brand'], multicat_names=['tags'], y_names='price',
                                             valid_idx=[8,9], bs=4)
    learn = tabular_multicat_learner(dls)
    learn2 = load_tabcollab(save_tabcollab(learn, tmp_path/'m.safetensors'))
    tdl = learn.dls.test_dl(df.iloc[:4])
    with learn.no_bar(), learn2.no_bar():
        torch.testing.assert_close(learn.get_preds(dl=tdl)[0], learn2.get_preds(dl=learn2.dls.test_dl(df.iloc[:4]))[0])


# --- memory ----------------------------------------------------------------------------------------------------------

def test_predict_does_not_grow_memory(data):
    ratings,items = data
    learn = fit(from_df(ratings, items))
    row = ratings.iloc[0]
    for _ in range(20): learn.predict(row)
    gc.collect(); tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(200):
        with learn.no_bar(): learn.predict(row)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(learn.__dict__.get('_cbs_cache', {})) <= 30, "one dispatch table, not one per call"
    assert grown < 2_000_000, f"200 predict calls kept {grown:,} bytes"
