import pytest
from tabcollab.movielens import ml100k_path, synthetic_movielens


@pytest.fixture(scope='session')
def ml100k():
    "The MovieLens 100K folder ($TABCOLLAB_ML100K, or ../shared/data/ml-100k): the test skips without it"
    path = ml100k_path()
    if path is None: pytest.skip("MovieLens 100K not found: set TABCOLLAB_ML100K to an ml-100k folder to run this test")
    return path


@pytest.fixture(scope='session')
def small_ml():
    "A small synthetic MovieLens (ratings, items) built by the suite itself"
    return synthetic_movielens(n_users=120, n_items=200, n_ratings=6000, seed=1)
