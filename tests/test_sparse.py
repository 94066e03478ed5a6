"LazyAdamW against torch's AdamW, untouched rows, duplicates, padding, fastai integration, the thread policy"
import pytest, torch
from functools import partial
from torch import nn
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.losses import MSELossFlat
from fastai.optimizer import OptimWrapper
from tabcollab.sparse import *


def train(opt_cls, sparse=False, n_steps=25, all_rows=True, bag=False, **kwargs):
    "(table, linear) weights of a tiny model after `n_steps`; each batch uses every row (some twice) when `all_rows`"
    torch.manual_seed(0)
    emb = nn.EmbeddingBag(20, 4, mode='mean', sparse=sparse) if bag else nn.Embedding(20, 4, sparse=sparse)
    lin = nn.Linear(4, 1)
    opt = opt_cls([*emb.parameters(), *lin.parameters()], lr=1e-2, betas=(0.9, 0.99), eps=1e-5, **kwargs)
    g = torch.Generator().manual_seed(1)
    for _ in range(n_steps):
        idx = torch.randint(0, 20, (10,), generator=g)
        if all_rows: idx = torch.cat([torch.arange(20), idx])
        x = idx.view(-1, 5) if bag else idx
        loss = (lin(emb(x)).squeeze(1) - torch.randn(len(x), generator=g)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    return emb.weight.detach(), lin.weight.detach()


@pytest.mark.parametrize('wd', [0., 0.1])
def test_dense_params_are_torch_adamw_bit_for_bit(wd):
    ref, mine = train(torch.optim.AdamW, weight_decay=wd), train(LazyAdamW, weight_decay=wd)
    assert torch.equal(ref[0], mine[0]) and torch.equal(ref[1], mine[1])


@pytest.mark.parametrize('wd', [0., 0.1])
def test_dense_params_match_fused_adamw(wd):
    ref, mine = train(torch.optim.AdamW, fused=True, weight_decay=wd), train(LazyAdamW, weight_decay=wd)
    torch.testing.assert_close(mine, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize('wd', [0., 0.1])
@pytest.mark.parametrize('bag', [False, True])
def test_sparse_matches_dense_adamw_when_every_row_is_touched(wd, bag):
    ref = train(torch.optim.AdamW, weight_decay=wd, bag=bag)
    lazy = train(LazyAdamW, sparse=True, weight_decay=wd, bag=bag, catch_up=False)
    torch.testing.assert_close(lazy, ref, atol=1e-5, rtol=0)
    assert (ref[0] - train(torch.optim.AdamW, weight_decay=wd, bag=bag, n_steps=0)[0]).abs().max() > 0.05  # it trained


def test_sparse_differs_from_dense_when_rows_are_skipped():
    "Not every row in every batch: lazy is not AdamW (AdamW keeps moving untouched rows on their momentum)"
    ref = train(torch.optim.AdamW, all_rows=False, weight_decay=0.)
    lazy = train(LazyAdamW, sparse=True, all_rows=False, weight_decay=0., catch_up=False)
    assert (ref[0] - lazy[0]).abs().max() > 1e-4


def train_catch_up(opt_cls, sparse=False, n_steps=30, wd=0.1, **kwargs):
    "Table weights after `n_steps` where each batch uses 3 of 20 rows and the learning rate changes every step"
    torch.manual_seed(0)
    emb = nn.Embedding(20, 4, sparse=sparse)
    opt = opt_cls(emb.parameters(), lr=1e-2, eps=1e-5, weight_decay=wd, **kwargs)
    g = torch.Generator().manual_seed(1)
    for i in range(n_steps):
        for pg in opt.param_groups: pg['lr'] = 1e-2 * (1 + i % 7)  # a schedule: the catch-up must follow it
        idx = torch.randint(0, 20, (3,), generator=g)
        loss = (emb(idx).sum(1) - torch.randn(3, generator=g)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    if hasattr(opt, 'catch_up'): opt.catch_up()
    return emb.weight.detach()


@pytest.mark.parametrize('wd', [0., 0.1])
def test_catch_up_is_adamw_without_momentum_whatever_rows_are_skipped(wd):
    """Sparse rows with `catch_up`: dense AdamW with betas (0, b2), the missed decays of weights and moments included.
    Exactly so without weight decay; with it, a row's forward sees it before the decay it missed (it gets that at its
    update), so the gradients differ a little: much closer to AdamW than TensorFlow's LazyAdam, still"""
    ref = train_catch_up(torch.optim.AdamW, betas=(0., 0.99), wd=wd)
    lazy = train_catch_up(LazyAdamW, sparse=True, betas=(0.9, 0.99), wd=wd)  # betas[0] applies to dense parameters only
    lazy_adam_ = train_catch_up(LazyAdamW, sparse=True, wd=wd, catch_up=False)
    if wd: assert (lazy - ref).abs().max() < 0.05 * (lazy_adam_ - ref).abs().max()
    else: torch.testing.assert_close(lazy, ref, atol=1e-5, rtol=0)
    assert (lazy_adam_ - ref).abs().max() > 0.1  # LazyAdam is another optimiser
    # the decay shows
    if wd: assert (lazy - train_catch_up(torch.optim.AdamW, betas=(0., 0.99), wd=0.)).abs().max() > 1e-2


def test_catch_up_decays_untouched_rows_only_when_asked():
    emb = nn.Embedding(6, 2, sparse=True)
    opt = LazyAdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    w = emb.weight.detach().clone()
    for _ in range(3):
        emb(torch.tensor([1])).sum().backward(); opt.step(); emb.weight.grad = None
    assert torch.equal(emb.weight.detach()[2:], w[2:])  # untouched rows wait...
    opt.catch_up()
    torch.testing.assert_close(emb.weight.detach()[2:], w[2:] * (1 - 0.1*0.5)**3)  # ...then get the 3 steps' decay
    opt.catch_up()
    torch.testing.assert_close(emb.weight.detach()[2:], w[2:] * (1 - 0.1*0.5)**3)  # once


def state_copy(opt, p): return {k: v.clone() for k, v in opt.state[p].items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize('catch_up', [False, True])
@pytest.mark.parametrize('wd', [0., 0.1])
def test_untouched_rows_and_moments_stay_bit_identical(wd, catch_up):
    emb = nn.Embedding(1000, 8, sparse=True)
    opt = LazyAdamW(emb.parameters(), lr=0.05, weight_decay=wd, catch_up=catch_up)
    emb(torch.arange(0, 1000, 3)).pow(2).sum().backward(); opt.step(); emb.weight.grad = None  # moments everywhere used
    w, st = emb.weight.detach().clone(), state_copy(opt, emb.weight)
    used = torch.tensor([5, 6, 6, 999, 5])
    emb(used).pow(2).sum().backward(); opt.step()
    other = torch.ones(1000, dtype=torch.bool); other[used] = False
    assert torch.equal(emb.weight.detach()[other], w[other])
    for k, v in state_copy(opt, emb.weight).items(): assert torch.equal(v[other], st[k][other]), k
    assert (emb.weight.detach()[used] != w[used]).all()
    assert opt.state[emb.weight]['step'] == 2


def test_duplicate_indices_are_summed():
    "A row used twice in one batch gets one update from the summed gradient (what the dense update would see)"
    def one(idx, sparse):
        torch.manual_seed(0)
        emb = nn.Embedding(10, 3, sparse=sparse)
        opt = (LazyAdamW if sparse else torch.optim.AdamW)(emb.parameters(), lr=0.1, weight_decay=0.)
        (emb(idx) * torch.arange(1., len(idx)+1)[:, None]).sum().backward(); opt.step()
        return emb.weight.detach()
    idx = torch.tensor([2, 2, 2, 7])
    lazy, dense = one(idx, True), one(idx, False)
    torch.testing.assert_close(lazy[[2, 7]], dense[[2, 7]])
    # the summed gradient of row 2 is 1+2+3=6 per element: a first Adam step moves it by -lr whatever the size
    torch.testing.assert_close(lazy[2] - one(torch.tensor([0]), True)[2], torch.full((3,), -0.1), atol=1e-5, rtol=0)


def test_embedding_bag_mean_with_padding_idx():
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(12, 4, mode='mean', padding_idx=0, sparse=True)
    opt = LazyAdamW(bag.parameters(), lr=0.1, weight_decay=0.1)
    w = bag.weight.detach().clone()
    bags = torch.tensor([[0, 3, 3, 5], [0, 0, 0, 0], [7, 0, 0, 0]])
    bag(bags).sum().backward()
    assert bag.weight.grad.is_sparse
    assert bag.weight.grad.coalesce().indices()[0].tolist() == [3, 5, 7]
    opt.step()
    moved = (bag.weight.detach() != w).any(1).nonzero().flatten().tolist()
    assert moved == [3, 5, 7]  # the padding row and the unused rows do not move


@pytest.mark.parametrize('catch_up', [False, True])
def test_empty_sparse_gradient_changes_nothing_but_the_step(catch_up):
    emb = nn.Embedding(5, 2, sparse=True)
    opt = LazyAdamW(emb.parameters(), weight_decay=0.1, catch_up=catch_up)
    w = emb.weight.detach().clone()
    emb.weight.grad = torch.sparse_coo_tensor(torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 2), (5, 2),
                                              check_invariants=True)
    opt.step()
    assert torch.equal(emb.weight.detach(), w) and opt.state[emb.weight]['step'] == 1
    assert not opt.state[emb.weight]['exp_avg_sq'].any()


def test_bad_gradients_and_hyper_parameters_are_clear_errors():
    p = nn.Parameter(torch.zeros(4, 3))
    p.grad = torch.eye(4, 3).to_sparse()
    with pytest.raises(ValueError, match='row-sparse'): LazyAdamW([p]).step()
    for kw, name in [(dict(lr=-1), 'lr'), (dict(eps=-1), 'eps'), (dict(weight_decay=-0.1), 'weight_decay'),
                     (dict(betas=(1., 0.99)), r'betas\[0\]'), (dict(betas=(0.9, 1.)), r'betas\[1\]')]:
        with pytest.raises(ValueError, match=name): LazyAdamW([p], **kw)


def test_step_memory_does_not_grow_with_the_table():
    "No allocation of the table's size during a step of a 1M-row table (the PyTorch profiler's memory accounting)"
    emb = nn.Embedding(1_000_000, 16, sparse=True)
    opt = LazyAdamW(emb.parameters())
    idx = torch.randint(0, 10_000, (4096,))
    emb(idx).sum().backward(); opt.step(); emb.weight.grad = None  # the moments are allocated at the first step
    emb(idx).sum().backward()
    with torch.profiler.profile(profile_memory=True) as prof: opt.step()
    biggest = max(ev.cpu_memory_usage for ev in prof.events())
    assert 0 < biggest < emb.weight.numel()*4 // 100, biggest


def test_sparse_embeddings_makes_gradients_sparse_but_not_max_bags():
    model = nn.ModuleDict(dict(ids=nn.Embedding(50, 4), mean=nn.EmbeddingBag(10, 4, mode='mean', padding_idx=0),
                               sum=nn.EmbeddingBag(10, 4, mode='sum'), max=nn.EmbeddingBag(10, 4, mode='max'),
                               lin=nn.Linear(4, 1)))
    assert sparse_embeddings(model) is model
    assert [getattr(m, 'sparse', None) for m in model.values()] == [True, True, True, False, None]
    bags = torch.tensor([[0, 2, 5], [1, 0, 0]])
    out = model['ids'](torch.tensor([3, 7])) + model['mean'](bags) + model['sum'](bags) + model['max'](bags)
    model['lin'](out).sum().backward()
    assert [model[n].weight.grad.is_sparse for n in model] == [True, True, True, False, False]


def dot_weights(opt_func, sparse, wd=0., steps=10):
    "Weights of a tiny dot-product model (ids x ids) whose every batch holds every user and item"
    torch.manual_seed(0)
    m = nn.ModuleDict(dict(u=nn.Embedding(6, 3), i=nn.Embedding(8, 3), ub=nn.Embedding(6, 1), ib=nn.Embedding(8, 1)))
    if sparse: sparse_embeddings(m)
    opt = opt_func(list(m.parameters()), lr=1e-2, weight_decay=wd)
    u, i = torch.arange(48) % 6, torch.arange(48) % 8
    y = torch.randn(48, generator=torch.Generator().manual_seed(2))
    for _ in range(steps):
        pred = (m['u'](u) * m['i'](i)).sum(1) + m['ub'](u)[:, 0] + m['ib'](i)[:, 0]
        (pred - y).pow(2).mean().backward(); opt.step(); opt.zero_grad()
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize('wd', [0., 0.1])
def test_lazy_adam_on_sparse_embeddings_is_torch_adamw_when_all_rows_are_touched(wd):
    torch_adamw = lambda ps, **kw: OptimWrapper(ps, opt=torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, **kw)
    for a, b in zip(dot_weights(torch_adamw, False, wd), dot_weights(partial(lazy_adam, catch_up=False), True, wd)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    no_momentum = lambda ps, **kw: OptimWrapper(ps, opt=torch.optim.AdamW, betas=(0., 0.99), eps=1e-5, **kw)
    # catch-up: sparse rows without momentum
    for a, b in zip(dot_weights(no_momentum, False, wd), dot_weights(lazy_adam, True, wd)):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_lazy_adam_zero_grad_drops_sparse_and_zeroes_dense_in_place():
    emb, lin = nn.Embedding(5, 2, sparse=True), nn.Linear(2, 1)
    opt = lazy_adam([*emb.parameters(), *lin.parameters()], lr=1e-3)
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    g = lin.weight.grad
    opt.step(); opt.zero_grad()
    assert emb.weight.grad is None
    assert lin.weight.grad is g and not g.any()
    assert opt.hypers[0] == dict(lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01, catch_up=True)


class DotModel(nn.Module):
    "A plain dot-product model with biases"
    def __init__(self, n_users=100, n_items=150, nf=8):
        super().__init__()
        self.u, self.i = nn.Embedding(n_users, nf + 1), nn.Embedding(n_items, nf + 1)
        for e in (self.u, self.i): nn.init.normal_(e.weight, std=0.01)
    def forward(self, x):
        u, i = self.u(x[:, 0]), self.i(x[:, 1])
        return ((u[:, :-1] * i[:, :-1]).sum(1) + u[:, -1] + i[:, -1] + 3)[:, None]


def synth_dls(n_users=100, n_items=150, n=4000, bs=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)], 1)
    u, i = torch.randn(n_users, 3, generator=g), torch.randn(n_items, 3, generator=g)
    y = (u[x[:, 0]] * i[x[:, 1]]).sum(1) / 2 + 3 + 0.2 * torch.randn(n, generator=g)
    ds = list(zip(x, y[:, None]))
    return DataLoaders.from_dsets(ds[:int(0.8 * n)], ds[int(0.8 * n):], bs=bs)


@pytest.fixture(scope='module')
def dls(): return synth_dls()


def test_learner_fit_one_cycle_and_lr_find(dls, tmp_path):
    torch.manual_seed(0)
    learn = Learner(dls, sparse_embeddings(DotModel()), loss_func=MSELossFlat(), opt_func=lazy_adam, wd=0.01,
                    path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 1e-2)
        losses = [v[1] for v in learn.recorder.values]
        ys = torch.stack([y for _, y in dls.valid_ds])
        assert losses[-1] < losses[0] and losses[-1] < (ys - ys.mean()).pow(2).mean()  # better than the mean rating
        assert isinstance(learn.opt.opt, LazyAdamW)
        assert learn.opt.opt.param_groups[0]['weight_decay'] == 0.01
        res = learn.lr_find(show_plot=False)
    assert res.valley > 0
    assert learn.opt.opt.state[learn.model.u.weight]['exp_avg_sq'].shape == learn.model.u.weight.shape


def test_fit_one_cycle_schedules_lr_and_momentum_of_lazy_adamw(dls, tmp_path):
    seen = []
    class Hypers(Callback):
        def after_batch(self):
            pg = self.opt.opt.param_groups[0]
            seen.append((pg['lr'], pg['betas'][0]))
    learn = Learner(dls, sparse_embeddings(DotModel()), loss_func=MSELossFlat(), opt_func=lazy_adam, path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2, cbs=Hypers())
    lrs, moms = zip(*seen)
    assert max(lrs) == pytest.approx(1e-2, rel=1e-2) and lrs[0] < 1e-3 and lrs[-1] < 1e-4
    assert min(moms) == pytest.approx(0.85, abs=1e-3) and moms[0] == pytest.approx(0.95)


class SeenThreads(Callback):
    def before_train(self): self.n = torch.get_num_threads()


class Boom(Callback):
    def after_batch(self):
        if self.iter == 2: raise RuntimeError('boom')


@pytest.fixture
def learn(dls, tmp_path):
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield Learner(dls, DotModel(), loss_func=MSELossFlat(), opt_func=lazy_adam, path=tmp_path)
    torch.set_num_threads(old)


def test_thread_policy_small_batches_get_one_thread_and_the_count_is_restored(learn):
    seen = SeenThreads()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[ThreadPolicy(), seen])
    assert seen.n == 1 and torch.get_num_threads() == 2
    assert ThreadPolicy().n_threads(64, learn.model) == 1
    assert ThreadPolicy().n_threads(SMALL_BATCH_WORK, nn.Embedding(2, 1)) == 2  # a big batch keeps the count
    assert ThreadPolicy(3).n_threads(1, learn.model) == 3


def test_thread_policy_restores_after_lr_find_and_after_an_exception(learn):
    with learn.no_bar(), learn.no_logging():
        seen = SeenThreads()
        with learn.added_cbs([ThreadPolicy(1), seen]): learn.lr_find(show_plot=False)  # ends by CancelFitException
        assert seen.n == 1 and torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match='boom'): learn.fit(1, cbs=[ThreadPolicy(1), Boom()])
    assert torch.get_num_threads() == 2


