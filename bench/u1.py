"""fastai's `collab_learner` against tabcollab's default learner on the MovieLens 100K u1 split (train u1.base,
validate exactly u1.test), in one run: validation RMSE and fit time of each.

    python bench/u1.py [--data path/to/ml-100k] [--seed 42]
"""
import argparse
from common import *


def main():
    p = data_arg(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('--seed', type=int, default=42)
    args = p.parse_args()
    path = ml100k(args.data)
    df,valid_idx = official_split(path, 'u1')
    _,items = load_movielens(path)
    rows = []

    set_seed(args.seed, reproducible=True)
    learn = collab_learner(fastai_collab_dls(df, valid_idx), n_factors=50, y_range=(0,5.5))
    r,s,_,targs = fit_and_score(learn, lambda l: l.fit_one_cycle(5, 5e-3, wd=0.1))
    assert len(targs)==len(valid_idx)
    rows.append({'model': "fastai collab_learner(n_factors=50, y_range=(0,5.5)), fit_one_cycle(5, 5e-3, wd=0.1)",
                 'RMSE u1.test': r, 'fit (s)': f'{s:.1f}'})

    set_seed(args.seed, reproducible=True)
    dls = CollabMultiCatDataLoaders.from_df(df, items=items, user_name='user', item_name='item', rating_name='rating',
                                            multicat_names=['genres'], valid_idx=valid_idx)
    r,s,_,targs = fit_and_score(collab_multicat_learner(dls), lambda l: l.fit_one_cycle(5))
    assert len(targs)==len(valid_idx)
    rows.append({'model': "tabcollab collab_multicat_learner(dls), fit_one_cycle(5)", 'RMSE u1.test': r,
                 'fit (s)': f'{s:.1f}'})
    print(markdown_table(rows, ['model', 'RMSE u1.test', 'fit (s)']))


if __name__ == '__main__': main()
