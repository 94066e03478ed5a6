"Embedding tables, PCA, plots, neighbours, recommendations and explanations"
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np, pandas as pd, pytest, torch
from tabcollab.all import (CollabMultiCatDataLoaders, collab_multicat_learner, component_extremes, synthetic_movielens,
                           sigmoid_range)


@pytest.fixture(scope='module')
def setup():
    ratings,items = synthetic_movielens(n_users=150, n_items=220, n_ratings=9000, seed=7)
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0)
    learn = collab_multicat_learner(dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3)
    return learn,ratings,items


def n_items(learn): return len(learn.dls.classes['item'])-1


def test_embedding_frames(setup):
    learn,ratings,items = setup
    item = learn.embeddings('item')
    assert item.shape == (n_items(learn), 51) and list(item.columns[-2:]) == ['f49','bias']
    titles = dict(zip(items.item, items.title))
    assert list(item.index) == [titles[i] for i in learn.dls.classes['item'][1:]]
    user = learn.embeddings('user')
    assert user.shape == (150, 51) and list(user.index) == list(learn.dls.classes['user'][1:])
    genres = learn.embeddings('genres')
    assert list(genres.index) == list(learn.dls.multicat_classes['genres'][2:])
    with pytest.raises(ValueError, match="kind must be 'user', 'item' or one of"): learn.embeddings('colour')


def test_item_vectors_are_what_the_model_uses(setup):
    "An item's vector and bias are its id's plus its genres': the dot product with a user's gives the prediction"
    learn,ratings,_ = setup
    frame,v,b = learn.item_vectors()
    user = ratings.user[0]
    recs = learn.recommend(user, n=n_items(learn), exclude_seen=False).set_index('item')
    # the user's vector: their id's plus the mean of their history's (ratings have a history by default)
    cats,_,*bags = learn.dls.train_ds.side_inputs(torch.tensor([learn.dls.classes['user'].o2i[user]]), 'user')
    with torch.no_grad(): u = learn.model.eval().tower(cats, bags, item=False)[0]
    assert not torch.allclose(u, learn.model.embeds[0].weight[learn.dls.classes['user'].o2i[user]])
    logits = v@u[:-1] + b + u[-1]
    expected = sigmoid_range(logits, *learn.model.y_range).numpy()
    assert np.allclose(recs.loc[frame.item, 'predicted'].to_numpy(), expected, atol=1e-5)


def test_pca(setup):
    learn,ratings,_ = setup
    pca = learn.item_pca(n_components=3, min_ratings=20)
    comps = np.array(pca.attrs['components'])
    assert np.allclose(comps@comps.T, np.eye(3), atol=1e-6)                       # orthonormal components
    scores = pca[['PC1','PC2','PC3']].to_numpy()
    assert np.allclose(np.corrcoef(scores.T), np.eye(3), atol=1e-6)                # uncorrelated scores
    assert (np.var(scores, axis=0)[:-1] >= np.var(scores, axis=0)[1:]).all()      # by decreasing variance
    counts = ratings.item.value_counts()
    assert (pca['count'].to_numpy() == counts.loc[pca.item].to_numpy()).all() and (pca['count']>20).all()
    assert set(counts[counts>20].index) - set(pca.item) <= set(counts.index) - set(learn.dls.classes['item'][1:])
    ext = component_extremes(pca, 'PC2', k=4)
    assert ext.end.tolist() == ['top']*4 + ['bottom']*4
    # most extreme first
    assert ext.PC2.iloc[0] == pca.PC2.max() and ext.PC2[ext.end=='bottom'].iloc[0] == pca.PC2.min()