def test_thread_policy_on_the_learner_restores_the_first_count_after_a_failed_fit(learn):
    "fastai calls no `after_fit` on a failure: the next fit that ends puts back the count from before the failed one"
    policy, seen = ThreadPolicy(1), SeenThreads()
    learn.add_cbs([policy, seen])
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(RuntimeError, match='boom'): learn.fit(1, cbs=Boom())
        assert torch.get_num_threads() == 1
        learn.fit(1)
    assert seen.n == 1 and torch.get_num_threads() == 2
    learn.remove_cb(policy)
    assert torch.get_num_threads() == 2


def test_thread_policy_covers_get_preds(learn):
    "`get_preds` runs `before_fit`/`after_fit` from the Learner's context manager, which always exits"
    seen = []
    class SeenPred(Callback):
        def before_validate(self): seen.append(torch.get_num_threads())
    learn.add_cbs([ThreadPolicy(1), SeenPred()])
    learn.get_preds()
    assert seen == [1] and torch.get_num_threads() == 2


def test_num_threads_restores_on_exceptions():
    old = torch.get_num_threads()
    with pytest.raises(ZeroDivisionError):
        with num_threads(1):
            assert torch.get_num_threads() == 1
            1/0
    assert torch.get_num_threads() == old


def test_embedding_width():
    assert embedding_width(DotModel(nf=8)) == 18
    assert embedding_width(nn.Sequential(nn.EmbeddingBag(5, 3), nn.Linear(3, 7))) == 3


