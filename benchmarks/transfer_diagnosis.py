"""Why transfer by paired auto-encoders lowers the network's accuracy in the CPU run of Tibo et al.'s Section 4.

    python benchmarks/transfer_diagnosis.py [--test-size 1000] [--out benchmarks/results]

The committed CPU run (`tibo_transfer_fmnist.json`) transfers with a narrow auto-encoder (width 0.25) trained for 800 steps
and scores a network trained for 300 steps; N_c hardly matters there. This script separates the three suspects on the
clean test images and on five Fashion-MNIST-C corruptions, each image passed through T(x) = D1(E(x)) of a clean
auto-encoder (the warm start every pair of that run begins from):
- the auto-encoder's capacity and training: width 0.25 or 1 (Appendix B's pair), 800 or 4,000 steps;
- what the reconstruction does: the mean squared error of T(x) against the clean image (for a corrupted x: how much it restores), and each classifier's accuracy on T(x);
- the classifier's training: the CPU run's network (2 epochs cut to 150 steps) against one trained 5 full epochs.
Writes transfer_diagnosis.json into --out (one thread; about 20 minutes on this project's CPU)."""
import argparse, json, time
from pathlib import Path

import torch

from robust_nb.core import derive_seed, environment_info
from robust_nb.data import load_dataset
from robust_nb.methods.transfer import fit_paired_autoencoder, mnistc_corrupt, train_nn, transfer

CORRUPTIONS = ('mnistc_shot_noise', 'mnistc_glass_blur', 'mnistc_fog', 'mnistc_stripe', 'mnistc_rotate')
AUTOENCODERS = {'w0.25_800': (0.25, 800), 'w0.25_4000': (0.25, 4000), 'w1_800': (1.0, 800), 'w1_4000': (1.0, 4000)}
NETWORKS = {'cpu_run': dict(epochs=2, max_steps_per_epoch=150, val_limit=1000), 'five_epochs': dict(epochs=5, val_limit=1000)}


def timed(make):
    "(what `make()` returns, its seconds)."
    t0 = time.perf_counter()
    return make(), time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--test-size', type=int, default=1000)
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    a = p.parse_args()
    torch.set_num_threads(1)
    train, test = load_dataset('fashion_mnist', 'train'), load_dataset('fashion_mnist', 'test').take(a.test_size, seed=0)
    xt, yt = test.tensors()
    sets = {'clean': xt, **{c: mnistc_corrupt(xt, c, seed=derive_seed(0, 1)) for c in CORRUPTIONS}}
    nets, seconds = {}, {}
    for name, kw in NETWORKS.items():
        nets[name], seconds[name] = timed(lambda: train_nn(train, batch_size=32, lr=1e-3, seed=0, **kw))
        print(f"network {name}: clean accuracy {nets[name].accuracy(xt, yt):.4f} ({seconds[name]:.0f} s)", flush=True)
    x_train = train.tensors()[0]
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
    res = dict(what=__doc__.split('\n\n')[1].strip(), test_size=len(xt), corruptions=list(CORRUPTIONS), networks=NETWORKS,
               autoencoders={k: dict(width=w, steps=s) for k, (w, s) in AUTOENCODERS.items()}, seconds=seconds, rows=rows,
               machine=environment_info('cpu'), seed=0)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out)/'transfer_diagnosis.json').write_text(json.dumps(res, indent=1))
    print(f"wrote {Path(a.out)/'transfer_diagnosis.json'}")


if __name__ == '__main__': main()
