"""Corruption benchmark: robust_nb's batched corruptions against imagecorruptions, and a Fashion-MNIST sweep.

    python benchmarks/corruptions.py                # speed: 10,000 32x32 images x 15 corruptions x 5 severities
    python benchmarks/corruptions.py --sweep        # also train a small Fashion-MNIST model and sweep mnist_c + mtlat19

    python benchmarks/corruptions.py --device cuda  # the same on a GPU: writes corruptions_cuda.json

Writes corruptions.json (and corruption_sweep_fmnist.json with --sweep) into `--out`, by default benchmarks/results/;
on a non-CPU device the files are named corruptions_<device>.json and corruption_sweep_fmnist_<device>.json.
`--names` times a subset of the 15 corruptions; `--ic-sample 0` (or an imagecorruptions that does not import) times
ours alone and records why the comparison is missing.
imagecorruptions is timed in the same process on `--ic-sample` images per (corruption, severity) and scaled to `--n`,
interleaved with ours per (corruption, severity) so that load from elsewhere on the machine falls on both sides alike.
The headline `speedup_vs_imagecorruptions` runs ours with the CIFAR-10-C table (what 32x32 images get by default) while
imagecorruptions always uses the ImageNet-C numbers; `speedup_vs_imagecorruptions_same_table` runs ours with the
ImageNet-C table too, the like-for-like comparison of the same parameters.
PyPI imagecorruptions 1.1.2 cannot run glass_blur (scikit-image dropped `multichannel`) and fog (NumPy 2 dropped
`np.float_`); the benchmark times those two through a small compatibility shim and reports the speed-up with and
without them.
"""
from __future__ import annotations
import argparse, json, resource, sys, time, warnings
from pathlib import Path

import numpy as np
import torch

from robust_nb.core import environment_info, get_device
from robust_nb.eval.corruptions import SUITES, corrupt, synthetic_images, corruption_seed

RESULTS = Path(__file__).parent / 'results'


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_ours_one(x_u8: torch.Tensor, name: str, s: int, chunk: int, device, seed: int, table: str) -> float:
    "Seconds to corrupt all of `x_u8` with (`name`, `s`) in chunks of `chunk` images."
    g = torch.Generator().manual_seed(corruption_seed(seed, name, s))
    if device.type == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, len(x_u8), chunk):
        xb = x_u8[i:i + chunk].to(device).float().div_(255)
        y = corrupt(xb, name, s, g, table=table)
        del y
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t0


def shim_imagecorruptions():
    "Make imagecorruptions 1.1.2 run on NumPy 2 / scikit-image >= 0.19 (for timing only)."
    import imagecorruptions.corruptions as icc
    if not hasattr(np, 'float_'): np.float_ = np.float64
    orig = icc.gaussian
    def gaussian(image, sigma=1, multichannel=None, **kw):
        if multichannel: kw['channel_axis'] = -1
        return orig(image, sigma=sigma, **kw)
    icc.gaussian = gaussian


def imagecorruptions_runner(u8: np.ndarray, names):
    "A function timing imagecorruptions per image on `u8` for one (corruption, severity), and the corruptions it could not run unpatched."
    from imagecorruptions import corrupt as ic_corrupt
    failed = {}
    for name in names:  # which ones fail on this stack without help
        try: ic_corrupt(u8[0], corruption_name=name, severity=1)
        except Exception as e: failed[name] = f"{type(e).__name__}: {str(e)[:150]}"
    if failed: shim_imagecorruptions()
    for name in names: ic_corrupt(u8[0], corruption_name=name, severity=1)  # warm-up: every corruption once
    def run(name, s):
        np.random.seed(s)
        t0 = time.perf_counter()
        for im in u8: ic_corrupt(im, corruption_name=name, severity=s)
        return (time.perf_counter() - t0) / len(u8)
    return run, failed


def imagecorruptions_missing(ic_sample: int) -> str | None:
    "Why imagecorruptions is not compared here, or None when it is."
    if ic_sample <= 0: return '--ic-sample 0: imagecorruptions not timed'
    try: import imagecorruptions  # noqa: F401
    except Exception as e: return f'imagecorruptions does not import here: {type(e).__name__}: {str(e)[:150]}'
    return None


