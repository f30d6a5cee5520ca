"""Attack speed: robust_nb's pgd against torchattacks' PGD / PGDL2 with the same settings, and the throughput of
minimal_perturbation with its default ensemble (FGSM, PGD, BG), in one process on Fashion-MNIST.

    python benchmarks/attacks.py [--n 512] [--batch 256] [--repeats 7] [--device cpu] [--out benchmarks/results]

Each timing is repeated, ours and torchattacks' interleaved (ours, theirs, ours, theirs, ...) after one warm-up
call each, and the median is reported. The model is robust_nb's LeNet trained for `--train-steps` steps.
Writes attacks.json (attacks_<device>.json for a non-CPU device, e.g. attacks_cuda.json) into `--out`, by default
benchmarks/results/.
"""
from __future__ import annotations
import argparse, json, statistics, time
from pathlib import Path

import torch
import torchattacks

from robust_nb.core import environment_info, get_device, seed_everything
from robust_nb.data import load_dataset
from robust_nb.eval.attacks import pgd
from robust_nb.eval.measures import minimal_perturbation
from robust_nb.models import create_model
from robust_nb.train import fit

OUT = Path(__file__).parent / 'results'


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device); t0 = time.perf_counter(); fn(); sync(device)
    return time.perf_counter() - t0


def run_batches(attack, x, y, batch):
    for i in range(0, len(x), batch): attack(x[i:i + batch], y[i:i + batch])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=512, help='images attacked per timing')
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--mp-n', type=int, default=256, help='images for minimal_perturbation')
    ap.add_argument('--mp-repeats', type=int, default=3)
    ap.add_argument('--train-steps', type=int, default=200)
    ap.add_argument('--device', default=None)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=str(OUT), help='folder for the result JSON (default benchmarks/results)')
    args = ap.parse_args()
    device = get_device(args.device)
    seed_everything(args.seed)

    model = create_model('lenet', in_channels=1, num_classes=10)
    fit(model, load_dataset('fashion_mnist', 'train'), epochs=1, batch_size=128, lr=1e-3, seed=args.seed,
        progress=False, max_steps_per_epoch=args.train_steps, device=device)
    model = model.to(device).eval()
    x, y = load_dataset('fashion_mnist', 'test').take(args.n, seed=args.seed)[:]
    x, y = x.to(device), y.to(device)
    with torch.no_grad(): clean = (model(x).argmax(1) == y).float().mean().item()

    settings = {'linf': dict(eps=0.1, steps=10), 'l2': dict(eps=1.0, steps=10)}
    raw, ratios, acc = {}, {}, {}
    for norm, s in settings.items():
        alpha = 4 / 3 * s['eps'] / s['steps']
        cls = torchattacks.PGD if norm == 'linf' else torchattacks.PGDL2
        ta = cls(model, eps=s['eps'], alpha=alpha, steps=s['steps'], random_start=False)
        ours = lambda xb, yb: pgd(model, xb, yb, s['eps'], s['steps'], norm=norm, step_size=alpha)
        run_batches(ours, x, y, args.batch); run_batches(ta, x, y, args.batch)   # warm-up
        t_ours, t_ta = [], []
        for _ in range(args.repeats):
            t_ours.append(timed(lambda: run_batches(ours, x, y, args.batch), device))
            t_ta.append(timed(lambda: run_batches(ta, x, y, args.batch), device))
        raw[f'pgd_{norm}'] = dict(settings=dict(s, step_size=alpha, random_start=False, batch=args.batch, n=args.n),
                                  robust_nb_seconds=t_ours, torchattacks_seconds=t_ta)
        ratios[norm] = statistics.median(t_ours) / statistics.median(t_ta)
        xa_ours, xa_ta = pgd(model, x, y, s['eps'], s['steps'], norm=norm), ta(x, y)   # torchattacks needs grad mode
        with torch.no_grad():
            acc[norm] = dict(robust_nb=(model(xa_ours).argmax(1) == y).float().mean().item(),
                             torchattacks=(model(xa_ta).argmax(1) == y).float().mean().item())
        print(f'pgd {norm}: robust_nb {statistics.median(t_ours):.3f}s  torchattacks {statistics.median(t_ta):.3f}s  ratio {ratios[norm]:.3f}')

    xm = x[:args.mp_n]
    minimal_perturbation(model, xm[:16])   # warm-up
    t_mp, res = [], None
    for _ in range(args.mp_repeats):
        t0 = time.perf_counter(); res = minimal_perturbation(model, xm); sync(device); t_mp.append(time.perf_counter() - t0)
    mp_rate = len(xm) / statistics.median(t_mp)
    print(f'minimal_perturbation (fgsm, pgd, bg): {mp_rate:.1f} images/s; closest by attack {res.share()}')

    out = dict(
        summary=dict(pgd_time_over_torchattacks=max(ratios.values()),
                     pgd_time_over_torchattacks_by_norm=ratios,
                     pgd_target=1.05,
                     minimal_perturbation_images_per_s=mp_rate,
                     minimal_perturbation_attacks=res.names,
                     minimal_perturbation_closest_share=res.share(),
                     minimal_perturbation_median_l2=res.distance.median().item(),
                     clean_accuracy=clean, pgd_robust_accuracy=acc),
        raw=dict(**raw, minimal_perturbation=dict(n=len(xm), seconds=t_mp)),
        config=vars(args), seeds=dict(seed=args.seed, data_take_seed=args.seed, train_seed=args.seed),
        model='lenet (robust_nb.models, 20/50 channels, embed 500), trained with robust_nb.train.fit',
        method='median over repeats; robust_nb and torchattacks calls interleaved in one process after one warm-up each',
        machine=environment_info(device))
    out_dir = Path(args.out); out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ('attacks.json' if device.type == 'cpu' else f'attacks_{device.type}.json')
    path.write_text(json.dumps(out, indent=1))
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
