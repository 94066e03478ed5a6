"""Inputs of the shapes real frames have: categorical dtypes at prediction time, missing and mixed ids, numbers where
lists are expected, flag groups and side tables named wrongly, masks as `valid_idx`; each gets the right encoding or an
error that names the column and the value"""
import warnings
import numpy as np, pandas as pd, pytest
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, TabularMultiCat, TabularPandas,
                           MultiCategorify, collab_multicat_learner, cell_values, Categorify)


def ratings():
    return pd.DataFrame({'user': [1,2,3]*4, 'item': [10,20,30,40]*3, 'rating': [1.,2.,3.,4.,5.,4.]*2})


ITEMS = pd.DataFrame({'item': [10,20,30,40], 'genres': ['A','B','C','D']})


def from_df(r, items=ITEMS, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return CollabMultiCatDataLoaders.from_df(r, items=items, **{'multicat_names': ['genres'], 'bs': 4, **kw})


def decoded(dl, col):
    "The decoded values of column `col` of `dl`'s rows"
    to = dl.dataset.new(dl.dataset.items.copy()); to.decode()
    return to.items[col].tolist()


def test_category_dtype_at_prediction_time_is_encoded_by_the_learned_classes():
    # `Categorify` takes a `category` column's own codes as they are: the classes it learned would be ignored
    df = pd.DataFrame({'size': pd.Categorical(list('SMLSMLSMLS'), categories=['S','M','L']), 'tags': ['a','b']*5,
                       'y': np.arange(10.)})
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['size'], multicat_names=['tags'], y_names='y',
                                             valid_idx=[9], bs=4)
    assert decoded(dls.test_dl(df.iloc[:3]), 'size') == ['S','M','L']
    r = ratings().assign(item=lambda d: d.item.astype('category'))
    dls = from_df(r, valid_idx=[1,5,9])  # item 20 is only in the validation rows: not in the classes
    test = dls.test_dl(r.iloc[:4])
    assert decoded(test, 'item') == [10,'#na#',30,40]
    assert decoded(test, 'genres') == [['A'],['B'],['C'],['D']]  # the bag is the row's own item's, whatever its code
    plain = dls.test_dl(r.iloc[:4].astype({'item': int}))
    assert (test.one_batch()[0]==plain.one_batch()[0]).all()
    learn = collab_multicat_learner(dls)
    assert learn.get_preds(dl=test)[0].shape==(4,1)
    # inputs unchanged
    assert isinstance(r['item'].dtype, pd.CategoricalDtype) and isinstance(df['size'].dtype, pd.CategoricalDtype)


def test_category_dtype_with_missing_values():
    r = ratings().assign(item=lambda d: pd.Categorical(d.item.where(d.index!=0)))
    dls = from_df(r, valid_idx=[5])
    assert decoded(dls.test_dl(r.iloc[:2]), 'item')[0]=='#na#'


@pytest.mark.parametrize('users', [pd.Series([1,2,None,4]*3, dtype=object), pd.Series([1,2,None,4]*3, dtype='Int64'),
                                   pd.Series([2**60+1, 2**60+2, None, 2**60+4]*3, dtype=object)])
def test_missing_ids_are_na(users):
    r = ratings().assign(user=users)
    before = r.copy()
    dls = from_df(r, valid_pct=0)
    pd.testing.assert_frame_equal(r, before)  # the None/pd.NA ids of the caller's frame are left as they are
    classes = list(dls.classes['user'])
    assert classes[0]=='#na#' and len(classes)==4 and all(c==c for c in classes)
    assert classes[1:]==sorted(int(u) for u in users.dropna().unique())  # exact: big ids are not rounded through floats
    assert (dls.train.cats[:,0]==0).sum()==3  # the three rows with no user are #na#


def test_mixed_id_types_are_refused_naming_the_column():
    r = ratings().assign(user=pd.Series([1,'a',3]*4, dtype=object))
    with pytest.raises(TypeError, match=r"column 'user' mixes id types \(e.g. 1 and 'a'\)"): from_df(r)


