"The tabcollab command: run as a subprocess like a user would, and through `main` in-process for the many mistakes"
import subprocess
import numpy as np, pandas as pd, pytest, torch
from safetensors.torch import save_file
from tabcollab.movielens import synthetic_movielens
from tabcollab.data import CollabMultiCatDataLoaders
from tabcollab.ranking import RankingEval
from tabcollab.save import load_tabcollab
from tabcollab.cli import main, _most_popular


def tabcollab(*args, cwd=None):
    return subprocess.run(['tabcollab', *map(str, args)], capture_output=True, text=True, cwd=cwd)


def run_main(capsys, *args):
    "(exit status, stdout, stderr) of `main` on `args`"
    status = main([str(a) for a in args])
    out,err = capsys.readouterr()
    return status,out,err


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A tiny MovieLens folder in the ml-latest-small layout (3,000 ratings), 750 held-out ratings in test.csv beside it"
    root = tmp_path_factory.mktemp('ml')
    d = root/'ml-latest-small'; d.mkdir()
    r,i = synthetic_movielens(n_users=80, n_items=120, n_ratings=3750, seed=4)
    test = r.sample(n=750, random_state=0)
    r.drop(index=test.index).rename(columns={'user':'userId','item':'movieId'}).to_csv(d/'ratings.csv', index=False)
    i.assign(genres=i.genres.map('|'.join)).rename(columns={'item':'movieId'}).to_csv(d/'movies.csv', index=False)
    test.to_csv(root/'test.csv', index=False)
    return d


