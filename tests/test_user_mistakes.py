"""What real users do that no example shows: genres merged into the ratings, empty or text columns, bs=0, one column for
users and items, rows without ids, repeated rows, y_range at the ratings' ends, untrained learners, a min_rating above
every rating, files named for another format; each gets the right behaviour or a message that says what to do"""
import warnings
import numpy as np, pandas as pd, pytest
from tabcollab.all import (CollabMultiCatDataLoaders, TabularMultiCatDataLoaders, collab_multicat_learner,
                           synthetic_movielens, load_movielens, RankingEval, cell_values, BagVocab)
from tabcollab.save import save_tabcollab, load_tabcollab
from tabcollab.cli import main


@pytest.fixture(scope='module')
def ml():
    return synthetic_movielens(n_users=40, n_items=60, n_ratings=900, seed=3)


def from_df(ratings, **kw):
    return CollabMultiCatDataLoaders.from_df(ratings, **{'valid_pct': 0.2, 'seed': 0, 'bs': 64, **kw})


def trained(dls, **kw):
    learn = collab_multicat_learner(dls, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    return learn


def warned(f):
    "(result, [warning messages]) of `f()`"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res = f()
    return res, [str(o.message) for o in w]


def test_genres_merged_into_the_ratings_are_item_metadata(ml):
    "`ratings.merge(movies)` puts genres on every row: they are the item's, so recommend and new items see them"
    ratings, items = ml
    merged = ratings.merge(items[['item', 'genres']], on='item')
    a = from_df(merged, multicat_names=['genres'])
    b = from_df(ratings, items=items[['item', 'genres']], multicat_names=['genres'])
    assert 'genres' in a.train_ds.roles.item_side
    assert list(a.train_ds.side['item'].columns) == ['item', 'genres', 'n_ratings']
    codes = np.arange(1, a.train_ds.n_items)
    assert (a.train_ds.side_inputs(codes)[2] == b.train_ds.side_inputs(codes)[2]).all()
    # a column that changes within an item and a user stays a row input
    hour = merged.assign(hour=np.arange(len(merged)) % 24)
    c = from_df(hour, multicat_names=['genres'], cont_names=['hour'])
    assert c.train_ds.roles.side('hour') == 'row' and 'hour' in c.train_ds.items.columns
    # a user's age merged in is the user's
    age = merged.assign(age=merged.user * 2.)
    d = from_df(age, multicat_names=['genres'], cont_names=['age'])
    assert d.train_ds.roles.side('age') == 'user' and 'age' in d.train_ds.side['user'].columns


def test_continuous_columns_without_values_or_with_text_are_named(ml):
    ratings, items = ml
    with pytest.raises(ValueError, match=r"continuous column 'year' has no value in the \d+ training rows"):
        from_df(ratings, items=items.assign(year=np.nan), multicat_names=['genres'], cont_names=['year'])
    with pytest.raises(TypeError, match=r"column 'year' of items holds values that are not numbers, e.g. 'old'"):
        from_df(ratings, items=items.assign(year=['old'] + [1990.] * (len(items) - 1)), cont_names=['year'])
    with pytest.raises(TypeError, match=r"continuous column 'hour' holds 1 value\(s\) that are not numbers, e.g. 'no"):
        from_df(ratings.assign(hour=['noon'] + [1.] * (len(ratings) - 1)), cont_names=['hour'])
    # numbers written as text are numbers
    dls = from_df(ratings.assign(hour=[str(h % 24) for h in range(len(ratings))]), cont_names=['hour'])
    assert dls.train_ds.items['hour'].dtype.kind == 'f'


def test_bs_and_one_column_for_users_and_items_are_named(ml):
    ratings, _ = ml
    for bs in (0, -1, 2.5):
        with pytest.raises(ValueError, match=f"bs must be an integer >= 1, got {bs}"): from_df(ratings, bs=bs)
    with pytest.raises(ValueError, match=r"bs must be an integer >= 1, got 0"):
        TabularMultiCatDataLoaders.from_df(ratings, cat_names=['user'], y_names='rating', bs=0)
    with pytest.raises(ValueError, match=r"user_name and item_name are both 'user'"):
        from_df(ratings, user_name='user', item_name='user')
    with pytest.raises(TypeError, match=r"min_rating must be a number, got '4'"):
        from_df(ratings, implicit=True, min_rating='4')


def test_rows_without_ids_and_repeated_rows_are_counted(ml):
    ratings, _ = ml
    no_user = ratings.assign(user=ratings.user.astype('Int64').mask(ratings.index < 3))
    _, w = warned(lambda: from_df(no_user))
    assert any("3 of 900 rows have no 'user' id: they train as the unknown user (#na#)" in m for m in w)
    twice = pd.concat([ratings, ratings.iloc[:4], ratings.iloc[4:6].assign(rating=0.5)], ignore_index=True)
    _, w = warned(lambda: from_df(twice))
    assert any("6 of 906 rows repeat the (user, item) pair of another row (4 exact copies, 2 other rating(s)" in m
               for m in w)


def test_unmatched_ids_are_said_once(ml):
    ratings, items = ml
    _, w = warned(lambda: from_df(ratings, items=items.iloc[5:], multicat_names=['genres']))
    assert len([m for m in w if 'does not list' in m]) == 1


def test_one_and_one_point_zero_are_one_value():
    vals = cell_values(pd.Series([[1, 1.0], [1.0, 'a'], [2.0], 'a|1']))
    assert list(BagVocab(vals)) == ['#pad#', '#na#', '1', '2', 'a']


def test_an_untrained_learner_says_so(ml):
    ratings, items = ml
    learn = collab_multicat_learner(from_df(ratings, items=items, multicat_names=['genres']))
    for f in (lambda: learn.recommend(ratings.user[0], n=3), lambda: learn.similar_items(items.item[0], n=3),
              lambda: learn.explain(ratings.user[0], items.item[0])):
        _, w = warned(f)
        assert any('has not been trained' in m for m in w)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    _, w = warned(lambda: learn.recommend(ratings.user[0], n=3))
    assert not any('has not been trained' in m for m in w)


def test_min_rating_above_every_rating(ml, tmp_path, capsys):
    ratings, _ = ml
    with pytest.raises(ValueError, match=r"min_rating=6: no training rating is that high \(they run from 1 to 5\)"):
        from_df(ratings, implicit=True, min_rating=6)
    assert main(['train', '--implicit', '--min-rating', '6', '--out', str(tmp_path/'m.safetensors')]) == 2
    assert "--min-rating 6: no training rating is that high" in capsys.readouterr().err


def test_files_named_for_another_format_and_loaded_learners_without_validation(ml, tmp_path):
    ratings, items = ml
    learn = trained(from_df(ratings, items=items, multicat_names=['genres'], implicit=True, min_rating=4))
    with pytest.raises(ValueError, match=r"x.pkl names a pickle, but save_tabcollab writes safetensors"):
        save_tabcollab(learn, tmp_path/'x.pkl')
    back = load_tabcollab(save_tabcollab(learn, tmp_path/'x.safetensors'))
    with pytest.raises(ValueError, match="this learner has no validation rows"): RankingEval(10).compute(back)
    res = RankingEval(10).compute(back, back.dls.test_dl(ratings.iloc[:200]))
    assert 'ndcg@10' in res


def test_load_movielens_takes_a_ratings_file(tmp_path):
    (tmp_path/'ratings.csv').write_text('userId,movieId,rating,timestamp\n1,10,4.5,9\n2,30,3.0,9\n')
    (tmp_path/'movies.csv').write_text('movieId,title,genres\n10,A (1995),Action\n30,B (2019),Drama|War\n')
    ratings, items = load_movielens(tmp_path/'ratings.csv')
    assert ratings.item.tolist() == [10, 30] and items.genres.tolist() == [['Action'], ['Drama', 'War']]


def test_cli_recommends_to_every_user_and_says_what_it_evaluates(ml, tmp_path, capsys):
    ratings, items = ml
    out = tmp_path/'m.safetensors'
    assert main(['train', '--epochs', '1', '--out', str(out)]) == 0
    capsys.readouterr()
    assert main(['recommend', '--model', str(out), '--all-users', '-n', '2']) == 0
    text = capsys.readouterr().out
    assert text.startswith('We recommend to all ') and 'rank' in text
    assert main(['recommend', '--model', str(out)]) == 2
    assert '--user is required (or --all-users for every user, or --items for a new user)' in capsys.readouterr().err
    assert main(['recommend', '--model', str(out), '--user', '1', '--items', '1,2']) == 2
    assert '--user and --items go separately: give one of them' in capsys.readouterr().err
    assert main(['recommend', '--model', str(out), '--items', '']) == 2
    assert "--items '' names no item" in capsys.readouterr().err
    # the rating model has a history (the default): a new user from the items they rated
    assert main(['recommend', '--model', str(out), '--items', '1,2,3', '-n', '2']) == 0
    assert 'a new user who liked 1, 2, 3' in capsys.readouterr().out
    # evaluate on the training data itself, and on data of other users: said, on stderr
    r, _ = synthetic_movielens()
    r.iloc[:500].to_csv(tmp_path/'seen.csv', index=False)
    assert main(['evaluate', '--model', str(out), '--data', str(tmp_path/'seen.csv')]) == 0
    err = capsys.readouterr().err
    assert 'are (user, item) pairs the model was trained on: scores on them are optimistic' in err
    r.iloc[:300].assign(user=r.user.iloc[:300] + 10_000).to_csv(tmp_path/'other.csv', index=False)
    assert main(['evaluate', '--model', str(out), '--data', str(tmp_path/'other.csv')]) == 0
    err = capsys.readouterr().err
    assert '300 of 300 rows (100%) have a user the model does not know' in err and 'is this the data' in err


def test_cli_warnings_are_one_line(ml, tmp_path, capsys):
    ratings, items = ml
    folder = tmp_path/'ml'
    folder.mkdir()
    ratings = ratings.rename(columns={'user': 'userId', 'item': 'movieId'}).assign(timestamp=0)
    ratings.to_csv(folder/'ratings.csv', index=False)
    movies = items.iloc[3:].assign(genres=items.genres.iloc[3:].map('|'.join))
    movies.rename(columns={'item': 'movieId'}).to_csv(folder/'movies.csv', index=False)
    assert main(['train', '--data', str(folder), '--epochs', '1', '--out', str(tmp_path/'m.safetensors')]) == 0
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if 'warning' in l]
    assert lines and all(l.startswith('tabcollab train: warning: ') for l in lines) and 'warnings.warn' not in err


