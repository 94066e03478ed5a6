"The tabcollab command, run as a subprocess like a user would"
import subprocess, sys
import pandas as pd, pytest
from tabcollab.movielens import synthetic_movielens


def tabcollab(*args, cwd=None):
    return subprocess.run(['tabcollab', *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A tiny MovieLens folder in the ml-latest-small layout"
    d = tmp_path_factory.mktemp('ml')/'ml-latest-small'; d.mkdir()
    r,i = synthetic_movielens(n_users=80, n_items=120, n_ratings=3000, seed=4)
    r.rename(columns={'user':'userId','item':'movieId'}).to_csv(d/'ratings.csv', index=False)
    i.assign(genres=i.genres.map('|'.join)).rename(columns={'item':'movieId'}).to_csv(d/'movies.csv', index=False)
    return d


@pytest.fixture(scope='module')
def model(folder):
    out = folder.parent/'model.pkl'
    res = tabcollab('train', '--data', folder, '--epochs', 2, '--out', out)
    assert res.returncode == 0, res.stderr
    return out,res


def test_train_reports_rmse_next_to_baseline_and_saves(model):
    out,res = model
    assert out.exists()
    assert 'epoch' in res.stdout and 'train_loss' in res.stdout          # fastai's epoch table
    line = next(l for l in res.stdout.splitlines() if l.startswith('validation RMSE'))
    assert '(tabcollab)' in line and '(user + item bias baseline)' in line


def test_recommend(model, folder):
    out,_ = model
    ratings = pd.read_csv(folder/'ratings.csv')
    user = int(ratings.userId.iloc[0])
    res = tabcollab('recommend', '--model', out, '--user', user, '-n', 4)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f'We recommend to user {user}:' and lines[1].split() == ['item','title','genres','predicted']
    items = [int(l.split()[0]) for l in lines[2:]]
    assert len(items) == 4 and not set(items) & set(ratings.movieId[ratings.userId==user])


def test_evaluate(model, folder):
    out,_ = model
    res = tabcollab('evaluate', '--model', out, '--data', folder/'ratings.csv')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith('RMSE on 3,000 ratings: ')
    assert 0 < float(res.stdout.split(': ')[1]) < 1.5


@pytest.mark.parametrize('args,msg', [
    (['train', '--data', '/no/such/folder'], "tabcollab train: error: '/no/such/folder' is neither a folder nor a MovieLens release name"),
    (['train', '--data', 'ml-7k'], "tabcollab train: error: 'ml-7k' is neither a folder nor a MovieLens release name"),
    (['train', '--split', 'u9'], "tabcollab train: error: --split must be one of u1, u2, u3, u4, u5, ua, ub"),
    (['recommend', '--model', '/no/model.pkl', '--user', '1'], "tabcollab recommend: error: no saved model at /no/model.pkl"),
    (['evaluate', '--model', '/no/model.pkl'], "tabcollab evaluate: error: --data is required"),
    (['fly'], "tabcollab: error: unknown command 'fly'"),
])
def test_bad_arguments_give_one_line_and_status_2(args, msg):
    res = tabcollab(*args)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].startswith(msg) and 'Traceback' not in res.stderr


def test_unknown_user(model):
    res = tabcollab('recommend', '--model', model[0], '--user', 99999)
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().startswith("tabcollab recommend: error: user 99999 is not among the model's 80 users")


def test_help_documents_every_option():
    res = tabcollab('train', '--help')
    for opt in ['--data','--epochs','--bs','--valid-pct','--split','--out','--lr','--n-factors','--use-nn','--seed']:
        assert opt in res.stdout
    assert '-n' in tabcollab('recommend', '--help').stdout
    assert tabcollab('--help').returncode == 0 and 'train' in tabcollab('--help').stdout