@pytest.mark.parametrize('cells', [pd.Series([1,2,3,4], dtype=object),
                                   pd.Series([1.0, np.nan, None, 2.0], dtype=object)])
def test_numbers_only_list_column_is_refused_whatever_its_dtype(cells):
    with pytest.raises(TypeError, match=r"column 'genres', row 0: 1(\.0)? is a number "
                                        r".*\(in the side table joined on 'item'\)"):
        from_df(ratings(), items=ITEMS.assign(genres=cells))


def test_numbers_beside_lists_are_one_value_lists_and_whole_floats_are_ints():
    assert cell_values(pd.Series([[1,2], 3, 'a|b'])).tolist()==['1','2','3','a','b']
    assert cell_values(pd.Series([[1,2], np.array([1.0]), [2], []])).tolist()==['1','2','1','2']
    assert cell_values(pd.Series([[1.5], [np.float32(2.0)]])).tolist()==['1.5','2']


def test_errors_give_row_labels():
    with pytest.raises(TypeError, match=r"column 'tags', row 'b': \{'x': 1\} is not a list"):
        cell_values(pd.Series(['a', {'x':1}], index=['a','b']), name='tags')


def test_flag_group_with_a_missing_flag_column_names_it():
    flags = pd.DataFrame({'item':[10,20,30,40], 'Drama':[1,0,1,0], 'Comedy':[0,1,1,0]})
    with pytest.raises(KeyError, match=r"flag group 'genres': columns \['Horror'\] "
                                       r"not found in the side table on 'item'"):
        from_df(ratings(), items=flags, flag_groups={'genres': ['Drama','Comedy','Horror']})
    with pytest.raises(KeyError, match=r"flag group 'genres': columns \['X', 'Y'\] "
                                       r"not found in the data or its side tables"):
        from_df(ratings(), items=flags, flag_groups={'genres': ['X','Y']})


def test_flag_group_that_is_not_a_multicat_column_is_refused():
    flags = pd.DataFrame({'item':[10,20,30,40], 'Drama':[1,0,1,0], 'Comedy':[0,1,1,0]})
    with pytest.raises(ValueError, match=r"flag_groups names \['genres'\], which multicat_names \[\] lacks"):
        from_df(ratings(), items=flags, flag_groups={'genres': ['Drama','Comedy']}, multicat_names=[])


def test_list_column_in_two_side_tables_is_refused():
    users = pd.DataFrame({'user': [1,2,3], 'genres': ['A','B','A|B']})
    with pytest.raises(ValueError, match=r"column 'genres' is in the side tables joined on \['item', 'user'\]"):
        from_df(ratings(), items=ITEMS, users=users)


def test_unknown_items_are_missing_for_fill_missing():
    items = ITEMS.assign(year=[1990., np.nan, 2000., 2010.])
    dls = from_df(ratings(), items=items, cont_names=['year'], valid_idx=[0])
    t = dls.test_dl(pd.DataFrame({'user':[1,1,1], 'item':[10,20,99]}))
    na = t.dataset.items['year_na'].tolist()
    assert na==[1,2,2]  # `FillMissing`'s codes: 1 present, 2 missing (a known item's NaN and an unknown item alike)
    # without `FillMissing`, an unknown item's year is the side table's median (the model gets no NaN)
    df = pd.DataFrame({'item': [10,20,30,99], 'y': [1.,2.,3.,4.]})
    to = TabularMultiCat(df, procs=[Categorify], cat_names=['item'], cont_names=['year'], y_names='y', meta=items,
                         meta_on='item')
    assert to.items['year'].iloc[3]==2000. and to.items['year'].iloc[0]==1990.


def test_valid_idx_as_a_mask_and_all_rows():
    r = ratings()
    mask = np.asarray(r.index%4==0)
    a,b = from_df(r, valid_idx=mask),from_df(r, valid_idx=np.flatnonzero(mask))
    assert a.valid.n==b.valid.n==mask.sum()
    assert (a.valid.cats==b.valid.cats).all()
    with pytest.raises(ValueError, match="valid_idx holds all 12 rows: no training rows are left"):
        from_df(r, valid_idx=list(range(12)))
    with pytest.raises(ValueError, match="a mask of 3 values for a frame of 12 rows"):
        from_df(r, valid_idx=[True, False, True])