@pytest.fixture(scope='module')
def trained(folder):
    "`tabcollab train` with the default output, run in a folder of its own: (that folder, the result)"
    cwd = folder.parent/'default'; cwd.mkdir()
    res = tabcollab('train', '--data', folder, '--epochs', 2, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return cwd,res


def ratings(folder): return pd.read_csv(folder/'ratings.csv').rename(columns={'userId':'user','movieId':'item'})


def test_train_saves_weights_only_by_default(trained):
    cwd,res = trained
    f = cwd/'model.safetensors'
    assert f.exists() and not (cwd/'model.pkl').exists()
    head = f.read_bytes()[:9]
    assert head[8:9] == b'{' and not head.startswith(b'PK')                  # safetensors, not a zip of pickles
    assert 'epoch' in res.stdout and 'train_loss' in res.stdout               # fastai's epoch table
    line = next(l for l in res.stdout.splitlines() if l.startswith('validation RMSE'))
    assert '(tabcollab)' in line and '(user + item bias baseline)' in line
    assert 'saved the rating model to model.safetensors (safetensors)' in res.stdout
    assert not load_tabcollab(f).dls.train_ds.roles.implicit


def test_recommend_reads_the_default_file(trained, folder):
    cwd,_ = trained
    r = ratings(folder)
    user = int(r.user.iloc[0])
    res = tabcollab('recommend', '--user', user, '-n', 4, cwd=cwd)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f'We recommend to user {user}:' and lines[1].split() == ['item','title','genres','predicted']
    items = [int(l.split()[0]) for l in lines[2:]]
    assert len(items) == 4 and not set(items) & set(r.item[r.user==user])


def test_recommend_several_users(trained, folder, capsys):
    r = ratings(folder)
    u1,u2 = r.user.unique()[:2]
    status,out,err = run_main(capsys, 'recommend', '--model', trained[0]/'model.safetensors', '--user', f'{u1}, {u2}',
                              '--n', 3)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f'We recommend to users {u1}, {u2}:'
    assert lines[1].split() == ['user','rank','item','title','genres','predicted']
    rows = [l.split() for l in lines[2:]]
    assert [(int(o[0]), int(o[1])) for o in rows] == [(u1,1),(u1,2),(u1,3),(u2,1),(u2,2),(u2,3)]


def test_evaluate_round_trip(trained, folder):
    cwd,_ = trained
    test = pd.read_csv(folder.parent/'test.csv')
    res = tabcollab('evaluate', '--data', folder.parent/'test.csv', cwd=cwd)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith('RMSE on 750 ratings: ') and 0 < float(lines[0].split(': ')[1]) < 1.5
    assert lines[1].startswith('ranking at 10 of ') and 'relevant: rated >= 4;' in lines[1]
    assert lines[2].split() == ['precision@10','recall@10','ndcg@10','hit@10'] and lines[3].split()[0] == 'tabcollab'
    learn = load_tabcollab(cwd/'model.safetensors')
    want = RankingEval(10, 4).compute(learn, learn.dls.test_dl(test))       # the same metrics, computed directly
    got = [float(v) for v in lines[3].split()[1:]]
    assert got == pytest.approx([want[k] for k in ['precision@10','recall@10','ndcg@10','hit@10']], abs=1e-4)
    assert f"of {want['n_users']} users" in lines[1]


def test_format_pickle(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status,out,err = run_main(capsys, 'train', '--data', folder, '--epochs', 1, '--format', 'pickle')
    assert status == 0, err
    assert 'saved the rating model to model.pkl (pickle)' in out and not (tmp_path/'model.safetensors').exists()
    assert (tmp_path/'model.pkl').read_bytes()[:2] == b'PK'                  # torch.save's zip of pickles
    user = ratings(folder).user.iloc[0]
    status,out,err = run_main(capsys, 'recommend', '--model', 'model.pkl', '--user', user, '-n', 2)
    assert status == 0 and len(out.splitlines()) == 4, err
    status,out,err = run_main(capsys, 'evaluate', '--model', 'model.pkl', '--data', folder.parent/'test.csv')
    assert status == 0 and out.startswith('RMSE on 750 ratings: '), err


def test_valid_pct_0_trains_on_everything(folder, tmp_path, capsys):
    f = tmp_path/'final.safetensors'
    status,out,err = run_main(capsys, 'train', '--data', folder, '--epochs', 1, '--valid-pct', 0, '--out', f)
    assert status == 0, err
    assert '3,000 ratings' in out and 'no validation set (--valid-pct 0): no validation score' in out
    assert 'validation RMSE' not in out and 'nan' not in out
    ds = load_tabcollab(f).dls.train_ds
    assert len(ds.train_rated) == len(ds.rated) == 3000                     # every rating is a training rating


def test_no_history_trains_users_by_id_alone(folder, tmp_path, capsys):
    "The default rating model has each user's history; --no-history leaves it out (and --items then says why not)"
    for flag,history in [((), 'history'), (('--no-history',), None)]:
        f = tmp_path/f'm{len(flag)}.safetensors'
        status,out,err = run_main(capsys, 'train', '--data', folder, '--epochs', 1, *flag, '--out', f)
        assert status == 0, err
        assert load_tabcollab(f).dls.train_ds.roles.history == history
    status,out,err = run_main(capsys, 'recommend', '--model', f, '--items', '1,2')
    assert status == 2 and 'places users by their id' in err


def test_implicit(folder, tmp_path, capsys):
    f = tmp_path/'rank.safetensors'
    status,out,err = run_main(capsys, 'train', '--data', folder, '--epochs', 2, '--implicit', '--min-rating', 4,
                              '--out', f)
    assert status == 0, err
    n_pos = int((ratings(folder).rating >= 4).sum())
    lines = out.splitlines()
    assert any(l.startswith('ranking model: the ') and 'training ratings >= 4 are the positives' in l for l in lines)
    i = next(j for j,l in enumerate(lines) if l.startswith('validation ranking at 10 of '))
    assert lines[i+1].split() == ['precision@10','recall@10','ndcg@10','hit@10']
    assert lines[i+2].split()[0] == 'tabcollab' and lines[i+3].startswith('most popular')
    assert all(0 <= float(v) <= 1 for v in lines[i+2].split()[1:] + lines[i+3].split()[2:])
    assert 'saved the ranking model to' in out and 'validation RMSE' not in out
    roles = load_tabcollab(f).dls.train_ds.roles
    assert roles.implicit and roles.min_rating == 4 and n_pos > 0
    u1,u2 = ratings(folder).user.unique()[:2]
    status,out,err = run_main(capsys, 'recommend', '--model', f, '--user', f'{u1},{u2}', '-n', 2)
    assert status == 0 and out.splitlines()[1].split() == ['user','rank','item','title','genres','score'], err
    status,out,err = run_main(capsys, 'evaluate', '--model', f, '--data', folder.parent/'test.csv')
    assert status == 0 and 'RMSE' not in out and 'relevant: rated >= 4;' in out.splitlines()[0], err
    # a ranking model never counts the ratings below its own threshold: a lower --min-rating says what it used
    for m,used in [(3, 4), (5, 5)]:
        status,out,err = run_main(capsys, 'evaluate', '--model', f, '--data', folder.parent/'test.csv',
                                  '--min-rating', m)
        assert status == 0 and f'relevant: rated >= {used};' in out
        assert ("--min-rating 3 is below the model's own (4): using 4" in err) == (m==3)
    # evaluated on its own training ratings, these are not candidates: left out (and said), not counted as misses
    status,out,err = run_main(capsys, 'evaluate', '--model', f, '--data', folder/'ratings.csv')
    assert status == 0 and 'relevant rows are ratings the model was trained on: not candidates, left out' in err
    learn = load_tabcollab(f)
    data = ratings(folder)
    res = RankingEval(10, 4).compute(learn, learn.dls.test_dl(data))
    assert res['n_relevant_in_train'] > 0 and res['precision@10'] > 0


def test_most_popular_matches_a_naive_count(folder):
    "The baseline of `train --implicit`: items by their training positives, each user's training items left out"
    r = ratings(folder)
    dls = CollabMultiCatDataLoaders.from_df(r, user_name='user', item_name='item', rating_name='rating', valid_pct=0.2,
                                            seed=0, implicit=True, min_rating=4)
    tr,va = dls.train_ds.items,dls.valid_ds.items
    count = np.bincount(tr.item[tr.rating >= 4], minlength=dls.train_ds.n_items)
    order = sorted(range(1, len(count)), key=lambda c: (-count[c], c))      # most positives first, ties by code
    prec,rec = [],[]
    for u,g in va[(va.rating >= 4) & (va.item > 0)].groupby('user'):      # items only in validation: unknown, code 0
        seen = set(tr.item[tr.user == u])
        top = [c for c in order if c not in seen][:10]
        hits = len(set(top) & set(g.item))
        prec.append(hits/10); rec.append(hits/g.item.nunique())
    res = _most_popular(dls)
    assert res['n_users'] == len(prec)
    assert res['precision@10'] == pytest.approx(np.mean(prec)) and res['recall@10'] == pytest.approx(np.mean(rec))


@pytest.fixture(scope='module')
def bad_files(folder):
    "Files one might pass by mistake: ratings with a NaN, an inf or a word; a foreign safetensors file; a pickled dict"
    d = folder.parent/'bad'; d.mkdir()
    test = pd.read_csv(folder.parent/'test.csv')
    for name,v in [('nan', np.nan), ('inf', np.inf), ('word', 'five')]:
        t = test.assign(rating=test.rating.astype(object)); t.loc[5, 'rating'] = v
        t.to_csv(d/f'{name}.csv', index=False)
    save_file({'w': torch.zeros(2)}, d/'foreign.safetensors')
    torch.save({'a': 1}, d/'dict.pkl')
    return d


BAD = [  # (arguments, the start of the one-line error)
    (['train', '--epochs', '0'], "tabcollab train: error: --epochs must be an integer >= 1, got 0"),
    (['train', '--epochs', '-3'], "tabcollab train: error: --epochs must be an integer >= 1, got -3"),
    (['train', '--epochs', '1.5'], "tabcollab train: error: argument --epochs: invalid int value: '1.5'"),
    (['train', '--lr', '0'], "tabcollab train: error: --lr must be a positive finite number, got 0.0"),
    (['train', '--lr', '-1'], "tabcollab train: error: --lr must be a positive finite number, got -1.0"),
    (['train', '--lr', 'nan'], "tabcollab train: error: --lr must be a positive finite number, got nan"),
    (['train', '--lr', 'inf'], "tabcollab train: error: --lr must be a positive finite number, got inf"),
    (['train', '--bs', '0'], "tabcollab train: error: --bs must be an integer >= 1, got 0"),
    (['train', '--data', '{folder}', '--bs', '2701'],
     "tabcollab train: error: --bs 2701 is larger than the 2,700 training ratings: lower --bs"),
    (['train', '--data', '{folder}', '--implicit', '--bs', '2000'],
     "tabcollab train: error: --bs 2000 is larger than the "),
    (['train', '--n-factors', '0'], "tabcollab train: error: --n-factors must be an integer >= 1, got 0"),
    (['train', '--valid-pct', '1'], "tabcollab train: error: --valid-pct must be in [0, 1), got 1.0"),
    (['train', '--valid-pct', '-0.1'], "tabcollab train: error: --valid-pct must be in [0, 1), got -0.1"),
    (['train', '--valid-pct', 'nan'], "tabcollab train: error: --valid-pct must be a finite number, got nan"),
    (['train', '--implicit', '--min-rating', 'nan'],
     "tabcollab train: error: --min-rating must be a finite number, got nan"),
    (['train', '--min-rating', '4'], "tabcollab train: error: --min-rating goes with --implicit"),
    (['train', '--format', 'zip'], "tabcollab train: error: --format must be one of safetensors, pickle, got 'zip'"),
    (['train', '--out', 'm.pkl'], "tabcollab train: error: --out m.pkl names a pickle but --format is safetensors"),
    (['train', '--out', '/no/such/dir/m.safetensors'],
     "tabcollab train: error: --out /no/such/dir/m.safetensors: there is no folder /no/such/dir"),
    (['train', '--out', '{folder}'],
     "tabcollab train: error: --out {folder} is a folder: name the file, e.g. {folder}/model.safetensors"),
    (['train', '--out', '{folder}', '--format', 'pickle'],
     "tabcollab train: error: --out {folder} is a folder: name the file, e.g. {folder}/model.pkl"),
    (['train', '--out', '/proc/m.safetensors'],
     "tabcollab train: error: --out /proc/m.safetensors: cannot write there"),
    (['train', '--split', 'u9'], "tabcollab train: error: --split must be one of u1, u2, u3, u4, u5, ua, ub"),
    (['train', '--data', '/no/such/folder'],
     "tabcollab train: error: '/no/such/folder' is neither a folder nor a MovieLens release name"),
    (['recommend', '--model', '{model}', '--user', '1', '-n', '0'],
     "tabcollab recommend: error: -n/--n must be an integer >= 1, got 0"),
    (['recommend', '--model', '{model}'], "tabcollab recommend: error: --user is required"),
    (['recommend', '--model', '{model}', '--user', '99999'],
     "tabcollab recommend: error: user 99999 is not among the model's 80 users"),
    (['recommend', '--model', '{model}', '--user', '{user},99999'],
     "tabcollab recommend: error: user 99999 is not among the model's"),
    (['recommend', '--model', '/no/model.safetensors', '--user', '1'],
     "tabcollab recommend: error: no saved model at /no/model.safetensors"),
    (['recommend', '--model', '{folder}', '--user', '1'],
     "tabcollab recommend: error: {folder} is a folder, not a saved model"),
    (['recommend', '--model', '{test}', '--user', '1'],
     "tabcollab recommend: error: {test} is neither a safetensors file of `tabcollab train` nor a pickled learner"),
    (['recommend', '--model', '{bad}/foreign.safetensors', '--user', '1'],
     "tabcollab recommend: error: {bad}/foreign.safetensors is a safetensors file "
     "but not one written by save_tabcollab"),
    (['recommend', '--model', '{bad}/dict.pkl', '--user', '1'],
     "tabcollab recommend: error: {bad}/dict.pkl does not load as a pickled learner"),
    (['evaluate', '--model', '{model}'], "tabcollab evaluate: error: --data is required"),
    (['evaluate', '--model', '{model}', '--data', '/no/ratings.csv'],
     "tabcollab evaluate: error: --data /no/ratings.csv: no such file"),
    (['evaluate', '--model', '{model}', '--data', '{bad}/nan.csv'],
     "tabcollab evaluate: error: {bad}/nan.csv: rating column 'rating' holds 1 missing, non-numeric or infinite "
     "value(s), e.g. a missing value at row 5"),
    (['evaluate', '--model', '{model}', '--data', '{bad}/inf.csv'],
     "tabcollab evaluate: error: {bad}/inf.csv: rating column 'rating' holds 1 missing, "
     "non-numeric or infinite value(s)"),
    (['evaluate', '--model', '{model}', '--data', '{bad}/word.csv'],
     "tabcollab evaluate: error: {bad}/word.csv: rating column 'rating' holds 1 missing, non-numeric or infinite "
     "value(s), e.g. 'five' at row 5"),
    (['evaluate', '--model', '{model}', '--data', '{test}', '--min-rating', 'inf'],
     "tabcollab evaluate: error: --min-rating must be a finite number, got inf"),
    (['evaluate', '--model', '{model}', '--data', '{folder}', '--split', 'u1'],
     "tabcollab evaluate: error: split u1 needs a MovieLens 100K folder"),
]

@pytest.mark.parametrize('args,msg', BAD, ids=[' '.join(a) for a,_ in BAD])
def test_bad_arguments_give_one_line_and_status_2(args, msg, trained, folder, bad_files, capsys):
    names = dict(folder=folder, model=trained[0]/'model.safetensors', test=folder.parent/'test.csv', bad=bad_files,
                 user=ratings(folder).user.iloc[0])
    status,out,err = run_main(capsys, *[a.format(**names) for a in args])
    lines = [l for l in err.splitlines() if l.strip()]
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(msg.format(**names)), err
    assert 'saved the' not in out


def test_unknown_command():
    res = tabcollab('fly')
    assert res.returncode == 2 and res.stderr.startswith("tabcollab: error: unknown command 'fly'")


def test_the_console_script_exits_2_without_a_traceback():
    for args in [('train', '--epochs', 0), ('train', '--epochs', 'abc')]:
        res = tabcollab(*args)
        assert res.returncode == 2 and 'Traceback' not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith('tabcollab train: error: ')


def test_help_documents_every_option(capsys):
    status,out,_ = run_main(capsys, 'train', '--help')
    assert status == 0
    for opt in ['--data','--epochs','--bs','--valid-pct','--split','--implicit','--min-rating','--out','--format',
                '--lr','--n-factors','--use-nn','--seed']:
        assert opt in out
    assert '-n (int), --n (int)' in run_main(capsys, 'recommend', '--help')[1]
    assert '--min-rating' in run_main(capsys, 'evaluate', '--help')[1]
    status,out,_ = run_main(capsys, '--help')
    assert status == 0 and 'train' in out and 'evaluate' in out