def test_sparse_embeddings_leaves_small_tables_dense():
    model = nn.ModuleDict(dict(users=nn.Embedding(500, 4), genres=nn.EmbeddingBag(20, 4, mode='mean', padding_idx=0)))
    sparse_embeddings(model, min_rows=128)
    assert model['users'].sparse and not model['genres'].sparse


@pytest.mark.parametrize('shape', [(7,), (3, 4)])
def test_coalesced_embedding_gives_torch_gradient_coalesced(shape):
    torch.manual_seed(0)
    emb = sparse_embeddings(CoalescedEmbedding(30, 3))
    ref = nn.Embedding(30, 3, sparse=True); ref.weight.data = emb.weight.data.clone()
    x = torch.randint(0, 5, shape)  # duplicates on purpose
    assert torch.equal(emb(x), ref(x))
    for e in (emb, ref): (e(x) * torch.arange(1., 4.)).pow(2).sum().backward()
    got = emb.weight.grad
    assert got.is_sparse and got._indices()[0].tolist() == sorted(set(x.flatten().tolist()))
    torch.testing.assert_close(got.to_dense(), ref.weight.grad.to_dense())
    with torch.no_grad(): assert torch.equal(emb(x), ref(x))  # inference: fastai's `Embedding`


def test_lazy_catch_up_callback_decays_untouched_rows_before_validation(dls, tmp_path):
    "In a `Learner`, `LazyCatchUp` gives untouched rows their decay before validation: a row no batch uses shrinks"
    model = sparse_embeddings(DotModel(n_users=101))  # user 100: in no batch
    learn = Learner(dls, model, loss_func=MSELossFlat(), opt_func=lazy_adam, wd=0.5, path=tmp_path, cbs=LazyCatchUp())
    w = model.u.weight.detach()[100].clone()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    factor = torch.tensor([1 - 1e-2*0.5]).pow(len(dls.train)).item()
    torch.testing.assert_close(model.u.weight.detach()[100], w*factor)


