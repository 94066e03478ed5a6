"Implicit feedback: the negative sampler, the ranking losses and learner, many-user recommendations"
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, strategies as st, HealthCheck
from tabcollab.all import (CollabMultiCatDataLoaders, collab_multicat_learner, synthetic_movielens, SampledSoftmaxLoss,
                           BPRLoss, rank_metrics, top_items, score_items, set_seed)
from tabcollab.save import save_tabcollab, load_tabcollab


@pytest.fixture(scope='module')
def data():
    return synthetic_movielens(n_users=80, n_items=120, n_ratings=4000, seed=5)


def implicit_dls(ratings, items=None, **kw):
    # rows of positives, not users: these tests are of the row sampler (the users' are in tests/test_history.py)
    kw = {'multicat_names': ['genres'] if items is not None else None, 'valid_pct': 0.2, 'seed': 0, 'implicit': True,
          'min_rating': 4, 'bs': 64, 'history': False, **kw}
    return CollabMultiCatDataLoaders.from_df(ratings, items=items, **kw)


@pytest.fixture(scope='module')
def learn(data):
    ratings,items = data
    set_seed(0)
    learn = collab_multicat_learner(implicit_dls(ratings, items, history=True))  # the default ranking learner
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    return learn


def batches(dl, n=None):
    return [b for _,b in zip(range(n or len(dl)), dl)]


# --- the sampler ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('sampling', ['uniform', 'popularity'])
def test_negatives_are_never_padding_or_na(data, sampling):
    ratings,items = data
    dls = implicit_dls(ratings, items, sampling=sampling, n_neg=200)
    for b in batches(dls.train):
        neg_cats = b[3]
        assert (neg_cats[:,1] > 0).all() and (neg_cats[:,1] < len(dls.classes['item'])).all()
        assert (b[5][:,0] > 0).all()  # the negatives' genre bags hold values or `#na#` (1), never only padding


def test_seen_items_are_masked_never_negatives(data):
    "The rule: a drawn item the row's user interacted with in training (any rating) is masked (inf) for that row"
    ratings,items = data
    dls = implicit_dls(ratings, items, n_neg=100)
    ds = dls.train_ds
    seen = ds.seen(np.arange(ds.n_users), train_only=True)
    for b in batches(dls.train):
        users,neg,offsets = b[0][:,0],b[3][:,1],b[-1]
        expected = seen[users][:, neg]
        assert torch.equal(torch.isinf(offsets), expected)
        assert torch.isfinite(offsets[~expected]).all()


def test_low_ratings_are_seen_not_positive(data):
    ratings,items = data
    dls = implicit_dls(ratings, items)
    ds = dls.train_ds
    low = ds.items[ds.roles.rating].to_numpy() < 4
    assert low.any() and dls.train.n == (~low).sum()
    # a training row rated below 4 is never a positive, but its item counts as seen for that user
    next(iter(dls.train))
    assert (ds.items[ds.roles.rating].to_numpy()[dls.train.rows] >= 4).all()
    u,i = ds.items['user'].to_numpy()[low][0],ds.items['item'].to_numpy()[low][0]
    assert ds.seen([u], train_only=True)[0, i]


def test_same_seed_same_negatives(data):
    ratings,items = data
    def draws(seed):
        set_seed(seed)
        dls = implicit_dls(ratings, items, n_neg=30)
        return [b[3][:,1] for b in batches(dls.train, 3)]
    a,b,c = draws(1),draws(1),draws(2)
    assert all(torch.equal(x, y) for x,y in zip(a, b))
    assert not all(torch.equal(x, y) for x,y in zip(a, c))


def test_negatives_are_redrawn_each_epoch(data):
    ratings,items = data
    dls = implicit_dls(ratings, items, n_neg=30)
    e1,e2 = batches(dls.train, 1)[0][3][:,1],batches(dls.train, 1)[0][3][:,1]
    assert not torch.equal(e1, e2)


def test_test_sets_draw_no_negatives(learn, data):
    ratings,_ = data
    b = learn.dls.test_dl(ratings.iloc[:5][['user','item']]).one_batch()
    nb = len(learn.dls.multicat_names)  # genres, history
    assert len(b) == learn.dls.n_inp and b[2+nb].shape[0] == 0


