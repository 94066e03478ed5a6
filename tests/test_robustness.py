"Bad input gets a defined answer; models round-trip exactly (pickle and weights-only); training resumes; runs repeat"
import json, subprocess, sys, textwrap
import numpy as np, pandas as pd, pytest, torch
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, collab_multicat_learner,
                           synthetic_movielens)
from tabcollab.save import save_tabcollab, load_tabcollab, TabCollabFileError, Checkpoint


@pytest.fixture(scope='module')
def data():
    return synthetic_movielens(n_users=100, n_items=150, n_ratings=5000, seed=11)


@pytest.fixture(scope='module')
def learn(data):
    ratings,items = data
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    return learn


def from_df(ratings, items=None, **kw):
    return CollabMultiCatDataLoaders.from_df(ratings, items=items, **{'multicat_names': ['genres'], **kw})


# --- bad input ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('drop,msg', [
    ('user', "['user'] not found in ratings; columns present: ['item', 'rating', 'timestamp']"),
    ('rating', "['rating'] not found in ratings"),
])
def test_missing_ratings_column_is_named(data, drop, msg):
    ratings,items = data
    with pytest.raises(KeyError, match=msg.replace('[','\\[').replace(']','\\]')):
        from_df(ratings.drop(columns=drop), items, user_name='user', item_name='item', rating_name='rating')


def test_missing_list_column_is_named(data):
    ratings,items = data
    with pytest.raises(KeyError, match=r"column\(s\) \['tags'\] not found; "
                                       r"columns present: .*in the side table on 'item'"):
        from_df(ratings, items, multicat_names=['tags'])
    with pytest.raises(KeyError, match="column 'item' not found in items"):
        from_df(ratings, items.rename(columns={'item': 'movie'}))


def test_list_column_of_numbers_is_refused(data):
    ratings,items = data
    with pytest.raises(TypeError, match=r"column 'genres', row 0: .* is a number \(dtype float64\)"):
        from_df(ratings, items.assign(genres=np.linspace(0, 1, len(items))))


@pytest.mark.parametrize('bad,msg', [
    (['4', None, '3'],
     r"rating column 'rating' holds 1 missing, non-numeric or infinite value\(s\), e.g. a missing value at row 1"),
    (['4', 'five', '3'], "e.g. 'five' at row 1"),
])
def test_bad_ratings(bad, msg):
    ratings = pd.DataFrame({'user': [1,2,3], 'item': [1,2,3], 'rating': bad})
    with pytest.raises(ValueError, match=msg): CollabMultiCatDataLoaders.from_df(ratings)


def test_ratings_outside_an_explicit_y_range(data):
    ratings,items = data
    dls = from_df(ratings, items, valid_pct=0.2, seed=0)
    with pytest.raises(ValueError, match=r"y_range=\(2, 4\) leaves out ratings of the data, which run from 1 to 5: "
                                         r".*e.g. \(0.5, 5.5\)"):
        collab_multicat_learner(dls, y_range=(2,4))
    # fastai's habit, the ratings' own ends: widened where it touches them, with a warning that says so
    with pytest.warns(UserWarning, match=r"y_range=\(1, 5\) ends at the ratings' lowest value"
                                         r".*using y_range=\(0.5, 5.5\)"):
        learn = collab_multicat_learner(dls, y_range=(1,5))
    assert learn.model.y_range == (0.5, 5.5)
    assert collab_multicat_learner(dls, y_range=(0,6)).model.y_range == (0., 6.)


def test_empty_frames():
    with pytest.raises(ValueError, match="ratings is empty"):
        CollabMultiCatDataLoaders.from_df(pd.DataFrame({'user': [], 'item': [], 'rating': []}))
    with pytest.raises(ValueError, match="the frame is empty"):
        TabularMultiCatDataLoaders.from_df(pd.DataFrame({'a': [], 'tags': [], 'y': []}), cat_names=['a'],
                                           multicat_names=['tags'], y_names='y')


def test_valid_idx_out_of_range(data):
    ratings,items = data
    with pytest.raises(IndexError, match="valid_idx holds 5000, out of range for a frame of 5000 rows"):
        from_df(ratings, items, valid_idx=[1, 5000])
    with pytest.raises(IndexError, match="valid_idx holds -1"): from_df(ratings, items, valid_idx=[-1])


