"""Why transfer by paired auto-encoders lowers the network's accuracy in the CPU run of Tibo et al.'s Section 4.

    python benchmarks/transfer_diagnosis.py [--pairs] [--test-size 1000] [--out benchmarks/results]

The committed CPU run (`tibo_transfer_fmnist.json`) transfers with a narrow auto-encoder (width 0.25) trained for 800 steps
and scores a network trained for 300 steps; N_c hardly matters there. This script separates the three suspects on the
clean test images and on five Fashion-MNIST-C corruptions, each image passed through T(x) = D1(E(x)) of a clean
auto-encoder (the warm start every pair of that run begins from):
- the auto-encoder's capacity and training: width 0.25 or 1 (Appendix B's pair), 800 or 4,000 steps;
- what the reconstruction does: the mean squared error of T(x) against the clean image (for a corrupted x: how much it restores), and each classifier's accuracy on T(x);
- the classifier's training: the CPU run's network (2 epochs cut to 150 steps) against one trained 5 full epochs.
Writes transfer_diagnosis.json into --out (one thread; about 20 minutes on this project's CPU).

With --pairs it trains the pairs themselves, to see whether paired training moves the transfer beyond what the clean
auto-encoder does. From one clean auto-encoder of Appendix B's width trained 4,000 steps (the warm start), it trains a
TRANSFER-SEPARATE pair for three corruptions (fog and stripe, where the clean T fails worst, and shot noise, where it
already denoises) at N_c = 128 and 1,024 corrupted training images, and after every 500 steps scores the five-epoch
network on T(corrupted test images) and on T(clean test images). Each block of 500 steps is a call of
`fit_paired_autoencoder` continuing the pair (a fresh Adam state and batch order per block). Writes
transfer_pairs.json into --out (one thread; about 40 minutes)."""
import argparse, copy, json, time
from pathlib import Path

import torch

from robust_nb.core import derive_seed, environment_info
from robust_nb.data import load_dataset
from robust_nb.methods.transfer import fit_paired_autoencoder, mnistc_corrupt, train_nn, transfer, transfer_data, transfer_split

CORRUPTIONS = ('mnistc_shot_noise', 'mnistc_glass_blur', 'mnistc_fog', 'mnistc_stripe', 'mnistc_rotate')
AUTOENCODERS = {'w0.25_800': (0.25, 800), 'w0.25_4000': (0.25, 4000), 'w1_800': (1.0, 800), 'w1_4000': (1.0, 4000)}
NETWORKS = {'cpu_run': dict(epochs=2, max_steps_per_epoch=150, val_limit=1000), 'five_epochs': dict(epochs=5, val_limit=1000)}
PAIRED, N_CS = ('mnistc_fog', 'mnistc_stripe', 'mnistc_shot_noise'), (128, 1024)
PRETRAIN, BLOCK, BLOCKS = 4000, 500, 4


def timed(make):
    "(what `make()` returns, its seconds)."
    t0 = time.perf_counter()
    return make(), time.perf_counter() - t0


def clean_autoencoders(train, sets, yt):
    "Rows of the clean auto-encoders' study, and the seconds of each model trained."
    nets, seconds = {}, {}
    for name, kw in NETWORKS.items():
        nets[name], seconds[name] = timed(lambda: train_nn(train, batch_size=32, lr=1e-3, seed=0, **kw))
        print(f"network {name}: clean accuracy {nets[name].accuracy(sets['clean'], yt):.4f} ({seconds[name]:.0f} s)", flush=True)
    x_train, xt = train.tensors()[0], sets['clean']
    rows = [dict(autoencoder='none', width=None, steps=0, set=s, mse=float((x - xt).pow(2).mean()), **{f'acc_{n}': net.accuracy(x, yt) for n, net in nets.items()})
            for s, x in sets.items()]
    for name, (width, steps) in AUTOENCODERS.items():
        ae, seconds[name] = timed(lambda: fit_paired_autoencoder(x_train, None, steps=steps, width=width, batch_size=32, lr=1e-3, seed=0))
        for s, x in sets.items():
            tx = transfer(ae, x)
            rows.append(dict(autoencoder=name, width=width, steps=steps, set=s, mse=float((tx - xt).pow(2).mean()),
                             **{f'acc_{n}': net.accuracy(tx, yt) for n, net in nets.items()}))
        clean = rows[-len(sets)]
        print(f"auto-encoder {name}: clean MSE {clean['mse']:.4f}, " + ', '.join(f"{n} on T(clean) {clean[f'acc_{n}']:.4f}" for n in nets)
              + f" ({seconds[name]:.0f} s)", flush=True)
    return rows, dict(networks=NETWORKS, autoencoders={k: dict(width=w, steps=s) for k, (w, s) in AUTOENCODERS.items()}, seconds=seconds)


