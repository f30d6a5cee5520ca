"""One timed `fit` of the zoo's LeNet on Fashion-MNIST, run plainly or under torchrun by benchmarks/scale.py.

Rank 0 appends one JSON line to --out: ranks, threads per rank, images, seconds of the timed epoch, images per second."""
import argparse, json, time

import torch

from robust_nb.data import load_dataset
from robust_nb.models import LeNet
from robust_nb.train import fit, leave_distributed, world

p = argparse.ArgumentParser()
p.add_argument('--out', required=True)
p.add_argument('--images', type=int, default=12800)
p.add_argument('--batch-size', type=int, default=128)
p.add_argument('--seed', type=int, default=0)
a = p.parse_args()
train = load_dataset('fashion_mnist', 'train').take(a.images, seed=a.seed)
torch.manual_seed(a.seed)
model = LeNet()
fit(model, train.take(4 * a.batch_size, seed=a.seed), epochs=1, batch_size=a.batch_size, device='cpu', progress=False, seed=a.seed)  # warm-up
t = time.perf_counter()
fit(model, train, epochs=1, batch_size=a.batch_size, device='cpu', progress=False, seed=a.seed)
seconds = time.perf_counter() - t
rank, ranks = world()
if rank == 0:
    with open(a.out, 'a') as f:
        f.write(json.dumps(dict(ranks=ranks, threads_per_rank=torch.get_num_threads(), images=a.images, batch_size=a.batch_size,
                                seconds=seconds, images_per_second=a.images / seconds)) + '\n')
leave_distributed()