def test_multicategorify_in_a_plain_tabularpandas_says_what_to_use():
    df = pd.DataFrame({'tags': ['a|b', 'b'], 'y': [1., 2.]})
    with pytest.raises(TypeError, match="MultiCategorify needs a TabularMultiCat"):
        TabularPandas(df, procs=[MultiCategorify], y_names='y', reduce_memory=False)


def test_flag_columns_in_the_ratings_are_dropped_without_a_pandas_warning():
    r = ratings().assign(Drama=[1,0,0,1,0,1,0,0,1,0,1,0], Comedy=[0,1,1,1,1,0,0,1,0,1,1,0])  # per rating: row inputs
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        warnings.simplefilter('error', FutureWarning)
        dls = CollabMultiCatDataLoaders.from_df(r, multicat_names=['genres'],
                                                flag_groups={'genres': ['Drama','Comedy']}, bs=4, valid_pct=0)
    assert 'Drama' not in dls.train_ds.items.columns
    assert dls.train_ds.items['genres'].dtype.kind=='i'


def test_partial_flag_group_in_new_rows_warns_and_missing_flags_are_named():
    flags = pd.DataFrame({'item':[10,20,30,40], 'Drama':[1,0,1,0], 'Comedy':[0,1,1,0]})
    dls = from_df(ratings(), items=flags, flag_groups={'genres': ['Drama','Comedy']})
    with pytest.warns(UserWarning, match=r"flag group 'genres': the rows have \['Drama'\] "
                                         r"but not all of \['Drama', 'Comedy'\]"):
        dls.test_dl(pd.DataFrame({'user':[1], 'item':[10], 'Drama':[0]}))
    r = ratings().assign(Drama=[1,0,0,1,0,1,0,0,1,0,1,0], Comedy=[0,1,1,1,1,0,0,1,0,1,1,0])  # per rating: row inputs
    dls = CollabMultiCatDataLoaders.from_df(r, multicat_names=['genres'], flag_groups={'genres': ['Drama','Comedy']},
                                            bs=4)
    with pytest.raises(KeyError, match=r"column\(s\) \['Comedy'\] not found"):
        dls.test_dl(pd.DataFrame({'user':[1], 'item':[10], 'Drama':[0]}))


@pytest.mark.parametrize('cells,msg', [
    (pd.Series([1,2,3,4], dtype=object), r"MultiCatBlock, training items: row \d: \d is a number"),
    ([{'a':1},'a|b','b','c'], r"MultiCatBlock, training items: row \d: \{'a': 1\} is not a list"),
])
def test_multicatblock_bad_cells(cells, msg):
    from tabcollab.all import DataBlock, MultiCatBlock, RegressionBlock, ColReader
    df = pd.DataFrame({'tags': cells, 'y': [1.,2,3,4]})
    dblock = DataBlock(blocks=(MultiCatBlock(), RegressionBlock()), get_x=ColReader('tags'), get_y=ColReader('y'))
    with pytest.raises(TypeError, match=msg): dblock.dataloaders(df, bs=2)


@pytest.fixture(scope='module')
def complete_conts():
    "A learner whose continuous columns (item-, user- and row-side) have no missing value in training"
    from tabcollab.all import synthetic_movielens
    ratings,items = synthetic_movielens(n_users=60, n_items=50, n_ratings=1500, seed=3)
    items = items.assign(year=np.arange(len(items), dtype=float)+1950)
    users = pd.DataFrame({'user': np.arange(1, 61), 'age': np.arange(60, dtype=float)+18})
    ratings = ratings.assign(hour=(ratings.timestamp%24).astype(float))
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, users=users, multicat_names=['genres'],
                                            cont_names=['year','age','hour'], bs=64, seed=0)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    return learn


