"Encoder behaviour: round trips, the spellings of a bag, missing and unseen values, bad input"
import numpy as np, pandas as pd, pytest, torch
from hypothesis import given, settings, strategies as st
from fastai.tabular.all import Categorify, DataBlock, ColReader, RegressionBlock, IndexSplitter
from tabcollab.encoding import *
from tabcollab.side import *
from tabcollab.core import *
from tabcollab.block import *


def encode(col, vocab_col=None, sep='|'):
    "Bags of `col` with a vocabulary learnt on `vocab_col` (default: `col`)"
    col = pd.Series(col, dtype=object)
    vocab = BagVocab(cell_values(pd.Series(vocab_col if vocab_col is not None else col, dtype=object), sep))
    return encode_bags(cell_values(col, sep), len(col), vocab),vocab


def decoded(col, **kwargs):
    bags,vocab = encode(col, **kwargs)
    return decode_bags(bags, vocab).tolist()


value = st.text(alphabet=st.characters(blacklist_categories=['Cs']), min_size=0, max_size=8)

@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(value, max_size=6), min_size=1, max_size=8))
def test_round_trip_as_sets(lists):
    "decode(encode(x)) gives x back as a set (values stripped, compared case-insensitively)"
    bags,vocab = encode(lists)
    out = decode_bags(bags, vocab)
    for x,y in zip(lists, out):
        assert {v.casefold() for v in y} == {v.strip().casefold() for v in x if v.strip()}
    assert int(bags.values.min()) >= 1 and int(bags.values.max()) < len(vocab)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(value, max_size=5), min_size=1, max_size=6),
       st.lists(st.lists(value, max_size=5), min_size=1, max_size=6))
def test_indices_stay_in_vocab_for_unseen(train, test):
    "Values unseen in training map to #na# (1), so indices always fit the embedding"
    bags,vocab = encode(test, vocab_col=train)
    assert int(bags.values.min()) >= 1 and int(bags.values.max()) < len(vocab)
    seen = {v.strip().casefold() for l in train for v in l if v.strip()}
    for x,y in zip(test, decode_bags(bags, vocab)):
        kept = {v.strip().casefold() for v in x if v.strip() and v.strip().casefold() in seen}
        assert {v.casefold() for v in y if v!=BAG_NA} == kept


def test_spellings_agree():
    "A separator string, a list, a tuple and a set of the same values give the same bag"
    bags,_ = encode(["Comedy|Romance", ["Comedy","Romance"], ("Romance","Comedy"), {"Comedy","Romance"}])
    assert (bags[[0,1,2,3]] == bags[[0]]).all()


def test_custom_separator():
    assert decoded(["Comedy;Romance", "Drama"], sep=';') == [['Comedy','Romance'], ['Drama']]
    assert decoded(["Comedy;Romance"], sep='|') == [['Comedy;Romance']]


def test_missing_and_empty_are_na():
    bags,vocab = encode(["A", [], None, np.nan, "", " ", ["", None]], vocab_col=["A"])
    assert bags[range(7)][1:].tolist() == [[1]]*6
    assert decode_bags(bags, vocab).tolist() == [['A'], [], [], [], [], [], []]
    assert vocab[0]==BAG_PAD and vocab[1]==BAG_NA


def test_unseen_values_are_na():
    bags,vocab = encode([["A","Z"], ["Z"]], vocab_col=[["A"]])
    assert bags[[0,1]].tolist() == [[1,2],[1,0]]
    assert decode_bags(bags, vocab).tolist() == [['#na#','A'], []]


def test_whitespace_case_and_duplicates():
    "'comedy ' and 'Comedy' are one value (first spelling wins); a value listed twice counts once"
    bags,vocab = encode([["Comedy", "comedy ", " COMEDY"], ["Drama","Drama"]])
    assert list(vocab) == ['#pad#','#na#','Comedy','Drama']
    assert bags[[0,1]].tolist() == [[2],[3]]