def test_a_frame_without_ratings(data):
    ratings,items = data
    dls = CollabMultiCatDataLoaders.from_df(ratings[['user','item']], items=items, multicat_names=['genres'],
                                            implicit=True, valid_pct=0.2, seed=0, history=False)
    assert dls.train_ds.roles.rating is None and dls.train.n == len(dls.train_ds)


def test_bad_sampler_arguments(data):
    ratings,items = data
    with pytest.raises(ValueError, match="sampling must be 'uniform' or 'popularity'"):
        implicit_dls(ratings, items, sampling='hard')
    with pytest.raises(ValueError, match="min_rating goes with implicit=True"):
        CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], min_rating=4)


# --- losses --------------------------------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**31))
def test_losses_ignore_masked_negatives(bs, k, seed):
    g = torch.Generator().manual_seed(seed)
    pred,offsets = torch.randn(bs, 1+k, generator=g),torch.randn(bs, k, generator=g)
    mask = torch.rand(bs, k, generator=g) < 0.5
    masked = torch.where(mask, torch.inf, offsets)
    for loss in [SampledSoftmaxLoss(), BPRLoss()]:
        changed = pred.clone(); changed[:,1:][mask] += 100.   # what a masked negative scores does not matter
        assert torch.isfinite(loss(pred, masked))
        torch.testing.assert_close(loss(pred, masked), loss(changed, masked))


def test_losses_fall_when_the_positive_rises():
    pred,offsets = torch.zeros(4, 6),torch.zeros(4, 5)
    better = pred.clone(); better[:,0] = 2.
    for loss in [SampledSoftmaxLoss(), BPRLoss()]: assert loss(better, offsets) < loss(pred, offsets)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**31), st.booleans(),
       st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
def test_sampled_softmax_gradient_is_autograds(bs, k, seed, correct, dtype):
    "the hand-written backward equals autograd's on the loss's formula, masked negatives and low precision included"
    g = torch.Generator().manual_seed(seed)
    pred,offsets = torch.randn(bs, 1+k, generator=g).to(dtype),torch.randn(bs, k, generator=g).abs()
    offsets[torch.rand(bs, k, generator=g) < 0.3] = torch.inf
    p1,p2 = pred.clone().requires_grad_(),pred.clone().requires_grad_()
    before = offsets.clone()
    loss = SampledSoftmaxLoss(correct)(p1, offsets)
    (3*loss).backward()
    off = offsets if correct else torch.where(torch.isinf(offsets), offsets, 0.)
    ref = -torch.log_softmax(torch.cat([p2[:,:1], p2[:,1:]-off], 1).float(), 1)[:,0].mean()
    (3*ref).backward()
    assert p1.grad.dtype == dtype and torch.equal(offsets, before)
    tol = {} if dtype==torch.bfloat16 else dict(rtol=1e-5, atol=1e-6)  # both compute in float32
    torch.testing.assert_close(loss, ref, **tol)
    torch.testing.assert_close(p1.grad, p2.grad, **tol)


@pytest.mark.parametrize('pred,offsets', [((4, 3), (4, 5)), ((4, 6), (2, 5)), ((4, 6), (1, 5)), ((4, 6), (5,)),
                                          ((6,), (4, 5))])
def test_sampled_softmax_refuses_mismatched_shapes(pred, offsets):
    "too few or too many columns, mismatched rows (a broadcastable (1, n_neg) too), 1-D inputs: named, not broadcast"
    with pytest.raises(ValueError, match=r'pred \(.*\) and offsets \(.*\) do not match'):
        SampledSoftmaxLoss()(torch.zeros(pred), torch.zeros(offsets))