def test_complete_continuous_columns_do_not_break_recommend_and_interpretation(complete_conts):
    learn = complete_conts
    recs = learn.recommend(1, n=3)
    assert len(recs)==3 and recs['item'].notna().all()
    assert len(learn.recommend(None, n=2))==2*(len(learn.dls.classes['user'])-1)
    item = int(recs['item'].iloc[0])
    assert len(learn.similar_items(item, n=3))==3
    assert len(learn.item_pca(n_components=2))>0
    assert len(learn.embeddings('item'))==len(learn.dls.classes['item'])-1
    learn.explain(1, item)
    # cold start: an item no table lists gets the side table's median year (training had no missing year to fill)
    row,pred,_ = learn.predict(pd.Series({'user': 1, 'item': 9999, 'hour': 3., 'genres': ['Comedy']}))
    assert torch_isfinite(pred)


def torch_isfinite(t):
    import torch
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def test_new_rows_with_nan_in_a_column_training_had_none_in_still_fail_as_in_fastai(complete_conts):
    learn = complete_conts
    with pytest.raises(AssertionError, match="nan values in `hour`"):
        learn.dls.test_dl(pd.DataFrame({'user': [1], 'item': [1], 'hour': [np.nan]}))


def test_implicit_get_preds_with_input_and_a_clear_with_loss_error():
    from tabcollab.all import synthetic_movielens
    r,i = synthetic_movielens(n_users=60, n_items=50, n_ratings=1500, seed=3)
    dls = CollabMultiCatDataLoaders.from_df(r, items=i, multicat_names=['genres'], bs=128, implicit=True, min_rating=4)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
        inp,preds,_ = learn.get_preds(with_input=True)
        assert len(inp)==dls.n_inp and preds.shape==(len(dls.valid_ds),1)
        assert (learn.get_preds()[0]==preds).all()
        with pytest.raises(ValueError, match="a ranking model has no per-row loss"): learn.get_preds(with_loss=True)


@pytest.fixture(scope='module')
def small_learner():
    from tabcollab.all import synthetic_movielens
    r,i = synthetic_movielens(n_users=60, n_items=50, n_ratings=1500, seed=3)
    dls = CollabMultiCatDataLoaders.from_df(r, items=i, multicat_names=['genres'], bs=64, seed=0)
    learn = collab_multicat_learner(dls, n_factors=8)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    return learn


@pytest.mark.parametrize('call,msg', [
    (lambda l: l.recommend(1, chunk=0), "chunk must be an integer >= 1, got 0"),
    (lambda l: l.recommend(1, chunk=1.5), "chunk must be an integer >= 1, got 1.5"),
    (lambda l: l.recommend(True), "user must be a user id, a list of them or None, got True"),
    (lambda l: l.similar_items(1, n=-1), "n must be an integer >= 1, got -1"),
    (lambda l: l.similar_items(1, n=2.5), "n must be an integer >= 1, got 2.5"),
    (lambda l: l.similar_genres('Comedy', n=0), "n must be an integer >= 1, got 0"),
    (lambda l: l.item_pca(n_components=0), "n_components must be an integer >= 1, got 0"),
    (lambda l: l.item_pca(n_components=9, min_ratings=0), "n_components must be at most the 8 factors"),
    (lambda l: l.plot_item_pca(x='foo'), "x must name a component, 'PC1', 'PC2'..., got 'foo'"),
    (lambda l: collab_multicat_learner(l.dls, n_factors=0), "n_factors must be an integer >= 1, got 0"),
    (lambda l: collab_multicat_learner(l.dls, item_dropout=2),
     r"item_dropout is a share of the rows, in \[0, 1\): got 2"),
])
def test_bad_arguments_name_themselves(small_learner, call, msg):
    with pytest.raises(ValueError, match=msg): call(small_learner)


def test_recommend_takes_any_iterable_of_users(small_learner):
    a = small_learner.recommend([1, 2], n=3)
    assert a.equals(small_learner.recommend(iter([1, 2]), n=3))
    assert a.equals(small_learner.recommend((u for u in [1, 2]), n=3))


