"`fit` under torchrun: two gloo processes train as one process with the same global batch, agree with torch's DistributedDataParallel, and a killed rank leaves a checkpoint that resumes to the uninterrupted run."
import os, subprocess, sys
from pathlib import Path

import pytest, torch
from safetensors.torch import load_file

from robust_nb.data import find_dataset
from robust_nb.train import latest_checkpoint, load_checkpoint

JOB = Path(__file__).with_name('_ddp_job.py')
pytestmark = pytest.mark.skipif(find_dataset('fashion_mnist', 'train') is None, reason='needs Fashion-MNIST (make data)')

def launch(*args, ranks=2, check=True):
    "Run the job under torchrun with `ranks` gloo processes (or plainly when ranks is 1); its completed process."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc-per-node={ranks}', str(JOB), *args] if ranks > 1 else [sys.executable, str(JOB), *args]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(JOB.parent.parent)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def two_ranks(tmp_path_factory):
    "Weights after 3 epochs: one process, two ranks with fit, two ranks with DistributedDataParallel."
    one, two = tmp_path_factory.mktemp('one'), tmp_path_factory.mktemp('two')
    launch('--out', str(one), '--epochs', '3', ranks=1)
    launch('--out', str(two), '--epochs', '3', '--ddp-peer')
    return load_file(one/'fit.safetensors'), load_file(two/'fit.safetensors'), load_file(two/'ddp.safetensors'), (two/'ranks').read_text()

def test_two_ranks_train_as_one_process(two_ranks):
    single, ours, _, ranks = two_ranks
    assert ranks == '2'
    # float64 throughout; the ranks only sum each batch's gradient in another order (two halves, then their sum)
    for k in single: torch.testing.assert_close(ours[k], single[k], rtol=0, atol=1e-10)

def test_matches_distributed_data_parallel(two_ranks):
    _, ours, ddp, _ = two_ranks
    # DDP averages the two equal halves' gradients; fit weights them by their shares (1/2 each): the same sums
    for k in ddp: torch.testing.assert_close(ours[k], ddp[k], rtol=0, atol=1e-12)

def test_killed_rank_leaves_a_checkpoint_that_resumes(tmp_path, two_ranks):
    ck = tmp_path/'ck'
    r = launch('--out', str(tmp_path/'killed'), '--epochs', '3', '--checkpoint', str(ck), '--kill', '1', '1', check=False)
    assert r.returncode != 0 and not (tmp_path/'killed').exists()
    assert latest_checkpoint(ck) == 'ckpt-0001'  # rank 1 was killed in epoch 2, after rank 0 had written epoch 1's checkpoint
    states, meta = load_checkpoint(ck)
    assert meta['epoch'] == 0 and len(meta['history']) == 1
    launch('--out', str(tmp_path/'resumed'), '--epochs', '3', '--checkpoint', str(ck), '--resume')
    resumed, uninterrupted = load_file(tmp_path/'resumed'/'fit.safetensors'), two_ranks[1]
    for k in uninterrupted: assert torch.equal(resumed[k], uninterrupted[k]), k