def test_unseen_users_items_and_values_at_prediction_time(learn):
    "Unknown ids and list values become #na#: never an index error"
    rows = pd.DataFrame({'user': [10**6, 'someone', 1], 'item': [10**6, 'thing', 10**6],
                         'genres': [['Nonsense'], [], 'Drama|Alien genre']})
    with pytest.warns(UserWarning, match="column 'user' holds mixed ids"): dl = learn.dls.test_dl(rows)
    cats,conts,genres,history = dl.one_batch()
    assert (cats[:2,:2]==0).all() and cats[2,1]==0
    assert (history[:2]<=1).all()  # unknown users: no history but `#na#`
    assert genres[0].tolist()[0]==1 and 1 in genres[2].tolist()
    vocab = len(learn.dls.multicat_classes['genres'])
    assert int(genres.max()) < vocab
    with learn.no_bar(): preds,_ = learn.get_preds(dl=dl)
    assert torch.isfinite(preds).all()
    _,pred,_ = learn.predict(pd.Series({'user': 'nobody', 'item': 'nothing', 'genres': 'Comedy'}))
    assert 0.5 <= float(pred) <= 5.5


def test_predict_without_the_item_column(learn):
    with pytest.raises(KeyError, match=r"column\(s\) \['item'\] not found; columns present: \['user'\]"):
        learn.predict(pd.Series({'user': 1}))


def test_recommend_unknown_user(learn):
    with pytest.raises(KeyError, match="user 424242 is not among the model's 100 users"): learn.recommend(424242)


def test_duplicates_whitespace_case_separator_long_and_ints_in_a_learner():
    "The encoder rules hold through the DataLoaders too"
    df = pd.DataFrame({'b': list('ab'*5),
                       'tags': [['Red','red ','RED'], 'blue|small', [1, 2], ['x|y'], [f't{i}' for i in range(10_000)],
                                None, [], '', 'Blue', 'small|blue'], 'y': np.arange(10.)})
    dls = TabularMultiCatDataLoaders.from_df(df, cat_names=['b'], multicat_names=['tags'], y_names='y',
                                             valid_idx=[9], bs=10)
    voc = dls.multicat_classes['tags']
    assert 'Red' in voc and 'red' not in voc and 'x|y' in voc and '1' in voc
    tags = dls.train.dataset.bags['tags'][dls.train.bag_ids[:,0]]
    assert (tags[0]>0).sum()==1 and tags.shape[1]==10_000                        # 'Red', 'red ', 'RED' are one value
    assert tags[5].tolist()[0]==1 and tags[6].tolist()[0]==1 and tags[7].tolist()[0]==1   # None, [], '' are #na#


# --- saving and loading ------------------------------------------------------------------------------------------

ROWS = {'user': [1, 2, 3, 999], 'item': [1, 5, 9, -3], 'genres': [None, None, 'Drama', ['Comedy','Horror']]}

def run_py(code, *args):
    res = subprocess.run([sys.executable, '-c', textwrap.dedent(code), *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_export_and_load_learner_in_a_fresh_process(learn, tmp_path):
    learn.export(tmp_path/'model.pkl')
    with learn.no_bar(): expected,_ = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame(ROWS)))
    out = run_py('''
        import sys, json, warnings, pandas as pd
        warnings.simplefilter('ignore')
        from fastai.learner import load_learner
        import tabcollab.all
        learn = load_learner(sys.argv[1])
        with learn.no_bar(): preds,_ = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame(json.loads(sys.argv[2]))))
        print(json.dumps({'preds': preds.flatten().tolist(), 'vocab': list(learn.dls.multicat_classes['genres'])}))
    ''', tmp_path/'model.pkl', json.dumps(ROWS))
    res = json.loads(out.splitlines()[-1])
    assert res['preds'] == expected.flatten().tolist()
    assert res['vocab'] == list(learn.dls.multicat_classes['genres'])


def test_save_tabcollab_round_trip_in_a_fresh_process_without_pickle(learn, tmp_path):
    save_tabcollab(learn, tmp_path/'model.safetensors')
    with learn.no_bar(): expected,_ = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame(ROWS)))
    out = run_py('''
        import sys, json, pickle, torch, pandas as pd
        from tabcollab.save import load_tabcollab
        import tabcollab.interpret
        def refuse(*a, **k): raise AssertionError('unpickling during load_tabcollab')
        pickle.load = pickle.loads = pickle.Unpickler = torch.load = refuse
        learn = load_tabcollab(sys.argv[1])
        with learn.no_bar(): preds,_ = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame(json.loads(sys.argv[2]))))
        _,one,_ = learn.predict(pd.Series({'user': 1, 'item': 1}))
        recs = learn.recommend(1, n=3).item.tolist()
        print(json.dumps({'preds': preds.flatten().tolist(), 'one': float(one), 'recs': recs}))
    ''', tmp_path/'model.safetensors', json.dumps(ROWS))
    res = json.loads(out.splitlines()[-1])
    assert res['preds'] == expected.flatten().tolist() and res['one'] == pytest.approx(expected[0].item(), abs=1e-6)
    assert res['recs'] == learn.recommend(1, n=3).item.tolist()