def test_a_loaded_learner_says_it_has_no_data_and_validates_given_rows(ml, tmp_path):
    ratings, items = ml
    for kw in ({}, dict(implicit=True, min_rating=4)):
        learn = trained(from_df(ratings, items=items, multicat_names=['genres'], **kw))
        back = load_tabcollab(save_tabcollab(learn, tmp_path/'m.safetensors'))
        # fastai's loop ended in a ZeroDivisionError, and validate() in Nones and "Your generator is empty"
        with pytest.raises(ValueError, match="this learner has no training rows"): back.fit(1)
        with pytest.raises(ValueError, match="this learner has no validation rows"): back.validate()
        rows = ratings.iloc[:300]
        with learn.no_bar(): want = learn.validate(dl=learn.dls.test_dl(rows))
        with back.no_bar(): got = back.validate(dl=back.dls.test_dl(rows))
        assert got[1] is not None and np.allclose([g for g in got if g is not None],
                                                  [w for w in want if w is not None])
        if kw:  # the ranking metrics are those of the rows given, not of the learner's validation set
            with learn.no_bar(): own = learn.validate()
            assert own[1:] != want[1:]


def test_a_saved_learner_with_sampled_validation_loads(ml, tmp_path):
    "rank_metrics(max_users=) adds an n_users column: saving wrote it as a metric name, and loading then raised"
    ratings, items = ml
    from tabcollab.all import rank_metrics
    learn = trained(from_df(ratings, items=items, multicat_names=['genres'], implicit=True, min_rating=4),
                    metrics=rank_metrics(10, max_users=5))
    back = load_tabcollab(save_tabcollab(learn, tmp_path/'m.safetensors'))
    names = [m.name for m in back.metrics]
    assert names == [m.name for m in learn.metrics] and 'n_users' in names and back.metrics[0].ev.max_users == 5