def _score(rows, net, ae, sets, yt, names, **row):
    "Append a row per test set in `names`: the network's accuracy on T(x) and T(x)'s squared error against the clean image."
    for s in names:
        tx = transfer(ae, sets[s]) if ae is not None else sets[s]
        rows.append(dict(row, set=s, mse=float((tx - sets['clean']).pow(2).mean()), accuracy=net.accuracy(tx, yt)))


def pairs(train, sets, yt, t_start):
    "Rows of the paired-training study: each pair's transfer after every block of steps."
    net = train_nn(train, epochs=5, batch_size=32, lr=1e-3, val_limit=1000, seed=0)
    rows = []
    _score(rows, net, None, sets, yt, sets, n_c=None, steps=0, transfer='none')
    data = {n: transfer_data(train, transfer_split(len(train), n, PAIRED, seed=0), seed=0) for n in N_CS}
    base = fit_paired_autoencoder(data[max(N_CS)][0], None, steps=PRETRAIN, width=1.0, batch_size=32, lr=1e-3, seed=1)
    _score(rows, net, base, sets, yt, sets, n_c=0, steps=PRETRAIN, transfer='clean auto-encoder')
    print('raw, then clean auto-encoder: ' + ', '.join(f"{r['set']} {r['accuracy']:.4f}" for r in rows), flush=True)
    for n_c in N_CS:
        clean, corrupted = data[n_c]
        for i, c in enumerate(PAIRED):
            pair = copy.deepcopy(base)  # the warm start of `fit_transfer`: the clean pair, D2 a copy of D1
            pair.decoder_corrupt.load_state_dict(pair.decoder_clean.state_dict())
            for b in range(BLOCKS):
                pair = fit_paired_autoencoder(clean, corrupted[c], steps=BLOCK, balance=True, model=pair, seed=derive_seed(3, n_c, i, b))
                _score(rows, net, pair, sets, yt, ('clean', c), n_c=n_c, steps=(b + 1)*BLOCK, transfer=f'pair for {c}')
                print(f"N_c {n_c} {c} after {(b + 1)*BLOCK} steps: T(clean) {rows[-2]['accuracy']:.4f}, T(corrupted) {rows[-1]['accuracy']:.4f}"
                      f" ({time.perf_counter() - t_start:.0f} s)", flush=True)
    return rows, dict(paired=list(PAIRED), n_cs=list(N_CS), pretrain_steps=PRETRAIN, block_steps=BLOCK, blocks=BLOCKS,
                      network=dict(epochs=5, val_limit=1000))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--pairs', action='store_true', help='train the pairs themselves (transfer_pairs.json)')
    p.add_argument('--test-size', type=int, default=1000)
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    a = p.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    train, test = load_dataset('fashion_mnist', 'train'), load_dataset('fashion_mnist', 'test').take(a.test_size, seed=0)
    xt, yt = test.tensors()
    sets = {'clean': xt, **{c: mnistc_corrupt(xt, c, seed=derive_seed(0, 1)) for c in CORRUPTIONS}}
    rows, setting = (pairs(train, sets, yt, t_start) if a.pairs else clean_autoencoders(train, sets, yt))
    what = __doc__.split('\n\n')[3 if a.pairs else 2].strip()
    res = dict(what=what, test_size=len(xt), corruptions=list(CORRUPTIONS), **setting, rows=rows,
               wall_seconds=time.perf_counter() - t_start, machine=environment_info('cpu'), seed=0)
    path = Path(a.out)/('transfer_pairs.json' if a.pairs else 'transfer_diagnosis.json')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f'wrote {path}')


if __name__ == '__main__': main()