def test_ids_of_another_type_at_prediction_time_warn(small_learner):
    with pytest.warns(UserWarning, match=r"column 'user' holds string ids \(e.g. '1'\) but its classes are number ids"):
        small_learner.dls.test_dl(pd.DataFrame({'user': ['1'], 'item': [1]}))
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        # unknown ids of the right type: no warning
        small_learner.dls.test_dl(pd.DataFrame({'user': [1, 99999], 'item': [1, 2]}))


def test_bool_columns_at_prediction_time():
    df = pd.DataFrame({'flag': [True, False]*5, 'size': [1., np.nan]*5, 'tags': ['a','b|c']*5, 'y': np.arange(10.)})
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['flag'], cont_names=['size'], multicat_names=['tags'],
                                             y_names='y', valid_idx=[9], bs=4)
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        assert len(dls.test_dl(df.iloc[:3]).one_batch()[0])==3
        t = dls.test_dl(pd.DataFrame({'flag': [True, None], 'size': [np.nan, 2.], 'size_na': [True, False],
                                      'tags': ['a', None]}))
    assert t.one_batch()[0].shape==(2, 2)  # flag, size_na: a `size_na` column given (bools) is no error either


def test_user_embeddings_are_indexed_by_int64_ids_before_and_after_loading(small_learner, tmp_path):
    from tabcollab.save import save_tabcollab, load_tabcollab
    emb = small_learner.embeddings('user')
    assert emb.index.dtype==np.int64
    save_tabcollab(small_learner, tmp_path/'m.safetensors')
    pd.testing.assert_frame_equal(load_tabcollab(tmp_path/'m.safetensors').embeddings('user'), emb)


# --- building blocks and the tabular path ----------------------------------------------------------------------------

def test_multihot_embedding_refuses_what_it_would_mis_pool():
    import torch
    from tabcollab.all import MultiHotEmbedding
    for n in (10, 100):  # both sides of MULTI_HOT_MAX: the product and `embedding_bag`
        e = MultiHotEmbedding(n, 2)
        with pytest.raises(TypeError, match="an integer tensor, got torch.float32"): e(torch.tensor([[1.7, 2.9]]))
        with pytest.raises(ValueError, match="a weighted mean needs weights >= 0"):
            e(torch.tensor([[1, 2]]), torch.tensor([[1., -3.]]))
        with pytest.raises(ValueError, match=r"weights must have the bags' shape \(1, 2\), got \(3,\)"):
            e(torch.tensor([[1, 2]]), torch.tensor([0., 1., 2.]))
        assert (e(torch.zeros(4, 0, dtype=torch.long))==0).all()
        assert e(torch.zeros(4, 0, dtype=torch.long)).shape==(4, 2)
        s = MultiHotEmbedding(n, 2, mode='sum')  # signed weights are fine in a sum
        with torch.no_grad(): s.weight[1:3] = torch.tensor([[1., 1.], [2., 2.]])
        assert torch.allclose(s(torch.tensor([[1, 2]]), torch.tensor([[1., -3.]])), torch.tensor([[-5., -5.]]))
        d = MultiHotEmbedding(n, 2).double()
        assert d(torch.tensor([[1, 2]]), torch.tensor([[1., 2.]], dtype=torch.float64)).dtype==torch.float64
    with pytest.raises(ValueError, match="at least 1, got 0"): MultiHotEmbedding(0, 3)