def test_collab_learner_is_sparse_by_default_but_dense_with_your_own_optimiser():
    "Most optimisers (fastai's `Adam`, torch's `AdamW`) refuse sparse gradients: bringing one turns them off"
    from fastai.optimizer import Adam
    from tabcollab.all import synthetic_movielens, CollabMultiCatDataLoaders, collab_multicat_learner
    ratings, items = synthetic_movielens(n_users=200, n_items=300, n_ratings=3000)
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=1)
    default, own = collab_multicat_learner(dls), collab_multicat_learner(dls, opt_func=Adam)
    assert [m.sparse for m in default.model.embeds] == [True, True, False] and default.opt_func is lazy_adam
    assert not any(m.sparse for m in own.model.embeds)
    with own.no_bar(), own.no_logging(): own.fit(1)  # trains (fastai's Adam on sparse gradients raised)
    assert [m.sparse for m in collab_multicat_learner(dls, opt_func=lazy_adam).model.embeds][:2] == [True, True]
    assert not any(m.sparse for m in collab_multicat_learner(dls, sparse=False).model.embeds)


def test_a_bag_table_a_batch_reads_more_than_half_of_stays_dense():
    "A user-side bag of what each user rated reads most of its table a batch: dense; a one-tag-per-item bag: sparse"
    import pandas as pd
    from tabcollab.all import synthetic_movielens, CollabMultiCatDataLoaders, collab_multicat_learner
    ratings, items = synthetic_movielens(n_users=200, n_items=300, n_ratings=3000)
    rated = ratings.groupby('user')['item'].agg(list)
    users = pd.DataFrame({'user': rated.index, 'rated': [[f'i{i}' for i in o] for o in rated]})
    items = items.assign(tag=[[f't{i}'] for i in range(len(items))])
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, users=users, multicat_names=['genres','rated','tag'],
                                            valid_pct=0.2, seed=1, bs=16)
    genres,rated_reads,tag_reads,history_reads = dls.train.bag_lookups
    assert tag_reads == 16 and rated_reads > 16*10  # one tag a row; each row reads its user's ~15 rated items
    assert 0 < history_reads < rated_reads  # the default history: the training items only, at most HISTORY_MAX
    learn = collab_multicat_learner(dls)
    assert [e.sparse for e in learn.model.bag_embeds] == [False, False, True, False]
    assert [m.sparse for m in learn.model.embeds][:2] == [True, True] and learn.opt_func is lazy_adam
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert all(p.grad is None or not p.grad.is_sparse for p in learn.model.bag_embeds[1].parameters())


def test_learning_rate_times_weight_decay_of_1_or_more_does_not_crash():
    "`lr_find` ends at lr=10: with wd=0.1 or more, `1 - lr*wd <= 0` (no log); untouched rows are zeroed, not an error"
    emb = nn.Embedding(6, 2, sparse=True)
    opt = LazyAdamW(emb.parameters(), lr=20., weight_decay=0.1)
    emb(torch.tensor([1])).sum().backward(); opt.step(); emb.weight.grad = None
    opt.catch_up()
    w = emb.weight.detach()
    assert torch.isfinite(w).all() and w[2:].abs().max() < 1e-20