def test_non_string_values_become_strings():
    assert decoded([[1, 2], [2, "3"], 7]) == [['1','2'], ['2','3'], ['7']]


def test_separator_inside_a_list_value_stays_whole():
    assert decoded([["A|B", "C"]]) == [['A|B','C']]


def test_long_list():
    "A bag of 10,000 values encodes, and only widens the batches it is in"
    long = [f'tag{i}' for i in range(10_000)]
    bags,vocab = encode([long, ['tag1'], ['tag2']])
    assert len(vocab) == 10_002
    assert bags[[0]].shape == (1, 10_000) and bags[[1,2]].shape == (2, 1)
    assert set(decode_bags(bags, vocab)[0]) == set(long)


@pytest.mark.parametrize('cell,msg', [
    ({'a': 1}, "column 'tags', row 0: {'a': 1} is not a list, a string or a missing value"),
    (['a', ['b']], "column 'tags', row 0: ['b'] is inside a list"),
    (['a', {'b': 1}], "column 'tags', row 0: {'b': 1} is inside a list"),
])
def test_bad_cells_name_column_row_and_value(cell, msg):
    pat = msg.replace('[','\\[').replace(']','\\]').replace('{','\\{').replace('}','\\}')
    with pytest.raises(TypeError, match=pat):
        cell_values(pd.Series([cell], dtype=object), name='tags')


def test_numeric_column_is_not_a_list_column():
    with pytest.raises(TypeError, match=r"column 'price', row 0: 1.5 is a number \(dtype float64\)"):
        cell_values(pd.Series([1.5, 2.0]), name='price')
    assert len(cell_values(pd.Series([np.nan, np.nan]), name='genres')) == 0  # all missing is fine


def test_flags():
    flags = pd.DataFrame({'Action': [1,0,0], 'Comedy': [1,1,0], 'Drama': [0,1,np.nan]})
    vals = flag_values(flags, ['Action','Comedy','Drama'], 'genres')
    assert vals.index.tolist() == [0,0,1,1] and vals.tolist() == ['Action','Comedy','Comedy','Drama']
    with pytest.raises(ValueError, match="flag group 'genres': column 'Drama', row 1 holds 'yes'"):
        flag_values(flags.assign(Drama=[0,'yes',0]), ['Action','Drama'], 'genres')
    with pytest.raises(KeyError, match="Horror"):
        flag_values(flags, ['Horror'], 'genres')


def test_bags_indexing():
    b = Bags([2,3,1,4,2,5], [0,2,3,6])
    assert b[[2,0]].tolist() == [[4,2,5],[2,3,0]]
    assert b.take([2,0]).values.tolist() == [4,2,5,2,3]
    assert Bags.cat([b, Bags.na(1)])[[3]].tolist() == [[1]]
    assert (Bags.from_padded(b[[0,1,2]])[[0,1,2]] == b[[0,1,2]]).all()


def products():
    return pd.DataFrame({'brand': list('abcab'), 'weight': [1.,2.,3.,4.,5.],
                         'tags': [['red','big'], 'blue|small', None, [], 'red|green'], 'price': [1.,2.,3.,4.,5.]})


def test_tabular_multicat_encodes_and_decodes():
    to = TabularMultiCat(products(), [Categorify, MultiCategorify], cat_names=['brand'], cont_names=['weight'],
                         multicat_names=['tags'], y_names='price', splits=[[0,1,2,3],[4]])
    assert list(to.multicat_classes['tags']) == ['#pad#','#na#','big','blue','red','small']
    assert to.bags['tags'][to.items['tags'].to_numpy()].tolist() == [[2,4],[3,5],[1,0],[1,0],[1,4]]
    dec = to.new(to.items).decode().items
    assert dec['tags'].tolist() == [['big','red'], ['blue','small'], [], [], ['#na#','red']]