def test_models_refuse_wrong_numbers_of_inputs():
    import torch
    from tabcollab.all import MultiCatDotBias, TabularMultiCatModel
    d = MultiCatDotBias(4, cat_szs=[5,6], bag_szs=[7])
    with pytest.raises(ValueError, match=r"takes 1 bag tensor\(s\) \(its multi-category columns\), got 0"):
        d(torch.tensor([[1,2]]), None)
    with pytest.raises(ValueError, match="x_cat has 3 columns for the model's 2 categorical embeddings"):
        d(torch.tensor([[1,2,3]]), None, torch.tensor([[2,3]]))
    assert d(torch.tensor([[1,2]]), None, torch.tensor([[2,3]])).shape==(1,1)
    m = TabularMultiCatModel([(5,3)], 1, 2, [8], bag_szs=[(7,4),(100,3)])
    xc,xk,b = torch.tensor([[1],[2]]),torch.randn(2,1),torch.tensor([[1,2],[3,0]])
    with pytest.raises(ValueError, match=r"takes 2 bag tensor\(s\).*got 1"): m(xc, xk, b)
    with pytest.raises(ValueError, match=r"takes 2 bag tensor\(s\).*got 3"): m(xc, xk, b, b, b)
    assert m.eval()(xc, xk, b, b).shape==(2,2)
    with pytest.raises(ValueError, match=r"item_cats \[2\] names positions outside the 2 columns"):
        MultiCatDotBias(4, [5,6], item_cats=(2,))
    with pytest.raises(ValueError, match="needs an item-side input"): MultiCatDotBias(4, [5,6], item_cats=())
    with pytest.raises(ValueError, match="needs a user-side input"): MultiCatDotBias(4, [5,6], item_cats=(0,1))


def tabular(**kw):
    df = pd.DataFrame({'brand': list('abcabcabca'), 'weight': [1.,3.]+[2.]*8, 'tags': ['a','b|c']*5,
                       'price': np.arange(10.), 'label': ['x','y']*5})
    df = df.assign(**kw)
    return df


def test_infinite_continuous_values_are_refused_naming_the_column():
    df = tabular(weight=[1., np.inf]+[2.]*8)
    with pytest.raises(ValueError, match=r"continuous column 'weight' holds 1 infinite value\(s\), e.g. inf at row 1"):
        TabularMultiCatDataLoaders.from_df(df, cat_names=['brand'], cont_names=['weight'], multicat_names=['tags'],
                                           y_names='price', valid_idx=[8,9], bs=4)
    dls = TabularMultiCatDataLoaders.from_df(tabular(), cat_names=['brand'], cont_names=['weight'],
                                             multicat_names=['tags'], y_names='price', valid_idx=[8,9], bs=4)
    with pytest.raises(ValueError, match="continuous column 'weight' holds 1 infinite"):
        dls.test_dl(tabular(weight=[-np.inf]+[1.]*9))


@pytest.mark.parametrize('labels', [['x', None]+['y','x']*4, ['x','y']*4+['x','z']])
def test_classification_rows_without_a_class_are_refused(labels):
    from tabcollab.all import CategoryBlock
    with pytest.raises(ValueError, match=r"target column\(s\) \['label'\]: 1 row\(s\) have no class"):
        TabularMultiCatDataLoaders.from_df(tabular(label=labels), cat_names=['brand'], multicat_names=['tags'],
                                           y_names='label', y_block=CategoryBlock(), valid_idx=[8,9], bs=4)


def test_a_list_column_in_cat_names_says_where_it_goes():
    with pytest.raises(TypeError, match=r"column 'tags' holds lists \(e.g. \['a', 'b'\]\): "
                                        r"a list-valued column goes in multicat_names"):
        TabularMultiCatDataLoaders.from_df(tabular(tags=[['a','b'],['c']]*5), cat_names=['brand','tags'],
                                           y_names='price', bs=4)


def test_show_results_shows_predicted_classes_by_label():
    from tabcollab.all import CategoryBlock, tabular_multicat_learner
    from unittest import mock
    df = pd.DataFrame({'tags': ['a|b','b','c','a']*25, 'x': np.arange(100.)%7,
                       'rating': ['one','two','three','four']*25})
    dls = TabularMultiCatDataLoaders.from_df(df, cont_names=['x'], multicat_names=['tags'], y_names='rating',
                                             y_block=CategoryBlock(), valid_idx=list(range(80,100)), bs=16)
    learn = tabular_multicat_learner(dls)
    with mock.patch('tabcollab.data.display_df') as shown: learn.show_results(max_n=4, shuffle=False)
    frame = shown.call_args[0][0]
    assert set(frame['rating_pred']) <= set(dls.vocab) and set(frame['rating']) <= set(dls.vocab)
