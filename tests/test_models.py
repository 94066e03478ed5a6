"The embedding and the models: pooling, padding, gradients, shapes"
import pytest, torch
import torch.nn.functional as F
from fastai.tabular.all import sigmoid_range
from tabcollab.models import *


def test_mean_matches_hand_computed_rows():
    emb = MultiHotEmbedding(10, 4)
    bags = torch.tensor([[2,5,7],[3,0,0]])
    out = emb(bags)
    assert torch.allclose(out[0], emb.weight[[2,5,7]].mean(0))
    assert torch.allclose(out[1], emb.weight[3])


def test_padding_is_ignored_and_zero():
    emb = MultiHotEmbedding(10, 4)
    assert emb.weight[0].abs().sum() == 0
    assert torch.allclose(emb(torch.tensor([[2,0,0,0]])), emb(torch.tensor([[2]])))
    assert emb(torch.tensor([[0,0]])).abs().sum() == 0


def test_gradients_only_reach_used_rows():
    emb = MultiHotEmbedding(10, 4)
    emb(torch.tensor([[2,5,0],[5,7,0]])).pow(2).sum().backward()
    used = (emb.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert used == [2,5,7]


@pytest.mark.parametrize('mode,pool', [('sum', lambda w: w.sum(0)), ('max', lambda w: w.max(0)[0])])
def test_modes(mode, pool):
    emb = MultiHotEmbedding(10, 4, mode=mode)
    assert torch.allclose(emb(torch.tensor([[2,5,0]]))[0], pool(emb.weight[[2,5]]))


def test_per_value_weights():
    emb = MultiHotEmbedding(10, 4)
    bags,w = torch.tensor([[2,5,0]]),torch.tensor([[1.,3.,9.]])
    assert torch.allclose(emb(bags, w)[0], (emb.weight[2]+3*emb.weight[5])/4)
    s = MultiHotEmbedding(10, 4, mode='sum')
    assert torch.allclose(s(bags, w)[0], s.weight[2]+3*s.weight[5])
    with pytest.raises(ValueError, match="per-value weights need mode 'mean' or 'sum'"):
        MultiHotEmbedding(10, 4, mode='max')(bags, w)
    with pytest.raises(ValueError, match="mode must be"):
        MultiHotEmbedding(10, 4, mode='median')


def test_tabular_model_shapes():
    model = TabularMultiCatModel([(5,3)], n_cont=2, out_sz=1, layers=[8], bag_szs=[(7,4),(9,2)])
    out = model(torch.tensor([[1],[2],[3]]), torch.randn(3,2), torch.tensor([[2,3],[1,0],[4,0]]),
                torch.tensor([[5],[1],[8]]))
    assert out.shape == (3,1)
    assert model.layers[0][0].in_features == 3+4+2+2
    assert len(model.embeds) == 1 and len(model.bag_embeds) == 2


def test_dot_model_adds_genres_to_the_item():
    model = MultiCatDotBias(6, cat_szs=[5,8], bag_szs=[7], y_range=(0,5.5))
    x_cat,bags = torch.tensor([[1,2],[4,0]]),torch.tensor([[2,3],[1,0]])
    out = model(x_cat, torch.zeros(2,0), bags)
    assert out.shape == (2,1)
    u = model.embeds[0](x_cat[:,0])
    v = model.embeds[1](x_cat[:,1]) + model.bag_embeds[0](bags)
    expected = sigmoid_range((u[:,:6]*v[:,:6]).sum(1) + u[:,6] + v[:,6], 0, 5.5)
    assert torch.allclose(out[:,0], expected)


def test_dot_model_user_side_bag_and_conts():
    model = MultiCatDotBias(3, cat_szs=[4,4], bag_szs=[5,6], item_bags=[0], n_cont=2)
    u,v = model.towers(torch.tensor([[1,1]]), torch.tensor([[2]]), torch.tensor([[3]]))
    assert torch.allclose(u, model.embeds[0].weight[1] + model.bag_embeds[1].weight[3])
    assert model(torch.tensor([[1,1]]), torch.ones(1,2), torch.tensor([[2]]), torch.tensor([[3]])).shape == (1,1)


@pytest.mark.parametrize('mode', ['mean', 'sum'])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('n_values', [20, 200])
def test_the_dense_product_pools_as_embedding_bag_does(mode, weighted, n_values):
    "Up to `MULTI_HOT_MAX` values, and full bags of more (whole histories): the (bs, n_values) product, embedding_bag's"
    import tabcollab.models as models
    torch.manual_seed(0)
    emb = MultiHotEmbedding(n_values, 5, mode=mode)
    bags = torch.randint(0, n_values, (6, 40))  # 200 values: 6 x 200 cells for about 235 values, full
    bags[2] = 0  # an empty bag
    w = torch.rand(bags.shape) if weighted else None
    assert n_values<=models.MULTI_HOT_MAX or (emb._full(bags) and not emb._full(bags[:, :2]))
    out = emb(bags, w); out.pow(2).sum().backward(); g = emb.weight.grad.clone(); emb.weight.grad = None
    pw = (torch.ones(bags.shape) if w is None else w)*(bags!=0)
    if mode=='mean': pw = pw/pw.sum(1, keepdim=True).clamp_min(1e-12)
    ref = F.embedding_bag(bags, emb.weight, per_sample_weights=pw, mode='sum', padding_idx=0)
    ref.pow(2).sum().backward()
    torch.testing.assert_close(out, ref); torch.testing.assert_close(g, emb.weight.grad)
    assert not g[0].any() and not out[2].any()  # padding: no gradient; an empty bag: zeros
    torch.testing.assert_close(emb(bags.int(), w), out)  # int32 bags, as `embedding_bag` takes them
    old = models.MULTI_HOT_MAX,models.MULTI_HOT_CELLS
    models.MULTI_HOT_MAX,models.MULTI_HOT_CELLS = 0,0  # the sparse product instead: the same vectors
    try: torch.testing.assert_close(emb(bags, w), out)
    finally: models.MULTI_HOT_MAX,models.MULTI_HOT_CELLS = old


@pytest.mark.parametrize('n_values', [20, 100, 30_000])  # the dense, sparse and embedding_bag poolings
def test_a_bag_value_past_the_table_is_an_error_not_garbage(n_values):
    with pytest.raises(IndexError, match=f'bag value {n_values} is not a vocabulary index'):
        MultiHotEmbedding(n_values, 3)(torch.tensor([[n_values, 0], [5, 0]]))
    with pytest.raises(IndexError, match='bag value -1'): MultiHotEmbedding(n_values, 3)(torch.tensor([[2, -1]]))


def _pool_and_grads(emb, bags, w=None):
    "Pooled vectors of `bags` and the gradient of every parameter of `emb` for a fixed upstream gradient"
    out = emb(bags, w)
    grads = torch.autograd.grad((out*torch.arange(1., out.shape[1]+1)).sum(), list(emb.parameters()))
    return out,grads

def _reference_pool(emb, bags, w=None):
    "`embedding_bag` of the padded bags as they are, the shares as per-sample weights ('max': plain)"
    if emb.mode=='max': return F.embedding_bag(bags, emb.weight, mode='max', padding_idx=0)
    pw = (torch.ones(bags.shape) if w is None else w)*(bags!=0)
    if emb.mode=='mean': pw = pw/pw.sum(1, keepdim=True).clamp_min(1e-12)
    return F.embedding_bag(bags, emb.weight, per_sample_weights=pw, mode='sum', padding_idx=0)

@pytest.mark.parametrize('mode,weighted', [('mean', False), ('mean', True), ('sum', True), ('max', False)])
@pytest.mark.parametrize('long_bag', [30, 400])  # a padded batch, and one mostly padding (a few long histories)
def test_a_large_table_pools_the_values_alone_as_embedding_bag_does(mode, weighted, long_bag):
    "Above `CSR_BAG_MAX` values, bags mostly padding go to `embedding_bag` flat, with offsets: the same vectors"
    torch.manual_seed(0)
    emb = MultiHotEmbedding(30_000, 4, mode=mode)
    bags = torch.zeros(64, long_bag, dtype=torch.long)
    lens = torch.randint(0, 6, (64,)); lens[0] = long_bag; lens[5] = 0  # an empty bag
    for i,n in enumerate(lens.tolist()): bags[i,:n] = torch.randint(1, 30_000, (n,))
    w = torch.rand(bags.shape) if weighted else None
    before = bags.clone()
    out,grads = _pool_and_grads(emb, bags, w)
    ref = _reference_pool(emb, bags, w)
    g_ref, = torch.autograd.grad((ref*torch.arange(1., 5.)).sum(), emb.weight)
    torch.testing.assert_close(out, ref); torch.testing.assert_close(grads[0], g_ref)
    assert not out[5].any() and torch.equal(bags, before)
    assert torch.equal(emb(bags.int(), w), out)  # int32 bags


def test_bags_with_as_many_values_as_the_table_pool_as_a_sparse_product():
    "Above `CSR_BAG_MAX`, a batch with at least as many values as the table has goes through `bag_shares`"
    import tabcollab.models as models
    torch.manual_seed(0)
    emb = MultiHotEmbedding(25_000, 3)
    bags = torch.randint(0, 25_000, (1_000, 30))
    calls = []
    old = models.bag_shares
    models.bag_shares = lambda *a, **k: calls.append(1) or old(*a, **k)
    try: out = emb(bags); emb(bags[:100])  # 30,000 values (about 29,000 without padding), then 3,000: not
    finally: models.bag_shares = old
    assert calls == [1]
    torch.testing.assert_close(out, _reference_pool(emb, bags))


@pytest.mark.parametrize('mode', ['mean', 'sum'])
def test_a_bag_mlp_of_many_rows_runs_once_per_distinct_bag_with_the_same_result(mode):
    "From `MLP_DISTINCT_MIN` bags, the MLP of each distinct bag once: the vectors and gradients of every row's own"
    import tabcollab.models as models
    torch.manual_seed(0)
    emb = MultiHotEmbedding(21, 5, mode=mode, mlp=8)
    table = torch.randint(0, 21, (50, 4)); table[3] = 0  # 50 items' genres, one with none
    bags = table[torch.randint(0, 50, (3_000,))]
    seen = []
    emb.mlp.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    out,grads = _pool_and_grads(emb, bags)
    assert seen == [len(torch.unique(bags, dim=0))]  # the MLP saw each distinct bag once
    old = models.MLP_DISTINCT_MIN
    models.MLP_DISTINCT_MIN = 10**9  # every row's own
    try: ref,ref_grads = _pool_and_grads(emb, bags)
    finally: models.MLP_DISTINCT_MIN = old
    assert seen[-1] == len(bags)
    torch.testing.assert_close(out, ref)
    for g,r in zip(grads, ref_grads): torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
    # distinct bags, or bags too wide for a key, or weighted: every row's own
    wide = torch.randint(0, 21, (2_500, 13))  # 13 x 5 bits > 63
    seen.clear(); emb(wide); emb(bags, torch.rand(bags.shape)); emb(torch.unique(wide, dim=0))
    assert seen == [2_500, 3_000, len(torch.unique(wide, dim=0))]


@pytest.mark.parametrize('shape', [(7,), (3, 4), (0,), (0, 3)])  # no index: an empty result, as `embedding` gives
def test_dense_embedding_on_the_cpu_is_embedding(shape):
    "`CoalescedEmbedding` without sparse gradients looks rows up by `index_select`: `F.embedding`'s vectors, gradient"
    from tabcollab.sparse import CoalescedEmbedding
    torch.manual_seed(0)
    emb = CoalescedEmbedding(10, 3)
    x = torch.randint(0, 10, shape); x.view(-1)[:2] = 4  # a repeated index (when there are two)
    out = emb(x)
    g, = torch.autograd.grad((out*torch.arange(1., 4.)).sum(), emb.weight)
    ref = F.embedding(x, emb.weight)
    g_ref, = torch.autograd.grad((ref*torch.arange(1., 4.)).sum(), emb.weight)
    assert out.shape == (*shape, 3)
    torch.testing.assert_close(out, ref); torch.testing.assert_close(g, g_ref)
