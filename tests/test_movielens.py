"MovieLens loaders on small files written in each release's real layout, the download path, the synthetic generator"
import shutil
import pandas as pd, pytest
import tabcollab.movielens as ml
from tabcollab.movielens import load_movielens, movielens_users, synthetic_movielens, MovieLensFormatError
from tabcollab.data import CollabMultiCatDataLoaders
from tabcollab.learner import collab_multicat_learner

GENRES_100K = ['unknown','Action','Adventure','Animation',"Children's",'Comedy','Crime','Documentary','Drama','Fantasy',
               'Film-Noir','Horror','Musical','Mystery','Romance','Sci-Fi','Thriller','War','Western']


def flags(*names): return '|'.join('1' if g in names else '0' for g in GENRES_100K)


def write_100k(d):
    d.mkdir(parents=True, exist_ok=True)
    (d/'u.data').write_text('1\t10\t5\t881250949\n2\t10\t3\t891717742\n2\t20\t1\t878887116\n')
    (d/'u.genre').write_text(''.join(f'{g}|{i}\n' for i,g in enumerate(GENRES_100K)) + '\n')
    (d/'u.item').write_bytes((f'10|Café Society (1995)|01-Jan-1995||http://x|{flags("Comedy","Romance")}\n'
                              f'20|Lost Film (1950)|01-Jan-1950||http://y|{flags("unknown")}\n').encode('latin-1'))
    (d/'u.user').write_text('1|24|M|technician|85711\n2|53|F|other|94043\n')
    return d


def test_ml100k_layout(tmp_path):
    ratings,items = load_movielens(write_100k(tmp_path/'ml-100k'))
    assert ratings.to_dict('list') == {'user': [1,2,2], 'item': [10,10,20], 'rating': [5.,3.,1.],
                                       'timestamp': [881250949,891717742,878887116]}
    assert items.title.tolist() == ['Café Society (1995)', 'Lost Film (1950)']
    assert items.genres.tolist() == [['Comedy','Romance'], []]
    users = movielens_users(tmp_path/'ml-100k')
    assert users.to_dict('list') == {'user': [1,2], 'age': [24,53], 'gender': ['M','F'],
                                     'occupation': ['technician','other'], 'zip': ['85711','94043']}


def test_ml1m_layout(tmp_path):
    d = tmp_path/'ml-1m'; d.mkdir()
    (d/'ratings.dat').write_text('1::1193::5::978300760\n1::661::3::978302109\n')
    (d/'movies.dat').write_bytes(('1193::One Flew Over the Cuckoo\'s Nest: Redux (1975)::Drama\n'
                                  '661::Amélie (2001)::Comedy|Romance\n').encode('latin-1'))
    (d/'users.dat').write_text('1::F::1::10::48067\n')
    ratings,items = load_movielens(d)
    assert ratings.item.tolist() == [1193,661] and ratings.rating.tolist() == [5.,3.]
    assert items.title.tolist() == ["One Flew Over the Cuckoo's Nest: Redux (1975)", 'Amélie (2001)']
    assert items.genres.tolist() == [['Drama'], ['Comedy','Romance']]
    assert 'tags' not in items
    assert movielens_users(d).iloc[0].tolist() == [1, 1, 'F', 'K-12 student', '48067']


def test_ml10m_layout_with_tags(tmp_path):
    d = tmp_path/'ml-10m'/'ml-10M100K'; d.mkdir(parents=True)   # the archive unpacks one level down
    (d/'ratings.dat').write_text('1::122::5::838985046\n1::185::4.5::838983525\n')
    (d/'movies.dat').write_text('122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::(no genres listed)\n',
                                encoding='utf-8')
    (d/'tags.dat').write_text('15::122::Eddie Murphy::1\n20::122::eddie murphy ::2\n20::122::funny::3\n'
                              '15::185::hacker::4\n', encoding='utf-8')
    ratings,items = load_movielens(tmp_path/'ml-10m')
    assert ratings.rating.tolist() == [5.,4.5]
    assert items.genres.tolist() == [['Comedy','Romance'], []]
    assert items.tags.tolist() == [['eddie murphy','funny'], ['hacker']]
    with pytest.raises(MovieLensFormatError, match="no user file"): movielens_users(tmp_path/'ml-10m')


@pytest.mark.parametrize('release', ['ml-latest-small','ml-latest','ml-20m','ml-25m','ml-32m'])
def test_csv_layouts(tmp_path, release):
    d = tmp_path/release; d.mkdir()
    (d/'ratings.csv').write_text('userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,2.5,1\n')
    (d/'movies.csv').write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n'
                                '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n'
                                '5,Nothing (2019),(no genres listed)\n')
    (d/'tags.csv').write_text('userId,movieId,tag,timestamp\n2,1,Pixar,1\n3,1,pixar,2\n4,1," fun ",3\n'
                              '5,3,"moldy, old",4\n')
    ratings,items = load_movielens(d)
    assert len(ratings)==3 and ratings.rating.tolist() == [4.,4.5,2.5]
    assert items.title.tolist() == ['Toy Story (1995)', 'Grumpier Old Men, The (1995)', 'Nothing (2019)']
    assert items.genres.tolist()[1:] == [['Comedy','Romance'], []]
    assert items.tags.tolist() == [['pixar','fun'], ['moldy, old'], []]


