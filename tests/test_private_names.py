"""The private names of fastai and torch that tabcollab still relies on (listed, with why, in CONTRIBUTING.md): an
upgrade that removes or changes one fails here, with a message naming it, instead of somewhere deep in a training run"""
import inspect
import pytest, torch, fastai
from fastai.data.core import FilteredBase
from fastai.tabular.core import Tabular
from fastai.distributed import DistributedTrainer
import fastai.callback.core as callback_core
from tabcollab.all import (TabularMultiCat, TabularMultiCatDataLoaders, MultiCatDataLoader, CollabMultiCatDataLoaders,
                           TabularCollabMultiCat, CollabDataLoader, BATCH_EVENTS)
from tabcollab.distributed import MultiCatDistributedTrainer

VERSIONS = f"fastai {fastai.__version__}, torch {torch.__version__}"


def must(ok, name, why):
    if not ok: pytest.fail(f"{VERSIONS}: {name} is gone or changed; tabcollab relies on it ({why}). "
                           "See CONTRIBUTING.md, 'Private names of fastai and torch'")


def test_fastai_picks_a_tables_loaders_through_dl_type_and_dbunch_type():
    why = "tabcollab.data sets them so that `to.dataloaders()` builds MultiCatDataLoaders"
    src = inspect.getsource(FilteredBase.dataloaders)
    must(hasattr(Tabular, '_dl_type') and 'self._dl_type' in src, 'FilteredBase.dataloaders reading _dl_type', why)
    must(hasattr(Tabular, '_dbunch_type') and '_dbunch_type' in src, 'FilteredBase.dataloaders reading _dbunch_type',
         why)
    assert TabularMultiCat._dl_type is MultiCatDataLoader and TabularCollabMultiCat._dl_type is CollabDataLoader
    # `_to_type` is tabcollab's own
    assert TabularMultiCatDataLoaders._to_type is TabularMultiCat
    assert CollabMultiCatDataLoaders._to_type is TabularCollabMultiCat


def test_distributed_trainer_wraps_loaders_through_wrap_dl():
    why = "MultiCatDistributedTrainer overrides it to wrap MultiCatDataLoaders in DistributedMultiCatDL"
    must(hasattr(DistributedTrainer, '_wrap_dl'), 'fastai.distributed.DistributedTrainer._wrap_dl', why)
    src = inspect.getsource(DistributedTrainer)
    must('self._wrap_dl(' in src, 'DistributedTrainer calling self._wrap_dl', why)
    assert '_wrap_dl' in vars(MultiCatDistributedTrainer)


def test_our_batch_events_are_fastais_inner_loop():
    "MultiCatLearner skips, at these events, callbacks without the event's method: they must be fastai's batch loop's"
    must(hasattr(callback_core, '_inner_loop'), 'fastai.callback.core._inner_loop', 'BATCH_EVENTS copies it')
    must(tuple(callback_core._inner_loop)==BATCH_EVENTS, 'fastai.callback.core._inner_loop (its events)',
         'BATCH_EVENTS must be the same events')


def test_sparse_tensors_mark_and_read_their_rows():
    "LazyAdamW reads a sparse gradient's rows without a sort (`_indices`), marks sorted ones coalesced (`_coalesced_`)"
    why = "tabcollab.sparse's _rows: torch has no public way to mark a tensor known to be coalesced"
    g = torch.sparse_coo_tensor(torch.tensor([[1, 4]]), torch.ones(2, 3), (6, 3))
    must(hasattr(g, '_indices') and hasattr(g, '_coalesced_'), 'torch.Tensor._indices / _coalesced_', why)
    assert not g.is_coalesced() and g._indices().tolist()==[[1, 4]]
    must(g._coalesced_(True).is_coalesced(), 'torch.Tensor._coalesced_ marking a tensor coalesced', why)