@pytest.mark.parametrize('n_neg', [None, 30])
def test_dot_model_scores_negatives_as_score_and_score_matrix(learn, data, n_neg):
    "the dot model's one-tower path (`score_negatives`) matches `score` and `score_matrix`, item dropout included"
    from tabcollab.models import CollabScorer, _per_user
    m = learn.model
    nb = len(m.bag_embeds)
    # by default every item is a negative (this data has 120): a row's score is then read from its user's row, and item
    # dropout hides an item for the whole batch, not for one row (next test); with 30 the training negatives are drawn
    train = learn.dls.train if n_neg is None else implicit_dls(data[0], data[1], n_neg=n_neg, history=True).train
    assert train.all_items == (n_neg is None)
    for dl in (learn.dls.valid, train):  # batches of users: validation rows (whole histories), training users
        x = dl.one_batch()[:-1]
        rows,negs = (x[0], x[1], list(x[2:2+nb])),(x[2+nb], x[3+nb], list(x[4+nb:]))
        m.train(); old = m.item_dropout
        try:
            m.item_dropout = 0 if dl.all_items else 0.5  # every item a negative: dropout per item (next test)
            torch.manual_seed(3); fast = m(*x)
            # the dot model's score and score_matrix, drawing the dropout in the same order as its one-tower path
            torch.manual_seed(3); ref = (m.score(*rows[:2], *rows[2]), m.score_matrix(_per_user(rows), negs))
        finally: m.item_dropout = old; m.eval()
        pos,neg,by = fast
        assert pos.shape == (len(x[0]), 1) and neg.shape == (int(by.max())+1, len(negs[0]))
        torch.testing.assert_close(fast[:2], ref)
        # the generic path (the neural model's: the rows and their pairs in one pass) scores the same, without dropout
        with torch.no_grad(): torch.testing.assert_close(CollabScorer.score_negatives(m, rows, negs), m(*x))


def test_validation_rows_pool_each_users_history_once_and_score_as_plain_rows(learn):
    "a validation batch is rows with their users' histories as a `RowBags`; as plain rows it scores and loses the same"
    from tabcollab.models import row_users
    from tabcollab.encoding import row_bags
    m,dl = learn.model.eval(),learn.dls.valid
    nb = len(m.bag_embeds)
    x = dl.one_batch()
    by = row_users(x[2:2+nb])
    assert by is not None and x[-1].shape == (int(by.max())+1, dl.n_neg)  # offsets: a row per user
    assert len(by.unique()) < len(by)  # fewer users than rows: their histories pooled once each
    plain = (x[0], x[1], *[row_bags(b) for b in x[2:2+nb]], *x[2+nb:-1])  # each row its own copy of its user's bag
    with torch.no_grad():
        pos,neg,_ = m(*x[:-1])
        rows = m(*plain)
        torch.testing.assert_close(rows, torch.cat([pos, neg[by]], 1))
        loss = SampledSoftmaxLoss()
        torch.testing.assert_close(loss((pos, neg, by), x[-1]), loss(rows, x[-1][by]))


def test_validation_by_user_gives_rows_to_the_loss_metrics_and_get_preds(learn):
    "`RowScores`: out of training a batch of users' `(pos, neg, by)` becomes `(rows, 1 + n_neg)`, offsets per row"
    dl = learn.dls.valid
    assert dl.by_user_rows
    with learn.no_bar(): preds,targs = learn.get_preds(dl=dl)
    assert preds.shape == (dl.n, 1+dl.n_neg) and targs.shape == (dl.n, dl.n_neg)  # rows, as before validation by user
    with learn.no_bar(): loss = learn.validate()[0]
    assert loss == pytest.approx(float(SampledSoftmaxLoss()(preds, targs)), rel=1e-5)  # every item: nothing drawn


def test_a_metric_of_rows_still_gets_rows_and_the_loss_is_the_same_without_one(learn):
    "`RowScores` skips the rows when only ranking metrics read the validation (they rank anew): same loss either way"
    from fastai.metrics import AvgMetric
    shapes = []
    def width(pred, offsets): shapes.append((pred.shape, offsets.shape)); return torch.tensor(float(pred.shape[1]))
    old = learn.metrics
    try:
        with learn.no_bar(): plain = learn.validate()
        learn.metrics = [AvgMetric(width)]
        with learn.no_bar(): with_rows = learn.validate()
    finally: learn.metrics = old
    n_neg = learn.dls.valid.n_neg
    assert with_rows[1] == 1+n_neg and all(p[1]==1+n_neg and o[1]==n_neg and p[0]==o[0] for p,o in shapes)
    assert with_rows[0] == pytest.approx(plain[0], rel=1e-6)


