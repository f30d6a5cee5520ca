"""Training-step throughput of the LeNet on Fashion-MNIST: robust_nb's in-memory data path against a
torchvision `Dataset` + `DataLoader(ToTensor)` pipeline, side by side in one process.

    python benchmarks/train_throughput.py [--steps 150] [--rounds 3] [--device cpu] [--out benchmarks/results]

Writes train_throughput.json (train_throughput_<device>.json for a non-CPU device, e.g. train_throughput_cuda.json)
into `--out`, by default benchmarks/results/."""
import argparse, gzip, json, shutil, statistics, tempfile, time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from robust_nb.core import environment_info, get_device
from robust_nb.data import find_dataset, load_dataset
from robust_nb.models import LeNet
from robust_nb.train import fit

OUT = Path(__file__).parent/'results'


def torchvision_root(tmp: Path) -> Path:
    "torchvision's FashionMNIST reads unpacked IDX files from <root>/FashionMNIST/raw."
    raw = tmp/'FashionMNIST'/'raw'; raw.mkdir(parents=True)
    src = find_dataset('fashion_mnist', 'train')
    for f in src.glob('*-ubyte*'):
        with (gzip.open(f) if f.suffix == '.gz' else open(f, 'rb')) as i, open(raw/f.name.removesuffix('.gz'), 'wb') as o:
            shutil.copyfileobj(i, o)
    return tmp


def time_robust_nb(train, steps, batch_size, device, seed):
    torch.manual_seed(seed)
    model = LeNet()
    fit(model, train, epochs=1, batch_size=batch_size, device=device, progress=False, max_steps_per_epoch=5, seed=seed)  # warm-up
    t = time.perf_counter()
    fit(model, train, epochs=1, batch_size=batch_size, device=device, progress=False, max_steps_per_epoch=steps, seed=seed)
    if device.type == 'cuda': torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t)


def time_dataloader(ds, steps, batch_size, device, seed, workers):
    torch.manual_seed(seed)
    model = LeNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dl = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                    pin_memory=device.type == 'cuda', persistent_workers=False)
    def run(n):
        it = iter(dl)
        for _ in range(n):
            x, y = next(it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if device.type == 'cuda': torch.cuda.synchronize()
    run(5)
    t = time.perf_counter(); run(steps)
    return steps * batch_size / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--device', default=None)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--workers', type=lambda t: [int(v) for v in t.split(',')], default=[0, 2],
                    help='comma-separated DataLoader num_workers settings timed (default 0,2)')
    ap.add_argument('--out', default=str(OUT), help='folder for the result JSON (default benchmarks/results)')
    args = ap.parse_args()
    device = get_device(args.device)
    train = load_dataset('fashion_mnist', 'train')
    with tempfile.TemporaryDirectory() as tmp:
        ds = datasets.FashionMNIST(str(torchvision_root(Path(tmp))), train=True, transform=transforms.ToTensor())
        raw = {'robust_nb': [], **{f'dataloader_workers{w}': [] for w in args.workers}}
        for r in range(args.rounds):   # interleaved rounds, median taken
            raw['robust_nb'].append(time_robust_nb(train, args.steps, args.batch_size, device, args.seed + r))
            for w in args.workers:
                raw[f'dataloader_workers{w}'].append(time_dataloader(ds, args.steps, args.batch_size, device, args.seed + r, w))
            print({k: round(v[-1]) for k, v in raw.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in raw.items()}
    best_dl = max(med[f'dataloader_workers{w}'] for w in args.workers)
    result = {
        'benchmark': 'train_throughput',
        'what': 'images/s of LeNet training steps (forward, cross-entropy, backward, Adam) on Fashion-MNIST; robust_nb path = fit() over in-memory ImageData; '
                f"reference = torchvision FashionMNIST + DataLoader(ToTensor), best of num_workers {' and '.join(map(str, args.workers))}",
        'machine': environment_info(device),
        'settings': {'steps': args.steps, 'rounds': args.rounds, 'batch_size': args.batch_size, 'seeds': [args.seed + r for r in range(args.rounds)],
                     'device': str(device)},
        'raw_images_per_s': raw,
        'summary': {'speedup_vs_dataloader': med['robust_nb'] / best_dl,
                    'robust_nb_images_per_s': med['robust_nb'],
                    'dataloader_images_per_s': best_dl},
    }
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    name = 'train_throughput.json' if device.type == 'cpu' else f'train_throughput_{device.type}.json'
    (out/name).write_text(json.dumps(result, indent=1))
    print(json.dumps(result['summary'], indent=1))
    print(f'wrote {out/name}')


if __name__ == '__main__':
    main()
