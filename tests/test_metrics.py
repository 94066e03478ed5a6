"Ranking metrics: hand-computed examples (ties, users with nothing relevant, short lists, nothing left) and properties"
import math
import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st
from tabcollab.metrics import *

nan = float('nan')


def close(a, b):
    a,b = torch.as_tensor(a, dtype=torch.float64),torch.as_tensor(b, dtype=torch.float64)
    return torch.allclose(a, b, equal_nan=True)


# --- hand-computed examples

def test_topk_ties_go_to_the_lower_index():
    s = torch.tensor([[1., 3., 3., 2., 3.]])
    assert topk_items(s, 3).tolist() == [[1, 2, 4]]
    assert topk_items(s, 5).tolist() == [[1, 2, 4, 3, 0]]
    assert topk_items(s, 2, torch.tensor([[0, 1, 0, 0, 0]]).bool()).tolist() == [[2, 4]]


def test_topk_pads_short_lists_and_empty_rows():
    s = torch.tensor([[0.5, 0.1, 0.9], [0.3, 0.2, 0.1]])
    ex = torch.tensor([[True, False, False], [True, True, True]])
    assert topk_items(s, 5, ex).tolist() == [[2, 1, -1, -1, -1], [-1]*5]
    assert topk_items(s, 4).tolist() == [[2, 0, 1, -1], [0, 1, 2, -1]]


def test_topk_keeps_minus_inf_candidates_and_accepts_numpy():
    s = np.array([[-np.inf, 1., -np.inf]])
    assert topk_items(s, 3, np.array([[False, False, True]])).tolist() == [[1, 0, -1]]


def test_topk_bad_input():
    with pytest.raises(ValueError, match='positive integer'): topk_items(torch.zeros(2, 3), 0)
    with pytest.raises(ValueError, match='2-d'): topk_items(torch.zeros(3), 1)
    with pytest.raises(ValueError, match='NaN'): topk_items(torch.tensor([[nan, 1.]]), 1)
    with pytest.raises(ValueError, match='shape'): topk_items(torch.zeros(2, 3), 1, torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match='bool'): topk_items(torch.zeros(1, 2), 1, torch.tensor([[0, 2]]))


def test_metrics_by_hand():
    # user 0: relevant {1, 3}, list [3, 0, 1]: hits at ranks 1 and 3
    # user 1: relevant {2}, list [0, 1, -1] (2 candidates only): no hit
    # user 2: nothing relevant: left out of the means
    topk = torch.tensor([[3, 0, 1], [0, 1, -1], [2, 1, 0]])
    rel = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]).bool()
    m = ranking_metrics(topk, rel, per_user=True)
    idcg0 = 1 + 1/math.log2(3)
    assert close(m['precision@3'], [2/3, 0, nan])
    assert close(m['recall@3'], [1, 0, nan])
    assert close(m['ndcg@3'], [(1 + 1/2)/idcg0, 0, nan])
    assert close(m['hit@3'], [1, 0, nan])
    assert m['n_relevant'].tolist() == [2, 1, 0]
    mean = ranking_metrics(topk, rel)
    assert close([mean['precision@3'], mean['recall@3'], mean['ndcg@3'], mean['hit@3']], [1/3, 1/2, (1.5/idcg0)/2, 1/2])
    assert (mean['n_users'], mean['n_no_relevant']) == (2, 1)


def test_precision_divides_by_k_when_the_list_is_short():
    "One candidate, relevant and recommended: precision 1/k, recall 1, NDCG 1"
    s,ex = torch.tensor([[0., 1., 2.]]),torch.tensor([[True, False, True]])
    rel = torch.tensor([[False, True, False]])
    m = ranking_metrics(None, rel, 5, scores=s, exclude=ex)
    assert close([m['precision@5'], m['recall@5'], m['ndcg@5'], m['hit@5']], [1/5, 1, 1, 1])


def test_ndcg_ideal_uses_min_k_n_relevant():
    "Five relevant items, k=2, both slots hit: NDCG 1 (the ideal list has 2, not 5, relevant positions)"
    rel = torch.ones(1, 6, dtype=torch.bool); rel[0, 5] = False
    assert close(ranking_metrics(torch.tensor([[0, 1]]), rel)['ndcg@2'], 1.)
    assert close(ranking_metrics(torch.tensor([[5, 1]]), rel)['ndcg@2'], (1/math.log2(3))/(1 + 1/math.log2(3)))