def test_training_metrics_of_rows_and_callbacks_that_ask_get_rows(data):
    "`recorder.train_metrics` with a metric of rows: training batches of users become rows too; `always`: every batch"
    from fastai.metrics import AvgMetric
    from fastai.callback.core import Callback
    set_seed(0)
    learn = collab_multicat_learner(implicit_dls(*data, history=True), metrics=AvgMetric(lambda p,o: p[:,0].mean()))
    learn.recorder.train_metrics = True
    with learn.no_bar(), learn.no_logging(): learn.fit(1)  # a (pos, neg, by) tuple failed: indexed as a matrix
    assert len(learn.recorder.values[-1]) == 4  # train loss and metric, valid loss and metric
    class Shapes(Callback):
        def __init__(self): self.seen = []
        def after_batch(self): self.seen.append((self.training, self.pred.shape[1], self.yb[0].shape[1]))
    learn = collab_multicat_learner(implicit_dls(*data, history=True))
    learn.row_scores.always = True
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=(cb := Shapes()))
    n_items = learn.dls.train.n_neg
    assert {s for s in cb.seen if s[0]} == {(True, 1+n_items, n_items)}
    assert {s[1] for s in cb.seen if not s[0]} == {1+learn.dls.valid.n_neg}


def test_the_by_user_loss_takes_a_second_backward(learn):
    x = learn.dls.train.one_batch()
    learn.model.train()
    loss = learn.loss_func(learn.model(*x[:-1]), x[-1])
    first = torch.autograd.grad(loss, learn.model.embeds[1].weight, retain_graph=True)[0]
    second = torch.autograd.grad(loss, learn.model.embeds[1].weight)[0]  # the saved softmax was scaled in place
    learn.model.eval()
    torch.testing.assert_close(first, second)


def test_rows_with_an_input_of_their_own_are_not_grouped_by_user(data):
    "a row's own input (a time) differs between a user's rows: their negatives are then scored row by row, as before"
    ratings,items = data
    dls = implicit_dls(ratings, items, history=True, cont_names=['timestamp'])
    assert not dls.valid.by_user_rows and implicit_dls(ratings, items, history=True).valid.by_user_rows
    x = dls.valid.one_batch()
    assert x[-1].shape[0] == len(x[0])  # offsets: a row per row


def test_a_batch_of_users_holds_each_user_once(data):
    dl = implicit_dls(*data, history=True, user_bs=10_000).train
    assert dl.bs == len(dl.users) and len(dl) == 13  # 13 passes, one batch of every user each


def test_the_neural_ranking_model_scores_positives_and_negatives_in_one_pass(data):
    "with batch norm, positives and negatives scored apart were told apart by their batch's statistics (loss near 0)"
    set_seed(0)
    learn = collab_multicat_learner(implicit_dls(*data, history=True), use_nn=True)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    m,b = learn.model,learn.dls.train.one_batch()
    with torch.no_grad():
        m.train(); in_training = float(learn.loss_func(m(*b[:-1]), b[-1]))
        m.eval(); in_eval = float(learn.loss_func(m(*b[:-1]), b[-1]))
    assert in_training > 0.3*in_eval  # apart: 0.003 against 4.7


def test_every_items_offsets_kept_per_user_are_those_worked_out_per_batch(learn, data, monkeypatch):
    "`all_offsets` (each user's offsets against every item, kept once) gives the offsets a batch would work out"
    import tabcollab.data as D
    dl = learn.dls.train
    assert dl.all_items and dl.all_offsets is not None
    users = dl.users[torch.randperm(len(dl.users))[:10]]
    kept = dl.negatives(users)[1]
    seen = dl.seen_dense[users][:,1:]
    assert torch.equal(torch.isinf(kept), seen) and not kept[~seen].any()  # inf where seen, else 0
    monkeypatch.setattr(D, 'ALL_OFFSETS_MAX', 0)
    fresh = implicit_dls(*data, history=True).train  # above ALL_OFFSETS_MAX: worked out per batch
    assert fresh.all_items and fresh.all_offsets is None and torch.equal(fresh.negatives(users)[1], kept)
    assert torch.equal(kept, dl.negatives(users)[1])  # a batch's offsets are copies: the kept ones are unchanged
    kept.fill_(1.)
    assert torch.equal(torch.isinf(dl.negatives(users)[1]), seen)