def test_tags_work_as_a_second_multicat_column(tmp_path):
    d = tmp_path/'ml-latest-small'; d.mkdir()
    r,i = synthetic_movielens(n_users=60, n_items=80, n_ratings=1500, seed=2)
    r.rename(columns={'user':'userId','item':'movieId'}).to_csv(d/'ratings.csv', index=False)
    i.assign(genres=i.genres.map('|'.join)).rename(columns={'item':'movieId'}).to_csv(d/'movies.csv', index=False)
    t = pd.DataFrame({'userId': 1, 'movieId': i.item[:40], 'tag': ['good','Bad ']*20, 'timestamp': 0})
    t.to_csv(d/'tags.csv', index=False)
    ratings,items = load_movielens(d)
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres','tags'], valid_pct=0.2,
                                            seed=0)
    assert list(dls.multicat_classes['tags']) == ['#pad#','#na#','bad','good']
    cats,conts,genres,tags,history,y = dls.one_batch()  # history: each user's rated items
    assert tags.max() <= 3


@pytest.mark.parametrize('content,msg', [
    ('userId,movieId,rating,timestamp\n1,10,good,1\n',
     "ratings.csv: line 2: column 'rating' should be a number, got 'good'"),
    ('userId;movieId;rating;timestamp\n1;10;4;1\n', "ratings.csv: expected 4 fields separated by ','"),
])
def test_malformed_files_name_the_file_and_problem(tmp_path, content, msg):
    (tmp_path/'ratings.csv').write_text(content)
    (tmp_path/'movies.csv').write_text('movieId,title,genres\n10,A (1990),Drama\n')
    with pytest.raises(MovieLensFormatError, match=msg.replace('(','\\(').replace(')','\\)')): load_movielens(tmp_path)


def test_malformed_100k(tmp_path):
    d = write_100k(tmp_path/'ml-100k')
    (d/'u.data').write_text('1,10,5,881250949\n')
    with pytest.raises(MovieLensFormatError, match=r"u.data: expected 4 fields separated by '\\t'"): load_movielens(d)
    (d/'u.data').write_text('1\t10\tfive\t881250949\n')
    with pytest.raises(MovieLensFormatError, match=r"u.data: line 1: column 'rating' should be a number, got 'five'"):
        load_movielens(d)
    (d/'u.data').write_text('1\t10\t5\t881250949\n')
    (d/'u.item').unlink()
    with pytest.raises(MovieLensFormatError, match="missing file u.item"): load_movielens(d)
    (tmp_path/'empty').mkdir()
    with pytest.raises(MovieLensFormatError, match="no MovieLens rating file"): load_movielens(tmp_path/'empty')


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="'ml-7k' is neither a folder nor a MovieLens release name"):
        load_movielens('ml-7k')


def test_download_by_name_without_network(tmp_path, monkeypatch):
    "A release name goes through fastai's untar_data: here from a local archive at a file:// URL"
    write_100k(tmp_path/'src'/'ml-100k')
    archive = shutil.make_archive(str(tmp_path/'ml-100k'), 'zip', tmp_path/'src', 'ml-100k')
    monkeypatch.setitem(ml.MOVIELENS_URLS, 'ml-100k', f'file://{archive}')
    ratings,items = load_movielens('ml-100k', data=tmp_path/'data', archive=tmp_path/'archive')
    assert len(ratings)==3 and items.title[0]=='Café Society (1995)'
    assert (tmp_path/'data'/'ml-100k'/'u.data').exists()
    assert movielens_users('ml-100k', data=tmp_path/'data', archive=tmp_path/'archive').shape == (2,5)


def test_synthetic_is_deterministic_and_movielens_shaped():
    r1,i1 = synthetic_movielens(n_users=200, n_items=300, n_ratings=8000, seed=5)
    r2,i2 = synthetic_movielens(n_users=200, n_items=300, n_ratings=8000, seed=5)
    r3,_ = synthetic_movielens(n_users=200, n_items=300, n_ratings=8000, seed=6)
    pd.testing.assert_frame_equal(r1, r2)
    assert i1.genres.tolist()==i2.genres.tolist() and i1.title.tolist()==i2.title.tolist()
    assert not r1.equals(r3)
    assert list(r1.columns)==['user','item','rating','timestamp'] and list(i1.columns)==['item','title','genres']
    assert not r1.duplicated(['user','item']).any() and set(r1.rating.unique()) <= {1.,2.,3.,4.,5.}
    n = i1.genres.map(len)
    assert n.max() <= 6 and (n>=1).mean() > 0.95
    assert i1.title.str.contains(r'\(\d{4}\)$').all()
    counts = r1.item.value_counts()
    assert counts.max() > 10*counts.median() and (counts<=5).sum() > 0.05*len(i1)   # skewed, with a long tail


def test_synthetic_genres_carry_signal():
    "A genre-aware model beats an id-only model on the synthetic data"
    ratings,items = synthetic_movielens(n_users=400, n_items=600, n_ratings=20_000, seed=3)
    scores = {}
    for name,kw in [('genres', dict(items=items, multicat_names=['genres'])), ('ids', {})]:
        dls = CollabMultiCatDataLoaders.from_df(ratings, valid_pct=0.2, seed=0, **kw)
        learn = collab_multicat_learner(dls)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5); scores[name] = learn.validate()[1]
    assert scores['genres'] < scores['ids'] - 0.01, scores