def test_similar_items(setup):
    learn,_,items = setup
    frame = learn.items_frame()[0]
    a = frame.item[0]
    sim = learn.similar_items(a, n=10)
    assert list(sim.columns) == ['item','title','genres','similarity'] and len(sim)==10
    assert a not in sim.item.tolist() and (np.diff(sim.similarity) <= 1e-7).all()
    b = sim.item[3]
    back = learn.similar_items(b, n=n_items(learn))
    assert np.isclose(back.similarity[back.item==a].iloc[0], sim.similarity[3], atol=1e-6)   # symmetric
    by_title = learn.similar_items(frame.title[0], n=10)
    assert by_title.item.tolist() == sim.item.tolist()
    with pytest.raises(KeyError, match="neither an item id nor a title"): learn.similar_items('No Such Film')


def test_similar_genres(setup):
    learn = setup[0]
    sim = learn.similar_genres('Drama', n=4)
    assert len(sim)==4 and 'Drama' not in sim.genres.tolist()
    with pytest.raises(KeyError, match="'Dramma' is not a value of 'genres'"): learn.similar_genres('Dramma')


def test_recommend(setup):
    learn,ratings,_ = setup
    for user in ratings.user.unique()[:5]:
        recs = learn.recommend(user, n=25)
        assert not set(recs.item) & set(ratings.item[ratings.user==user])       # training and validation rows
        assert (np.diff(recs.predicted) <= 1e-7).all()
    user = ratings.user[0]
    recs = learn.recommend(user, n=8)
    dl = learn.dls.test_dl(pd.DataFrame({'user': user, 'item': recs.item}))
    with learn.no_bar(): preds,_ = learn.get_preds(dl=dl)
    assert np.allclose(preds.flatten().numpy(), recs.predicted.to_numpy(), atol=1e-5)
    with pytest.raises(KeyError, match="user 'nobody' is not among the model's 150 users"): learn.recommend('nobody')


def test_recommend_survives_export(setup, tmp_path):
    from fastai.learner import load_learner
    learn,ratings,_ = setup
    user = ratings.user[3]
    learn.export(tmp_path/'m.pkl')
    again = load_learner(tmp_path/'m.pkl')
    pd.testing.assert_frame_equal(again.recommend(user, n=10), learn.recommend(user, n=10))


def test_explain_sums_to_the_prediction(setup):
    learn,ratings,items = setup
    user,item = ratings.user[0],learn.recommend(ratings.user[0], n=1).item[0]
    ex = learn.explain(user, item)
    genres = items.genres[items.item==item].iloc[0]
    assert ex.piece.tolist()[:2] == ['user bias','item id'] and ex.piece.tolist()[-2:] == ['total','prediction']
    assert ex.piece.tolist()[2].startswith('n_ratings: ')
    assert ex.piece.tolist()[3:-2] == [f'genres: {g}' for g in sorted(genres)]
    logit = ex.total.iloc[:-2].sum()
    assert np.isclose(sigmoid_range(torch.tensor(logit), *learn.model.y_range).item(), ex.total.iloc[-1], atol=1e-5)
    assert np.isclose(ex.total.iloc[-1], learn.recommend(user, n=1).predicted[0], atol=1e-5)


def test_plots_return_figures(setup):
    learn = setup[0]
    n = len(learn.item_pca(min_ratings=20))
    fig,ax = learn.plot_item_pca(n_labels=12)
    assert isinstance(fig, plt.Figure) and len(ax.collections[0].get_offsets())==n and len(ax.texts)==12
    fig,ax = learn.plot_embedding_heatmap('item', n=10)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(learn.embeddings('item').index[
        np.argsort(-learn.dls.train_ds.item_stats['count'].to_numpy()[1:], kind='stable')][:10])
    fig,ax = learn.plot_genre_map()
    assert len(ax.texts) == len(learn.dls.multicat_classes['genres'])-2
    assert len(ax.collections[0].get_offsets()) == len(ax.texts)
    plt.close('all')


def test_lr_find_and_plot_loss(setup):
    learn = setup[0]
    with learn.no_bar(): res = learn.lr_find(show_plot=False)
    assert 1e-7 < res.valley < 10
    learn.recorder.plot_loss()
    plt.close('all')