def test_new_ids_are_unknown_without_pandas_deprecation_warnings(ml):
    "fastai's Categorify coded them through pd.Categorical, which pandas 3 warns about (and pandas 4 refuses)"
    ratings, items = ml
    learn = trained(from_df(ratings, items=items, multicat_names=['genres'], implicit=True, min_rating=4))
    new = pd.DataFrame({'user': [ratings.user[0], 10**6], 'item': [10**6, items.item[0]], 'rating': [4., 5.]})
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dl = learn.dls.test_dl(new)
        learn.recommend(history={'new': list(items.item[:5])}, n=3)
    x = dl.one_batch()[0]
    assert x[0, 1] == 0 and x[1, 0] == 0 and x[0, 0] > 0 and x[1, 1] > 0  # unknown: #na#; known: their codes


def test_explain_and_similar_items_of_items_outside_the_model(ml):
    ratings, items = ml
    extra = pd.DataFrame({'item': [999], 'title': ['Brand new (2001)'], 'genres': [['Comedy', 'Drama']]})
    learn = trained(from_df(ratings, items=pd.concat([items, extra], ignore_index=True), multicat_names=['genres']))
    # an id nobody knows was explained as the unknown item (#na#), without a word
    with pytest.raises(KeyError, match="item 12345 is neither an item id nor a title the model knows, nor in the item"):
        learn.explain(ratings.user[0], 12345)
    # only the item table lists 999: explained and compared from its genres, by id or by title
    ex = learn.explain(ratings.user[0], 999)
    assert {'genres: Comedy', 'genres: Drama'} <= set(ex.piece)
    sim = learn.similar_items(999, n=5)
    assert len(sim) == 5 and 999 not in set(sim.item) and sim.similarity.is_monotonic_decreasing
    pd.testing.assert_frame_equal(sim, learn.similar_items('Brand new (2001)', n=5))
    with pytest.raises(KeyError, match="neither an item id nor a title"): learn.similar_items(12345)


