"Shared pieces of the benchmark scripts: MovieLens 100K splits, fastai baselines, timing and tables"
# the imports unused here are for the bench scripts' `from common import *`
import argparse, json, os, time  # noqa: F401
import fastai  # noqa: F401
from pathlib import Path
import numpy as np, pandas as pd, torch  # noqa: F401
from fastai.tabular.all import *
from fastai.collab import *
from tabcollab.all import *


def data_arg(parser):
    parser.add_argument('--data', default=None,
                        help="MovieLens 100K folder (default: $TABCOLLAB_ML100K or ../shared/data/ml-100k)")
    return parser


def report_parser(doc, docs_help='also write the report to nbs/benchmarks.md'):
    "The arguments every report script takes: --data, --out (results folder) and --docs"
    p = data_arg(argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument('--out', default='results')
    p.add_argument('--docs', action='store_true', help=docs_help)
    return p


def ml100k(path=None):
    path = Path(path) if path else ml100k_path()
    if path is None or not (path/'u1.base').exists():
        raise SystemExit("MovieLens 100K not found: pass --data or set TABCOLLAB_ML100K to the ml-100k folder")
    return path


def official_split(path, k='u1'):
    "Ratings of `uN.base` then `uN.test` in one frame (ratings as float32), and the row positions of `uN.test`"
    df,valid_idx = ml100k_split(path, k)
    return df.astype({'rating': 'float32'}),valid_idx


def fastai_collab_dls(df, valid_idx, bs=64, user='user', item='item', rating='rating'):
    "fastai's `CollabDataLoaders.from_df`, with the validation rows given (it only takes `valid_pct`)"
    to = TabularCollab(df[[user, item, rating]], [Categorify], [user, item], y_names=[rating], y_block=TransformBlock(),
                       splits=IndexSplitter(list(valid_idx))(df))
    return to.dataloaders(bs=bs)


rmse = rmse_of


def fit_and_score(learn, fit, seed=42):
    "Seed, time `fit(learn)` (no bars, no logs), and score the validation set: (rmse, seconds, preds, targs)"
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        fit(learn)
        secs = time.perf_counter()-start
        preds,targs = learn.get_preds()
    return rmse(preds, targs),secs,preds,targs


def markdown_table(rows, cols):
    "A markdown table of the dicts `rows` with columns `cols`"
    fmt = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '|'.join(['---']*len(cols)) + '|']
    return '\n'.join(lines + ['| ' + ' | '.join(fmt(r.get(c, '')) for c in cols) + ' |' for r in rows])


def with_docs_block(text, name, md, section='', before=None):
    "`text` with `md` between its `<!-- name: start/end -->` markers; if absent, `section` + block go before `before`"
    start,end = f'<!-- {name}: start -->',f'<!-- {name}: end -->'
    block = f'{start}\n{md}\n{end}'
    if start in text: return text.split(start)[0] + block + text.split(end)[1]
    if before and before in text:
        head,tail = text.split(before, 1)
        return head + section + block + '\n\n' + before + tail
    return text.rstrip('\n') + '\n\n' + section + block + '\n'


def write_docs_block(name, md, section='', before=None):
    "Put `md` between the `<!-- name: start/end -->` markers of nbs/benchmarks.md (added with `section` when absent)"
    docs = Path(__file__).parents[1]/'nbs'/'benchmarks.md'
    docs.write_text(with_docs_block(docs.read_text(), name, md, section, before))