def test_meta_join_unknown_item_and_row_override():
    ratings = pd.DataFrame({'user': [1,2,3], 'item': [10,99,98], 'rating': [1.,2.,3.], 'genres': [None, None, 'Drama']})
    items = pd.DataFrame({'item': [10,11], 'genres': ['Comedy|Drama', 'Action']})
    to = TabularMultiCat(ratings, [Categorify, MultiCategorify], cat_names=['user','item'], y_names='rating',
                         multicat_names=['genres'], meta=items, meta_on='item')
    assert to.bags['genres'][to.items['genres'].to_numpy()].tolist() == [[3,4],[1,0],[4,0]]


def test_meta_needs_unique_keys():
    items = pd.DataFrame({'item': [10,10], 'genres': ['A','B']})
    with pytest.raises(ValueError, match="side table joined on .item. has several rows for item=10"):
        TabularMultiCat(pd.DataFrame({'item': [10], 'y': [1.]}), [MultiCategorify], cat_names=['item'], y_names='y',
                        multicat_names=['genres'], meta=items, meta_on='item')


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match=r"column\(s\) \['colour'\] not found; "
                                       r"columns present: \['brand', 'weight', 'tags', 'price'\]"):
        TabularMultiCat(products(), [MultiCategorify], multicat_names=['colour'], y_names='price')
    with pytest.raises(KeyError, match=r"\['size'\] not found"):
        TabularMultiCat(products(), [MultiCategorify], cat_names=['size'], multicat_names=['tags'], y_names='price')


def test_multicat_block():
    df = pd.DataFrame({'tags': [['red','big'], 'blue|small', 'red', [], 'green'], 'price': [1.,2.,3.,4.,5.]})
    dls = DataBlock(blocks=(MultiCatBlock, RegressionBlock), get_x=ColReader('tags'), get_y=ColReader('price'),
                    splitter=IndexSplitter([4])).dataloaders(df, bs=4, shuffle=False)
    x,y = dls.one_batch()
    assert isinstance(x, TensorBag) and x.tolist() == [[2,4],[3,5],[4,0],[1,0]]
    assert dls.valid.one_batch()[0].tolist() == [[1]]
    assert [str(o[0]) for o in dls.decode_batch((x,y))] == ['big|red', 'blue|small', 'red', '']


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 30), max_size=8), min_size=1, max_size=40), st.data())
def test_bags_padded_once_equal_bags_padded_per_batch(bags, data):
    "Padding made once (small bags) gives what padding each batch gives: same values, as wide as the batch's longest"
    import tabcollab.encoding as core
    flat = [v for b in bags for v in b]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in bags])])
    idx = data.draw(st.lists(st.integers(0, len(bags)-1), max_size=20))
    cached = Bags(flat, offsets)
    # similar lengths: padded once
    if max(map(len, bags)) <= 4*max(1, min(map(len, bags))): assert cached._padded() is not None
    old, core.PAD_ONCE_MAX = core.PAD_ONCE_MAX, -1
    try: plain = Bags(flat, offsets); assert plain._padded() is None; ref = plain[idx]
    finally: core.PAD_ONCE_MAX = old
    got = cached[idx]
    assert got.dtype == ref.dtype == torch.long and torch.equal(got, ref)
    width = max([len(bags[i]) for i in idx] + [1])
    assert got.shape[1] == width
    assert got.tolist() == [bags[i] + [0]*(width-len(bags[i])) for i in idx]  # mostly padding or not


def test_bags_with_a_few_long_bags_are_not_padded_once():
    "One bag of 1,000 values among 1,000 bags of 1: padding all of them would take 1,000x the values"
    b = Bags(list(range(1, 1001)) + [1]*1000, np.concatenate([[0, 1000], 1001 + np.arange(1000)]))
    assert b._padded() is None
    assert b[[1, 2]].tolist() == [[1], [1]] and b[[0]].shape == (1, 1000)


def test_ragged_positions():
    assert ragged_positions(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3])).tolist() == [5, 6, 9, 10, 11]
    assert ragged_positions(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)).tolist() == []