def test_everything_excluded():
    s,ex = torch.rand(3, 4),torch.ones(3, 4, dtype=torch.bool)
    rel = torch.tensor([[1, 0, 0, 0]]*3).bool()
    assert (topk_items(s, 2, ex) == -1).all()
    m = ranking_metrics(None, rel, 2, scores=s, exclude=ex)   # excluded items are not relevant: nobody is evaluated
    assert m['n_users'] == 0 and m['n_no_relevant'] == 3 and m['n_auc_users'] == 0
    assert all(math.isnan(m[n]) for n in ['precision@2', 'recall@2', 'ndcg@2', 'hit@2', 'auc'])
    assert auc_of(s, rel, ex).isnan().all()
    assert catalogue_coverage(topk_items(s, 2, ex), 4) == 0.


def test_excluded_relevant_items_do_not_count():
    rel = torch.tensor([[True, True, False]])
    ex = torch.tensor([[True, False, False]])
    m = ranking_metrics(torch.tensor([[1, 2]]), rel, exclude=ex)
    assert close([m['recall@2'], m['precision@2']], [1, 1/2])


def test_k_cuts_or_pads_the_lists():
    topk,rel = torch.tensor([[2, 0, 1]]),torch.tensor([[True, False, True]])
    assert close(ranking_metrics(topk, rel, k=1)['precision@1'], 1.)
    assert close(ranking_metrics(topk, rel, k=6)['precision@6'], 2/6)


def test_auc_by_hand_with_ties():
    # relevant scores 0.5, 0.3 against 0.1, 0.5 (item 0 excluded): 1 + 1/2 + 1 + 0 of 4 pairs
    s = torch.tensor([[0.9, 0.1, 0.5, 0.5, 0.3], [1., 1., 1., 1., 1.]])
    rel = torch.tensor([[0, 0, 1, 0, 1], [1, 0, 0, 0, 0]]).bool()
    ex = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]).bool()
    assert close(auc_of(s, rel, ex), [0.625, 0.5])
    assert close(auc_of(s, rel, ex, chunk=1), [0.625, 0.5])


def test_auc_needs_both_classes():
    s = torch.tensor([[1., 2.], [1., 2.], [1., 2.]])
    rel = torch.tensor([[True, True], [False, False], [True, False]])
    assert close(auc_of(s, rel), [nan, nan, 0.])
    assert ranking_metrics(torch.tensor([[1], [0], [1]]), rel, scores=s)['n_auc_users'] == 1


def test_catalogue_coverage():
    assert catalogue_coverage(torch.tensor([[0, 1], [1, -1]]), 4) == 0.5
    with pytest.raises(ValueError, match='outside'): catalogue_coverage(torch.tensor([[4]]), 4)
    with pytest.raises(ValueError, match='positive integer'): catalogue_coverage(torch.tensor([[0]]), 0)


def test_bad_lists():
    rel = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match='twice'): ranking_metrics(torch.tensor([[0, 0], [1, 2]]), rel)
    with pytest.raises(ValueError, match='outside'): ranking_metrics(torch.tensor([[0, -2], [1, 2]]), rel)
    with pytest.raises(ValueError, match='integer'): ranking_metrics(torch.tensor([[0., 1.], [1., 2.]]), rel)
    with pytest.raises(ValueError, match='users'): ranking_metrics(torch.tensor([[0, 1]]), rel)
    with pytest.raises(ValueError, match='scores'): ranking_metrics(None, rel)


def test_inputs_are_not_modified():
    s,rel,ex = torch.rand(4, 6),torch.rand(4, 6) > 0.5,torch.rand(4, 6) > 0.7
    copies = [t.clone() for t in (s, rel, ex)]
    ranking_metrics(None, rel, 3, scores=s, exclude=ex); auc_of(s, rel, ex)
    assert all(torch.equal(a, b) for a,b in zip((s, rel, ex), copies))


# --- properties against a naive per-user reference

@st.composite
def problems(draw):
    "Scores with many ties (few distinct values), relevance and exclusion masks, and k"
    n_users,n_items = draw(st.integers(1, 6)),draw(st.integers(1, 9))
    cells = lambda s: draw(st.lists(st.lists(s, min_size=n_items, max_size=n_items),
                                    min_size=n_users, max_size=n_users))
    scores = torch.tensor(cells(st.integers(-3, 3)), dtype=torch.float32)
    return scores,torch.tensor(cells(st.booleans())),torch.tensor(cells(st.booleans())),draw(st.integers(1, 12))