def test_history_keys_that_are_no_user_id_are_said(ml):
    ratings, items = ml
    learn = trained(from_df(ratings, items=items, multicat_names=['genres'], implicit=True, min_rating=4))
    liked = list(items.item[:4])
    res, w = warned(lambda: learn.recommend(history={None: liked, 'ann': liked}, n=3))
    assert set(res.user) == {'ann'}
    assert any("history: 1 of its 2 keys is no user id (None): ignored" in m for m in w)
    res, w = warned(lambda: learn.recommend(history={'ann': liked, pd.NA: liked, float('nan'): liked}, n=3))
    assert set(res.user) == {'ann'} and any("2 of its 3 keys are no user id" in m for m in w)  # `pd.NA == x` is no bool


def test_a_user_whose_negatives_are_all_seen_gives_no_nan():
    "A small catalogue: some users have seen every negative drawn; training stays finite (it was NaN everywhere)"
    import torch
    from tabcollab.all import SampledSoftmaxLoss
    pos, neg = torch.zeros(3, requires_grad=True), torch.zeros(2, 3, requires_grad=True)
    SampledSoftmaxLoss().by_user(pos, neg, torch.tensor([0, 0, 1]),
                                 torch.tensor([[0., np.inf, 0.], [np.inf]*3])).backward()
    assert torch.isfinite(neg.grad).all() and torch.isfinite(pos.grad).all()
    rng = np.random.default_rng(0)
    df = pd.DataFrame([(u, i, 5.) for u in range(1, 201) for i in rng.permutation(np.arange(1, 21))[:16]],
                      columns=['user', 'item', 'rating'])
    learn = trained(from_df(df, implicit=True))
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert len(learn.recommend([1], n=3)) == 3


