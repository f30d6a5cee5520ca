"A `fit` run for tests/test_distributed.py, started by torchrun (or plainly, as one process)."
import argparse, os, signal
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F
from safetensors.torch import save_file

from robust_nb.core import derive_seed, make_generator
from robust_nb.data import load_dataset
from robust_nb.train import CrossEntropy, OPTIMIZERS, fit, leave_distributed, world

class Float64(nn.Module):
    "Casts images to float64, so that runs differing only in the order of summation agree to about 1e-15."
    def forward(self, x): return x.double()

def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), Float64(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).double()

def data(): return load_dataset('fashion_mnist', 'train').take(600, seed=0)

BATCH, LR = 64, 1e-3

def killer(rank: int, epoch: int):
    "Cross-entropy that SIGKILLs its own process on `rank` at the first step of `epoch`."
    xe = CrossEntropy()
    def objective(m, batch, state):
        if world()[0] == rank and state.epoch == epoch: os.kill(os.getpid(), signal.SIGKILL)
        return xe(m, batch, state)
    return objective

def ddp_peer(epochs: int) -> nn.Module:
    "The same training written with torch's DistributedDataParallel: same shards, order, optimiser and initial weights."
    rank, ranks = world()
    net = model()
    ddp = nn.parallel.DistributedDataParallel(net)
    opt = OPTIMIZERS['adam'](ddp.parameters(), LR, 0.0, 0.9, True)
    train = data()
    for epoch in range(epochs):
        order = make_generator(derive_seed(0, epoch, 1))
        for x, y in train.batches(BATCH, shuffle=True, generator=order, drop_last=True, shard=(rank, ranks)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(x), y).backward()
            opt.step()
    return net

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--out', required=True)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--checkpoint', default=None)
    p.add_argument('--resume', action='store_true')
    p.add_argument('--kill', type=int, nargs=2, default=None, metavar=('RANK', 'EPOCH'))
    p.add_argument('--ddp-peer', action='store_true')
    a = p.parse_args()
    net = model()
    fit(net, data(), epochs=a.epochs, batch_size=BATCH, lr=LR, seed=0, device='cpu', progress=False,
        checkpoint_dir=a.checkpoint, resume=a.resume, objective=killer(*a.kill) if a.kill else None)
    peer = ddp_peer(a.epochs) if a.ddp_peer else None
    if world()[0] == 0:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        save_file(net.state_dict(), f'{a.out}/fit.safetensors')
        if peer is not None: save_file(peer.state_dict(), f'{a.out}/ddp.safetensors')
        (Path(a.out)/'ranks').write_text(str(world()[1]))
    leave_distributed()

if __name__ == '__main__': main()