def reference(s, rel, ex, k):
    "Per-user loop: (topk, precision, recall, ndcg, hit, auc), NaN where undefined"
    out = []
    for u in range(len(s)):
        cands = [i for i in range(s.shape[1]) if not ex[u, i]]
        order = sorted(cands, key=lambda i: (-float(s[u, i]), i))[:k]
        r = {i for i in cands if rel[u, i]}
        hits = [i in r for i in order]
        dcg = sum(1/math.log2(j+2) for j,h in enumerate(hits) if h)
        idcg = sum(1/math.log2(j+2) for j in range(min(k, len(r))))
        neg = [i for i in cands if i not in r]
        pairs = [(float(s[u, p]) > float(s[u, q])) + 0.5*(float(s[u, p]) == float(s[u, q])) for p in r for q in neg]
        m = [sum(hits)/k, sum(hits)/len(r), dcg/idcg, float(any(hits))] if r else [nan]*4
        out.append((order + [-1]*(k-len(order)), *m, sum(pairs)/len(pairs) if pairs else nan))
    return out


@settings(max_examples=300, deadline=None)
@given(problems())
def test_matches_the_naive_reference(p):
    s,rel,ex,k = p
    ref = reference(s, rel, ex, k)
    assert topk_items(s, k, ex).tolist() == [r[0] for r in ref]
    m = ranking_metrics(None, rel, k, scores=s, exclude=ex, per_user=True)
    for j,n in enumerate([f'precision@{k}', f'recall@{k}', f'ndcg@{k}', f'hit@{k}', 'auc']):
        assert close(m[n], [r[j+1] for r in ref]), n


@settings(max_examples=300, deadline=None)
@given(problems())
def test_metric_properties(p):
    s,rel,ex,k = p
    topk = topk_items(s, k, ex)
    m = ranking_metrics(topk, rel, exclude=ex, per_user=True)
    rel = rel & ~ex
    for n in [f'precision@{k}', f'recall@{k}', f'ndcg@{k}', f'hit@{k}']:
        v = m[n][~m[n].isnan()]
        assert ((v >= 0) & (v <= 1+1e-12)).all(), n
    hits = (rel.gather(1, topk.clamp(min=0)) & (topk >= 0)).sum(1)
    has = rel.any(1)
    assert torch.equal((m[f'precision@{k}'][has]*k).round().long(), hits[has])
    in_top = has & (hits == rel.sum(1))   # every relevant item made the list
    assert (m[f'recall@{k}'][in_top] == 1).all()
    assert (m[f'hit@{k}'][has] == (hits[has] > 0)).all()
    auc = auc_of(s, rel, ex)
    assert ((auc[~auc.isnan()] >= 0) & (auc[~auc.isnan()] <= 1)).all()
    assert 0 <= catalogue_coverage(topk, s.shape[1]) <= 1


@settings(max_examples=200, deadline=None)
@given(problems())
def test_perfect_and_reversed_rankings(p):
    "Scoring the relevant items above the others gives AUC 1, below gives 0, and a perfect list has NDCG 1"
    _,rel,ex,k = p
    noise = torch.rand(rel.shape)
    perfect = rel.float()*2 + noise
    auc,rev = auc_of(perfect, rel, ex),auc_of(-perfect, rel, ex)
    defined = ~auc.isnan()
    assert (auc[defined] == 1).all() and (rev[defined] == 0).all()
    assert torch.equal(defined, ~rev.isnan())
    ndcg = ranking_metrics(None, rel, k, scores=perfect, exclude=ex, per_user=True)[f'ndcg@{k}']
    assert torch.allclose(ndcg[~ndcg.isnan()], torch.ones(1, dtype=torch.float64))


def test_vectorised_at_movielens_size():
    "943 x 1682 (MovieLens 100K): random scores give an AUC near 1/2, the truth an AUC of 1"
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(943, 1682, generator=g)
    rel,ex = truth > 2,torch.rand(943, 1682, generator=g) < 0.06
    assert abs(float(auc_of(torch.rand(943, 1682, generator=g), rel, ex).nanmean()) - 0.5) < 0.01
    assert float(auc_of(truth, rel, ex).nanmean()) == 1.
    m = ranking_metrics(None, rel, 10, scores=truth, exclude=ex)
    assert m['ndcg@10'] == pytest.approx(1.) and m['n_users'] == int((rel & ~ex).any(1).sum())