def speed(args) -> dict:
    torch.set_num_threads(args.threads) if args.threads else None
    device = get_device(args.device)
    names = list(args.names) if args.names else SUITES['imagenet_c']
    x = (synthetic_images(args.n, 32, seed=args.seed) * 255).round().to(torch.uint8)
    rss0 = peak_rss_mib()
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    for name in names:  # warm-up: every corruption once, both tables
        for table in ('cifar', 'imagenet'): corrupt(x[:8].to(device).float() / 255, name, 1, 0, table=table)
    missing = imagecorruptions_missing(args.ic_sample)
    u8 = x[:args.ic_sample].permute(0, 2, 3, 1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ic_run, failed = imagecorruptions_runner(u8, names) if missing is None else (None, {})
        # interleaved: each (corruption, severity) is timed for ours (both tables) and for imagecorruptions back to back,
        # so a change in the machine's load touches both sides alike
        ours, ours_same, theirs_per_image = {}, {}, {}
        for name in names:
            for s in range(1, 6):
                k = f'{name}/{s}'
                ours[k] = time_ours_one(x, name, s, args.chunk, device, args.seed, 'cifar')
                if not args.no_same_table: ours_same[k] = time_ours_one(x, name, s, args.chunk, device, args.seed, 'imagenet')
                if ic_run is not None: theirs_per_image[k] = ic_run(name, s)
    rss1 = peak_rss_mib()
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == 'cuda' else None
    theirs = {k: v * args.n for k, v in theirs_per_image.items()}
    per_corr = {}
    for name in names:
        o = sum(ours[f'{name}/{s}'] for s in range(1, 6))
        per_corr[name] = dict(ours_s=round(o, 3))
        if theirs:
            t = sum(theirs[f'{name}/{s}'] for s in range(1, 6))
            per_corr[name].update(imagecorruptions_s=round(t, 2), speedup=round(t / o, 1),
                                  imagecorruptions_unpatched_error=failed.get(name))
        if ours_same:
            o2 = sum(ours_same[f'{name}/{s}'] for s in range(1, 6))
            per_corr[name].update(ours_imagenet_table_s=round(o2, 3))
            if theirs: per_corr[name].update(speedup_same_table=round(t / o2, 1))
    tot_o, tot_t = sum(ours.values()), sum(theirs.values())
    runnable = [n for n in names if n not in failed]
    o_r = sum(per_corr[n]['ours_s'] for n in runnable); t_r = sum(per_corr[n].get('imagecorruptions_s', 0) for n in runnable)
    tot_same = sum(ours_same.values()) if ours_same else None
    ratio = lambda a, b: round(a / b, 1) if theirs and a is not None and b else None
    return dict(
        benchmark=f'{len(names)} ImageNet-C corruptions x 5 severities, CIFAR-10-C table for ours (imagecorruptions always uses ImageNet-C numbers)',
        settings=dict(n_images=args.n, image_size=32, channels=3, chunk=args.chunk, imagecorruptions_sample=args.ic_sample,
                      images='robust_nb.eval.corruptions.synthetic_images (seeded), uint8 -> float per chunk',
                      corruptions=names, seed=args.seed, threads=torch.get_num_threads(), device=str(device)),
        machine=environment_info(device),
        summary=dict(ours_total_s=round(tot_o, 2), imagecorruptions_total_s_scaled=round(tot_t, 1) if theirs else None,
                     speedup_vs_imagecorruptions=ratio(tot_t, tot_o),
                     speedup_vs_imagecorruptions_unpatched_only=ratio(t_r, o_r),
                     ours_total_s_imagenet_table=None if tot_same is None else round(tot_same, 2),
                     speedup_vs_imagecorruptions_same_table=ratio(tot_t, tot_same),
                     imagecorruptions_not_compared=missing,
                     timing='interleaved per (corruption, severity): ours (CIFAR-10-C table), ours (ImageNet-C table), '
                            'imagecorruptions; every corruption warmed up once on both sides first',
                     imagecorruptions_unpatched_failures=failed,
                     ours_images_per_s=round(args.n * len(names) * 5 / tot_o),
                     peak_rss_mib_before=round(rss0), peak_rss_mib_after_both=round(rss1),
                     peak_gpu_mib=None if gpu_peak is None else round(gpu_peak),
                     target_speedup=20, meets_target=bool(tot_t / tot_o >= 20) if theirs else None),
        per_corruption=per_corr,
        per_severity=dict(ours_s={k: round(v, 4) for k, v in ours.items()},
                          ours_imagenet_table_s={k: round(v, 4) for k, v in ours_same.items()},
                          imagecorruptions_s_scaled={k: round(v, 3) for k, v in theirs.items()}))


def sweep(args) -> dict:
    from robust_nb.data import load_dataset
    from robust_nb.models import create_model
    from robust_nb.train import fit
    from robust_nb.eval.benchmark import corruption_sweep, relative_robustness_per_corruption, group_averages, average_error
    device = get_device(args.device)
    train, test = load_dataset('fashion_mnist', 'train'), load_dataset('fashion_mnist', 'test')
    model = create_model('lenet', in_channels=1, num_classes=10).to(device)
    t0 = time.perf_counter()
    hist = fit(model, train, epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed, device=device, progress=False)
    train_s = time.perf_counter() - t0
    out = dict(settings=dict(model="create_model('lenet', in_channels=1, num_classes=10)", train='fashion_mnist train (60,000)',
                             epochs=args.epochs, batch_size=128, lr=1e-3, optimizer='adam', seed=args.seed,
                             eval_images=args.sweep_n, eval='fashion_mnist test, random subset (seed)', table='cifar (28x28 images)',
                             train_seconds=round(train_s, 1)),
               machine=environment_info(device), suites={})
    for suite in ('mnist_c', 'mtlat19'):
        t0 = time.perf_counter()
        sw = corruption_sweep(model, test, suite, n=args.sweep_n, batch_size=500, seed=args.seed)
        out['clean_accuracy'] = sw.attrs['clean_accuracy']
        out['suites'][suite] = dict(seconds=round(time.perf_counter() - t0, 1), mean_accuracy=round(float(sw.accuracy.mean()), 4),
                                    average_error=round(average_error(sw), 4),
                                    relative_robustness_per_corruption=relative_robustness_per_corruption(sw).round(4).to_dict(),
                                    rows=sw.round(4).to_dict(orient='records'))
        if suite == 'mtlat19':
            out['suites'][suite]['group_averages'] = group_averages(sw, ('noise', 'blur', 'weather', 'digital', 'mtlat')).round(4).to_dict()
    return out


def result_name(stem: str, device: str) -> str:
    "`stem.json` on the CPU, `stem_<device type>.json` elsewhere (e.g. corruptions_cuda.json)."
    kind = get_device(device).type
    return f'{stem}.json' if kind == 'cpu' else f'{stem}_{kind}.json'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=10_000, help='images corrupted by robust_nb')
    p.add_argument('--ic-sample', type=int, default=100, help='images per (corruption, severity) timed for imagecorruptions (0: none)')
    p.add_argument('--chunk', type=int, default=1000, help='images per call (bounds peak memory)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--names', type=lambda t: [v.strip() for v in t.split(',') if v.strip()], default=None,
                   help='comma-separated corruptions to time (default: the 15 of ImageNet-C)')
    p.add_argument('--no-same-table', action='store_true', help="skip timing ours with imagecorruptions' (ImageNet-C) table")
    p.add_argument('--sweep', action='store_true', help='also train a Fashion-MNIST model and sweep mnist_c and mtlat19')
    p.add_argument('--no-speed', action='store_true')
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--sweep-n', type=int, default=2000)
    p.add_argument('--out', default=str(RESULTS), help='folder for the result JSONs (default benchmarks/results)')
    args = p.parse_args(argv)
    if args.names:
        unknown = [n for n in args.names if n not in SUITES['imagenet_c']]
        if unknown: p.error(f"--names: {', '.join(unknown)} not among {', '.join(SUITES['imagenet_c'])}")
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    if not args.no_speed:
        res = speed(args)
        path = out / result_name('corruptions', args.device)
        path.write_text(json.dumps(res, indent=1))
        print(json.dumps(res['summary'], indent=1))
        print(f'wrote {path}')
    if args.sweep:
        res = sweep(args)
        path = out / result_name('corruption_sweep_fmnist', args.device)
        path.write_text(json.dumps(res, indent=1))
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk in ('mean_accuracy', 'average_error', 'group_averages')}
                          for k, v in res['suites'].items()}, indent=1), 'clean', res['clean_accuracy'])
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