def test_fewer_histories_than_a_batch_train_as_one_smaller_batch(ml):
    dls = from_df(ml[0], items=ml[1], implicit=True, min_rating=4, max_passes=1, user_bs=100)
    assert len(dls.train) == 1
    learn = trained(dls)
    assert len(learn.recommend([int(ml[0].user.iloc[0])], n=3)) == 3


def test_a_training_loader_without_negatives_is_refused(ml):
    learn = collab_multicat_learner(from_df(ml[0], items=ml[1], implicit=True, min_rating=4))
    learn.dls.train = learn.dls.train.new(bs=16)  # fastai's `new` keeps none of the sampling
    with pytest.raises(ValueError, match=r"draws no negatives \(n_neg=0\).*set the batch size in from_df"):
        learn.fit(1)


def test_unknown_validation_ids_are_no_repeated_pairs():
    "Validation rows of users and items training does not have are all #na#: not copies of each other"
    df = pd.DataFrame({'user': [u for u in range(1, 11) for i in (1, 2, 3)] + list(range(11, 21)),
                       'item': [i for u in range(1, 11) for i in (1, 2, 3)] + [1, 2]*5, 'rating': 4.0})
    _, msgs = warned(lambda: CollabMultiCatDataLoaders.from_df(df, valid_idx=list(range(30, 40)), bs=8))
    assert not [m for m in msgs if 'repeat the (user, item) pair' in m], msgs
    _, msgs = warned(lambda: CollabMultiCatDataLoaders.from_df(pd.concat([df, df.iloc[:2]]), valid_idx=[30], bs=8))
    assert [m for m in msgs if m.startswith('2 of 42 rows repeat the (user, item) pair')], msgs


@pytest.mark.parametrize('kw,msg', [(dict(min_batches=2.5), 'min_batches must be an integer >= 1, got 2.5'),
                                    (dict(min_batches=-5), 'min_batches must be an integer >= 1, got -5'),
                                    (dict(max_passes=0, history=False), 'max_passes must be an integer >= 1, got 0')])
def test_epoch_length_settings_are_checked(ml, kw, msg):
    with pytest.raises(ValueError, match=msg): from_df(ml[0], items=ml[1], implicit=True, min_rating=4, **kw)


def test_ease_start_takes_a_bool(ml):
    with pytest.raises(ValueError, match="ease_start is None, True or False, got 'no'"):
        collab_multicat_learner(from_df(ml[0], items=ml[1], implicit=True, min_rating=4), ease_start='no')


def test_too_few_positives_for_a_batch_counts_the_positives():
    "A ranking batch is of positives: the message counts those, not every row (it said '51 rows: not one batch of 8')"
    rng = np.random.default_rng(1)
    df = pd.DataFrame([(u, i) for u in range(10) for i in range(8) if rng.random() < 0.7], columns=['user', 'item'])
    df['rating'] = np.where(df.item == 0, 5., 1.)  # one liked item: no history can be split, users by id
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        dls = CollabMultiCatDataLoaders.from_df(df, implicit=True, min_rating=4, valid_pct=0.2, seed=0, bs=8)
        n = int((dls.train_ds.items['rating'] >= 4).sum())
        with pytest.raises(ValueError, match=f'the training set has {n} positives: not one batch of 8 .lower bs.'):
            collab_multicat_learner(dls)


@pytest.mark.parametrize('n_neg', [0, -1, 2.5, 20.0, True, '10'])
def test_a_bad_number_of_negatives_is_refused_by_from_df(ml, n_neg):
    "Not a whole number >= 1: refused at once, naming n_neg (it failed in fastai's trial batch, or at fit for 0)"
    with pytest.raises(ValueError, match=r"n_neg must be an integer >= 1, got"):
        from_df(ml[0], items=ml[1], implicit=True, min_rating=4, n_neg=n_neg)
