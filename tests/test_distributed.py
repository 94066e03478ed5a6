"Two CPU processes (gloo) train one model with fastai's learn.distrib_ctx(): each on its half, weights kept equal"
import json, os, socket, subprocess, sys, textwrap
import pytest, torch

pytest.importorskip('accelerate', reason="accelerate is needed for learn.distrib_ctx(): pip install accelerate")

SCRIPT = textwrap.dedent('''
    import sys, json, torch
    from pathlib import Path
    from tabcollab.all import *
    out,kind = Path(sys.argv[1]),sys.argv[2]
    set_seed(0)
    ratings,items = synthetic_movielens(n_users=80, n_items=100, n_ratings=3000, seed=1)
    extra = dict(implicit=True, min_rating=4) if kind=='ranking' else {}  # ranking: the default, users by history
    dls = CollabMultiCatDataLoaders.from_df(ratings, items=items, multicat_names=['genres'], valid_pct=0.2, seed=0,
                                            bs=64, **extra)
    learn = collab_multicat_learner(dls)
    batches,seen = [],set()
    class Count(Callback):
        def before_train(self): self.n = 0
        def after_batch(self):
            if self.training: self.n += 1
            if self.training and self.epoch==0: seen.update(map(tuple, self.xb[0][:,:2].tolist()))
        def after_train(self): batches.append(self.n)
    with learn.no_bar(), learn.distrib_ctx(): learn.fit_one_cycle(2, cbs=Count())
    rank,losses = rank_distrib(),[float(l) for l in learn.recorder.losses]
    with learn.no_bar(): valid = learn.validate()
    torch.save({k: v.cpu() for k,v in learn.model.state_dict().items()}, out/f'weights{rank}.pt')
    (out/f'rank{rank}.json').write_text(json.dumps({'world': num_distrib(), 'batches': batches,
        'single': len(dls.train), 'valid': [float(v) for v in valid], 'losses': losses, 'seen': sorted(seen),
        'n_train': len(dls.train_ds)}))
''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.mark.parametrize('kind', ['rating', 'ranking'])
def test_two_cpu_processes_train_together(tmp_path, kind):
    "The default learners (ratings: sparse tables; implicit data: batches of users), each half the batches, one model"
    (tmp_path/'train.py').write_text(SCRIPT)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(free_port()),
           str(tmp_path/'train.py'), str(tmp_path), kind]
    env = {**os.environ, 'ACCELERATE_USE_CPU': '1', 'OMP_NUM_THREADS': '1'}   # accelerate: gloo on CPUs
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    r0,r1 = [json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0,1)]
    assert r0['world'] == r1['world'] == 2
    half = -(-r0['single']//2)
    assert r0['batches'] == r1['batches'] and abs(r0['batches'][0]-half) <= 1    # each rank trains on half the batches
    s0,s1 = set(map(tuple, r0['seen'])),set(map(tuple, r1['seen']))
    # ... disjoint halves of the epoch (less each rank's partial batch; batches of users go over them several times)
    if kind=='rating': assert not s0 & s1 and len(s0 | s1) >= r0['n_train']-2*64
    assert r0['losses'][-1] < r0['losses'][0]                                    # trained (losses from all ranks)
    w0,w1 = [torch.load(tmp_path/f'weights{r}.pt', weights_only=True) for r in (0,1)]
    for k in w0: assert torch.allclose(w0[k], w1[k], atol=1e-6), k             # one model
    assert r0['valid'] == pytest.approx(r1['valid'], abs=1e-6)