def test_truncated_or_tampered_files_are_refused(learn, tmp_path):
    path = save_tabcollab(learn, tmp_path/'m.safetensors')
    raw = path.read_bytes()
    for name,blob,msg in [('cut', raw[:len(raw)-100], 'not a complete safetensors file'),
                          ('header', raw[:20], 'not a complete safetensors file'),
                          ('weights', raw[:-9] + bytes([raw[-9]^1]) + raw[-8:], 'was modified after it was saved'),
                          ('json', raw.replace(b'Drama', b'Dramx', 1), 'was modified after it was saved')]:
        (tmp_path/name).write_bytes(blob)
        with pytest.raises(TabCollabFileError, match=msg): load_tabcollab(tmp_path/name)
    (tmp_path/'other.safetensors').write_bytes(b'')
    with pytest.raises(TabCollabFileError): load_tabcollab(tmp_path/'other.safetensors')
    with pytest.raises(FileNotFoundError): load_tabcollab(tmp_path/'nothing.safetensors')


def test_unsavable_learner_is_refused_at_saving_time(learn, tmp_path):
    from fastai.tabular.all import TabularLearner
    from fastai.losses import MSELossFlat
    odd = TabularLearner(learn.dls, torch.nn.Linear(2, 1), loss_func=MSELossFlat())
    with pytest.raises(TypeError, match="does not know the model Linear: use learn.export"):
        save_tabcollab(odd, tmp_path/'x')


# --- resuming and repeating ---------------------------------------------------------------------------------------

def test_interrupted_training_resumes_to_the_same_metrics(data, tmp_path):
    from fastai.callback.core import Callback
    ratings,items = data
    def train(stop_after=None, resume=None):
        torch.manual_seed(0); np.random.seed(0); import random; random.seed(0)
        learn = collab_multicat_learner(from_df(ratings, items, valid_pct=0.2, seed=0), path=tmp_path)
        class Crash(Callback):
            order = 100
            def after_epoch(self):
                if self.epoch == stop_after: raise RuntimeError('power cut')
        if resume is not None: learn.resume(resume)
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(4, cbs=[Checkpoint(), Crash()], start_epoch=0 if resume is None else resume+1)
        return learn
    full = train()
    with pytest.raises(RuntimeError, match='power cut'): train(stop_after=2)
    resumed = train(resume=2)
    # valid loss, rmse
    assert list(resumed.recorder.values[-1][1:]) == pytest.approx(list(full.recorder.values[-1][1:]), abs=1e-6)
    for a,b in zip(resumed.model.parameters(), full.model.parameters()): assert torch.allclose(a, b, atol=1e-6)


def test_same_seed_same_results_in_fresh_processes(tmp_path):
    code = '''
        import sys, json
        from tabcollab.all import *
        set_seed(42)
        ratings,items = synthetic_movielens(n_users=80, n_items=120, n_ratings=3000, seed=5)
        dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=42)
        learn = collab_multicat_learner(dls)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2); preds,_ = learn.get_preds()
        print(json.dumps(preds.flatten().tolist()))
    '''
    a,b = [np.array(json.loads(run_py(code).splitlines()[-1])) for _ in range(2)]
    assert np.abs(a-b).max() <= 1e-6


def test_save_tabcollab_to_a_folder_or_an_unwritable_path_names_it(learn, tmp_path):
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a folder: name the file to write"):
        save_tabcollab(learn, tmp_path)
    with pytest.raises(OSError, match="cannot write /proc/m.safetensors"): save_tabcollab(learn, '/proc/m.safetensors')


def test_load_tabcollab_of_a_pickle_says_to_use_load_learner(learn, tmp_path):
    learn.export(tmp_path/'m.pkl')
    with pytest.raises(TabCollabFileError, match="is a pickled learner .*load it with load_learner"):
        load_tabcollab(tmp_path/'m.pkl')


@pytest.mark.parametrize('kw', [{}, dict(implicit=True, min_rating=4)])
def test_no_validation_rows_give_no_batch_and_every_model_fits(kw):
    "valid_pct=0: the empty validation loader yields nothing (`split` of no indices gives one empty chunk)"
    r,i = synthetic_movielens(n_users=60, n_items=80, n_ratings=2000, seed=1)
    dls = CollabMultiCatDataLoaders.from_df(r, items=i, multicat_names=['genres'], valid_pct=0, **kw)
    assert len(dls.valid) == 0 and list(dls.valid) == []
    for use_nn in [False, True]:  # the neural model could not reshape an empty batch
        learn = collab_multicat_learner(dls, use_nn=use_nn)
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert learn.recorder.values[-1][0] > 0  # the training loss; nothing to validate