def test_the_learner_against_every_item_takes_fastais_adam_and_its_first_fit_imports_no_dynamo(data):
    "Few large steps: fastai's `Adam`; PyTorch's optimisers import `torch._dynamo` at their first use (2.5 s here)"
    import subprocess, sys
    from fastai.optimizer import Adam
    from tabcollab.learner import fast_adam
    assert collab_multicat_learner(implicit_dls(*data, history=True)).opt_func is Adam
    assert collab_multicat_learner(implicit_dls(*data, history=True, n_neg=50)).opt_func is fast_adam  # drawn
    code = ("import sys; from tabcollab.all import *; r,i = synthetic_movielens(n_users=60, n_items=80, "
            "n_ratings=2000, seed=1); dls = CollabMultiCatDataLoaders.from_df(r, items=i, multicat_names=['genres'], "
            "implicit=True, min_rating=4, valid_pct=0.2, seed=0); learn = collab_multicat_learner(dls)\n"
            "with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)\nprint('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == 'False'


def test_every_item_epochs_are_all_items_epoch_users_long(data):
    import tabcollab.data as D
    ratings,items = synthetic_movielens(n_users=3000, n_items=60, n_ratings=60_000, seed=2)
    dl = implicit_dls(ratings, items, history=True, user_bs=100).train
    drawn = implicit_dls(ratings, items, history=True, user_bs=100, n_neg=30).train
    assert dl.all_items and not drawn.all_items and len(dl.users) > D.EPOCH_USERS/13  # passes below `max_passes`
    passes = lambda dl,n: -(-(-(-n//100)*100)//len(dl.users))  # whole passes to `n` users' worth of batches of 100
    assert dl.n == len(dl.users)*passes(dl, D.ALL_ITEMS_EPOCH_USERS)
    assert drawn.n == len(drawn.users)*passes(drawn, D.EPOCH_USERS) > dl.n


def test_batches_against_every_item_read_each_rows_score_from_its_users_row(learn):
    m,dl = learn.model,learn.dls.train
    x = dl.one_batch()
    assert dl.all_items and torch.equal(x[2+len(m.bag_embeds)][:,1], torch.arange(1, dl.dataset.n_items))
    assert x[-1].shape == (dl.bs, dl.dataset.n_items-1)  # offsets: a row per user, a column per item
    m.train(); old = m.item_dropout
    try:
        m.item_dropout = 0.5
        torch.manual_seed(3); pos,neg,by = m(*x[:-1])
    finally: m.item_dropout = old; m.eval()
    torch.testing.assert_close(pos[:,0], neg[by, x[0][:,1]-1])  # item code c: column c-1, dropout included


# --- the learner ----------------------------------------------------------------------------------------------------

def test_the_implicit_learner_picks_ranking_defaults(learn, data):
    ratings,_ = data
    names = [m.name for m in learn.metrics]
    assert names == ['precision@10', 'recall@10', 'ndcg@10', 'hit@10']
    res = dict(zip(names, learn.validate()[1:]))
    assert all(0 <= v <= 1 for v in res.values())
    assert isinstance(learn.loss_func, SampledSoftmaxLoss) and learn.model.y_range is None


def test_rank_metrics_work_for_a_rating_model(data):
    ratings,items = data
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0)
    learn = collab_multicat_learner(dls, metrics=rank_metrics(10, min_rating=4))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    res = learn.validate()
    assert len(res) == 5 and all(0 <= v <= 1 for v in res[1:])


def test_bpr_and_the_neural_model_train(data):
    ratings,items = data
    dls = implicit_dls(ratings, items, n_neg=16)
    for kw in [dict(loss_func=BPRLoss()), dict(use_nn=True)]:
        learn = collab_multicat_learner(dls, **kw)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
        assert all(np.isfinite(v) for v in learn.validate())


# --- recommendations for many users ----------------------------------------------------------------------------------

def test_batched_recommend_equals_single_user(learn, data):
    ratings,_ = data
    users = list(pd.unique(ratings.user))[:6]
    many = learn.recommend(users, n=7)
    assert list(many.columns[:2]) == ['user', 'rank'] and 'score' in many.columns
    for u in users:
        one = learn.recommend(u, n=7)
        got = many[many.user==u]
        assert got['rank'].tolist() == list(range(1, len(one)+1))
        assert got.item.tolist() == one.item.tolist()
        np.testing.assert_allclose(got.score, one.score, rtol=1e-5)


def test_recommend_never_returns_a_seen_item(learn, data):
    ratings,_ = data
    recs = learn.recommend(None, n=20)
    seen = set(zip(ratings.user, ratings.item))
    assert not any((u,i) in seen for u,i in zip(recs.user, recs.item))
    assert recs.user.nunique() == len(learn.dls.classes['user'])-1


def test_recommend_chunks_give_the_same_lists(learn):
    ds = learn.dls.train_ds
    users = np.arange(1, ds.n_users)
    a,_ = top_items(learn.model, ds, users, 5, chunk=7)
    b,_ = top_items(learn.model, ds, users, 5)
    assert torch.equal(a, b)


def test_ranking_eval_in_chunks_of_users_equals_the_whole_matrices(learn, monkeypatch):
    "Validation metrics a few users at a time (bounded memory) equal `ranking_metrics` on every user's masks at once"
    import tabcollab.ranking as ranking
    from tabcollab.all import RankingEval, ranking_metrics, auc_of, seen_mask, pair_codes
    ev,ds = RankingEval(10, auc=True),learn.dls.train_ds
    u,i = ev.relevant_pairs(learn.dls.valid)
    users = np.unique(u)
    top,_ = top_items(learn.model, ds, users, 10, exclude='train')
    relevant,seen = seen_mask(pair_codes(u, i, ds.n_items), users, ds.n_items),ds.seen(users, train_only=True)
    scores = score_items(learn.model.eval(), ds, torch.as_tensor(users))
    whole = {**ranking_metrics(top, relevant, 10, exclude=seen), 'n_relevant_in_train': int((relevant & seen).sum()),
             'auc': float(auc_of(scores, relevant, seen).nanmean())}
    monkeypatch.setattr(ranking, '_chunk', lambda model, n_items, chunk=None: 7)  # 7 users a chunk
    chunked = ev.compute(learn)
    assert len(users) > 7 and chunked.keys() == whole.keys()
    for n,v in whole.items(): assert chunked[n] == pytest.approx(v, rel=1e-12), n


def test_rank_metrics_sample_users_but_at_the_last_epoch(data, monkeypatch):
    "With `max_users`, epochs but a fit's last rank a sample, a column saying how many users; the last ranks all"
    import tabcollab.learner
    from tabcollab.all import RankingEval
    ratings,items = data
    dls = implicit_dls(ratings, items, history=True)
    n = len(np.unique(RankingEval(10).relevant_pairs(dls.valid)[0]))
    set_seed(0)
    learn = collab_multicat_learner(dls, metrics=rank_metrics(10, max_users=n//2))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3)
    names = learn.recorder.metric_names[1:-1]
    users = [v[names.index('n_users')] for v in learn.recorder.values]
    sampled = RankingEval(10, max_users=n//2).compute(learn, sample=True)['n_users']
    full = RankingEval(10).compute(learn)
    assert sampled < full['n_users'] and users == [sampled, sampled, full['n_users']]
    assert learn.recorder.values[-1][names.index('ndcg@10')] == pytest.approx(full['ndcg@10'])
    assert learn.validate()[names.index('ndcg@10')-1] == pytest.approx(full['ndcg@10'])  # [valid_loss, *metrics]
    # the default learner samples only when there are more validation users than RANK_EVAL_USERS
    assert 'n_users' not in [m.name for m in collab_multicat_learner(dls).metrics]
    monkeypatch.setattr(tabcollab.learner, 'RANK_EVAL_USERS', n//2)
    assert [m.name for m in collab_multicat_learner(dls).metrics][-1] == 'n_users'


def test_no_validation_set_fits_without_ranking_metrics(data):
    "valid_pct=0 (a final model): the default ranking learner fits, its metrics empty as fastai's are"
    ratings,items = data
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], implicit=True,
                                            min_rating=4, valid_pct=0, seed=0)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    assert all(v is None for v in learn.recorder.values[-1][2:]) and len(learn.recommend(ratings.user.iloc[0], n=3))==3


@pytest.mark.parametrize('kw,msg', [(dict(max_users=0), "max_users must be an integer >= 1, got 0"),
                                    (dict(max_users=2.5), "max_users must be an integer >= 1, got 2.5"),
                                    (dict(max_users='3'), "max_users must be an integer >= 1, got '3'"),
                                    (dict(k=0), "k must be an integer >= 1, got 0"),
                                    (dict(names=('precison',)), "names: a list of some of"),
                                    (dict(names='ndcg'), "names: a list of some of")])
def test_rank_metrics_arguments_are_checked_at_once(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg): rank_metrics(**kw)


def test_score_items_matches_get_preds(learn, data):
    ratings,_ = data
    ds = learn.dls.train_ds
    u = ds.classes['user'].o2i[ratings.user[0]]
    scores = score_items(learn.model.eval(), ds, [u])[0, 1:]
    rows = pd.DataFrame({'user': ratings.user[0], 'item': list(ds.classes['item'][1:])})
    with learn.no_bar(): preds,_ = learn.get_preds(dl=learn.dls.test_dl(rows))
    torch.testing.assert_close(scores, preds.flatten(), rtol=1e-4, atol=1e-4)


def test_a_ranking_learner_round_trips(learn, data, tmp_path):
    ratings,_ = data
    learn2 = load_tabcollab(save_tabcollab(learn, tmp_path/'rank.safetensors'))
    users = list(pd.unique(ratings.user))[:3]
    pd.testing.assert_frame_equal(learn.recommend(users, n=5), learn2.recommend(users, n=5))
    assert [m.name for m in learn2.metrics] == [m.name for m in learn.metrics]


def test_predict_show_and_export_of_a_ranking_learner(learn, data, tmp_path):
    ratings,_ = data
    _,score,_ = learn.predict(ratings.iloc[0])
    assert score.shape == (1,) and torch.isfinite(score).all()
    with learn.no_bar(): learn.show_results(max_n=3)
    learn.export(tmp_path/'rank.pkl')
    from fastai.learner import load_learner
    loaded = load_learner(tmp_path/'rank.pkl')
    assert loaded.recommend(ratings.user[0], n=3).item.tolist() == learn.recommend(ratings.user[0], n=3).item.tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 79), min_size=1, max_size=50), st.lists(st.integers(1, 119), min_size=1, max_size=30))
def test_seen_pairs_match_a_search_of_every_pair(data, dls_dense_and_indexed, users, items):
    "The lookups (a dense matrix; the users' interactions; an item-major index) against the plain rule, duplicates in"
    u,i = torch.tensor(users),torch.tensor(items)
    for dl in dls_dense_and_indexed:
        keys = (u[:,None]*dl.dataset.n_items + i[None]).numpy()
        expected = torch.from_numpy(np.isin(keys, dl.dataset.train_rated))
        assert torch.equal(dl.seen_pairs(u, i), expected)
        if dl.seen_dense is None:
            distinct,inv = torch.unique(u, return_inverse=True)
            for path in [dl._seen_by_users, dl._seen_by_items]:  # seen_pairs takes the one with less work
                assert torch.equal(path(distinct, i).index_select(0, inv), expected)
            assert torch.equal(dl._seen_by_users(u, i), expected)  # repeated users too
            assert (dl.local == -1).all()  # the scratch table is left clean for the next batch


@pytest.fixture(scope='module')
def dls_dense_and_indexed(data):
    import tabcollab.data as data_mod
    ratings,genres = data
    dense = implicit_dls(ratings, genres, n_neg=10).train
    old,data_mod.DENSE_SEEN_MAX = data_mod.DENSE_SEEN_MAX,0
    try: indexed = implicit_dls(ratings, genres, n_neg=10).train
    finally: data_mod.DENSE_SEEN_MAX = old
    assert dense.seen_dense is not None and indexed.seen_dense is None
    return dense,indexed


@pytest.mark.parametrize('kind', ['str', 'int_names'])
def test_the_default_ranking_learner_on_string_ids_and_integer_column_names(data, kind):
    "every item a negative and validation by user with str ids, or `pd.read_csv(header=None)` column names; inputs kept"
    ratings,items = data
    r,i = ratings.copy(),items.copy()
    if kind=='str': r['user'],r['item'],i['item'] = 'u'+r.user.astype(str),'m'+r.item.astype(str),'m'+i.item.astype(str)
    else: r,i = r.set_axis(range(r.shape[1]), axis=1),i.rename(columns={'item': 1})  # 0 user, 1 item, 2 rating
    before = r.copy()
    dls = CollabMultiCatDataLoaders.from_df(r, items=i, multicat_names=['genres'], implicit=True, min_rating=4, seed=0)
    pd.testing.assert_frame_equal(r, before)
    assert dls.train.all_items and dls.valid.by_user_rows
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
        loss = learn.validate()[0]
        preds,targs = learn.get_preds(dl=dls.valid)
    assert np.isfinite(loss) and preds.shape == (dls.valid.n, 1+dls.valid.n_neg)
    user = r.iloc[0, 0]
    assert len(learn.recommend(user, n=3)) == 3


def test_the_default_ranking_learner_without_a_validation_set(data):
    dls = CollabMultiCatDataLoaders.from_df(data[0], items=data[1], multicat_names=['genres'], implicit=True,
                                            min_rating=4, valid_pct=0)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    assert dls.train.all_items and np.isfinite(learn.recorder.losses[-1])


def test_drawn_negatives_come_in_batches_of_a_user_per_neg_per_user(monkeypatch):
    "More items than `ALL_ITEMS_MAX`: `DRAWN_NEG` drawn negatives, a batch of a user per `NEG_PER_USER` of them"
    import tabcollab.data as D
    ratings,items = synthetic_movielens(n_users=400, n_items=500, n_ratings=20_000, seed=3)
    monkeypatch.setattr(D, 'ALL_ITEMS_MAX', 100)
    monkeypatch.setattr(D, 'DRAWN_NEG', 400)
    dl = implicit_dls(ratings, items, history=True).train
    assert not dl.all_items and dl.by_user and dl.n_neg == 400 and dl.bs == 400//D.NEG_PER_USER
    assert implicit_dls(ratings, items, history=True, n_neg=200).train.bs == 200//D.NEG_PER_USER
    assert implicit_dls(ratings, items, history=True, n_neg=64).train.bs == 32  # 32 users at least
    assert implicit_dls(ratings, items, history=True, user_bs=7).train.bs == 7  # as given
    few = ratings[ratings.user.isin(ratings.user.unique()[:60])]
    dl = implicit_dls(few, items, history=True).train
    assert dl.bs <= -(-len(dl.users)//2)  # half the users at most: two steps a pass
    pop = implicit_dls(ratings, items, history=True, sampling='popularity').train  # popularity: drawn, any size
    assert not pop.all_items and pop.n_neg == 400 and pop.bs == 100


@pytest.mark.parametrize('history', [True, False])
def test_validate_on_the_training_rows_ranks_them_among_every_item(history):
    "validate(ds_idx=0): the training positives are the targets, not left out as seen (that gave NaN metrics)"
    from tabcollab.ranking import RankingEval
    ratings,items = synthetic_movielens(n_users=60, n_items=80, n_ratings=2000, seed=1)
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0,
                                            implicit=True, min_rating=4, history=history)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    with learn.no_bar(): train,valid = learn.validate(ds_idx=0),learn.validate()
    assert all(np.isfinite(train[1:])) and all(np.isfinite(valid[1:]))
    res = RankingEval().compute(learn, dls.train)
    ds = dls.train_ds
    assert res['n_relevant_in_train'] == 0 and res['n_users'] == len(np.unique(ds.items.user[ds.positives()]))
    assert res['precision@10'] == pytest.approx(train[1])


def test_drawn_negatives_with_string_ids_train_and_leave_the_frames_alone(monkeypatch):
    "The drawn defaults with str ids: a fit, recommendations of unseen items by id, the user's frames unchanged"
    import tabcollab.data as D
    ratings,items = synthetic_movielens(n_users=200, n_items=300, n_ratings=6000, seed=5)
    ratings,items = ratings.assign(user='u'+ratings.user.astype(str), item='m'+ratings.item.astype(str)),items.copy()
    items['item'] = 'm'+items.item.astype(str)
    before = ratings.copy(),items.copy()
    monkeypatch.setattr(D, 'ALL_ITEMS_MAX', 100)
    monkeypatch.setattr(D, 'DRAWN_NEG', 200)  # fewer than the items: drawn (as many as the items: every item)
    dls = implicit_dls(ratings, items, history=True)
    assert not dls.train.all_items and dls.train.n_neg == 200 and dls.train.bs == 200//D.NEG_PER_USER
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert np.isfinite(learn.recorder.losses[-1])
    recs = learn.recommend('u1', n=5)
    seen = set(ratings.item[(ratings.user=='u1')].tolist()) & set(dls.train_ds.classes['item'])
    assert len(recs) == 5 and all(isinstance(i, str) for i in recs.item) and not set(recs.item) & seen
    assert ratings.equals(before[0]) and items.equals(before[1])
