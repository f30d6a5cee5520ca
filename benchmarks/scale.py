"""Cost of the ways robust_nb scales past one process.

`ray_overhead`: what Ray adds per task. The same units of a small FCL Table 1 recipe (method x seed, as
`robust-nb reproduce fcl --ray` splits it) run twice: in a plain loop in this process, and as Ray tasks on a local Ray
with `--cpus` CPUs, each task declaring one CPU (with one CPU the tasks run one at a time, so the two ways do the same
work in the same order and the difference is Ray's: starting workers that import torch and robust_nb, shipping the
function and the records, scheduling). Ray runs the units twice: `cold` (fresh workers) and `warm` (the same workers
again), and the loop runs once before each Ray pass, so that a change of the machine's load between passes shows. Reported as
seconds per unit both ways, their difference and ratio, and, less open to such load, Ray's own share: the wall-clock of a
pass less the seconds the units report for their own runs, per unit (the same for the loop); and the time `ray.init` takes.

`torchrun_throughput`: what data-parallel `fit` gains here. One epoch of the zoo's LeNet on Fashion-MNIST (global batch
128) timed in one process with every torch thread, and under `torchrun --nproc-per-node 2` (gloo) with one thread per rank,
alternated `--rounds` times in fresh processes (benchmarks/_torchrun_fit.py); images per second, medians and their ratio.

    python benchmarks/scale.py [--units 20] [--cpus 1] [--train-size 256] [--images 12800] [--rounds 3] [--out benchmarks/results]

Writes scale.json into `--out` (a folder, by default benchmarks/results/)."""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from dataclasses import replace
from pathlib import Path

import torch

from robust_nb.core import environment_info
from robust_nb.experiments import fcl
from robust_nb.experiments.common import ray_module, run_unit

OUT = Path(__file__).parent/'results'


def fcl_units(n: int, train_size: int) -> tuple:
    "(the whole recipe, its first `n` unit recipes): FCL with xe and fcl, one epoch on `train_size` corner-task images."
    recipe = fcl.FCLRecipe.quick(seeds=(n + 1) // 2, train_size=train_size, eval_size=100, epochs=1, start_epoch=0.5, warmup_epochs=0.5,
                                 k=64, dataset='fashion_mnist', device='cpu')
    return recipe, [replace(recipe, **u) for u in fcl.units(recipe)][:n]


def loop_seconds(recipe, units: list) -> dict:
    "The units in a plain loop in this process with one torch thread: the wall-clock, and the seconds each unit reports for its run."
    threads, inside = torch.get_num_threads(), []
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try: inside = [run_unit(fcl.reproduction.run, fcl.reproduction.keep, recipe, u, 1)[0]['seconds'] for u in units]
    finally: torch.set_num_threads(threads)
    return dict(wall_seconds=time.perf_counter() - t0, unit_seconds=inside)


def ray_seconds(ray, recipe, units: list) -> dict:
    "The units as Ray tasks of one CPU each: the wall-clock from the first submission to the last result, when each arrived, and the seconds each unit reports for its run."
    task = ray.remote(run_unit).options(num_cpus=1, num_gpus=0, max_retries=1, retry_exceptions=True)
    run, keep = ray.put(fcl.reproduction.run), ray.put(fcl.reproduction.keep)
    t0 = time.perf_counter()
    pending, arrived, inside = [task.remote(run, keep, recipe, u, 1) for u in units], [], []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        inside.append(ray.get(done[0])[0]['seconds'])
        arrived.append(time.perf_counter() - t0)
    return dict(wall_seconds=arrived[-1], arrived=arrived, unit_seconds=inside)


def ray_overhead(n_units: int = 20, cpus: int = 1, train_size: int = 256) -> dict:
    "Seconds per unit of the same FCL units in a plain loop and as Ray tasks (cold and warm workers); difference, ratio and `ray.init`'s time."
    ray = ray_module()
    recipe, units = fcl_units(n_units, train_size)
    loop_seconds(recipe, units[:1])  # the data set read and the code paths warmed before timing
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    init, raw = time.perf_counter() - t, {}
    try:
        for name in ('cold', 'warm'): raw[f'loop_before_{name}'], raw[f'ray_{name}'] = loop_seconds(recipe, units), ray_seconds(ray, recipe, units)
    finally: ray.shutdown()
    n, summary = len(units), dict(ray_init_seconds=init)
    own = lambda r: (r['wall_seconds'] - sum(r['unit_seconds'])) / n  # per unit, what is not the units' own runs
    for name in ('cold', 'warm'):
        loop, par = raw[f'loop_before_{name}'], raw[f'ray_{name}']
        summary |= {f'{name}_loop_seconds_per_unit': loop['wall_seconds'] / n, f'{name}_ray_seconds_per_unit': par['wall_seconds'] / n,
                    f'{name}_ray_minus_loop_seconds_per_unit': (par['wall_seconds'] - loop['wall_seconds']) / n,
                    f'{name}_ray_ratio_to_loop': par['wall_seconds'] / loop['wall_seconds'],
                    f'{name}_loop_own_seconds_per_unit': own(loop), f'{name}_ray_own_seconds_per_unit': own(par)}
    return dict(what='seconds per unit of FCL Table 1 units (one method and seed each: corner task, one epoch, evaluation) in a plain loop '
                     'and as Ray tasks of one CPU each on a local Ray; cold: fresh workers, warm: the same workers again',
                settings=dict(units=len(units), cpus=cpus, train_size=train_size, eval_size=recipe.eval_size, epochs=recipe.epochs,
                              methods=list(recipe.methods), seeds=list(range(recipe.first_seed, recipe.first_seed + recipe.seeds)),
                              ray=ray.__version__),
                raw=raw,
                summary=summary)


def torchrun_throughput(images: int = 12800, rounds: int = 3, seed: int = 0) -> dict:
    "Training throughput of one epoch of the LeNet: one process with every thread against torchrun's 2 gloo processes with one thread each, alternated `rounds` times."
    job, threads = Path(__file__).with_name('_torchrun_fit.py'), torch.get_num_threads()
    runs = {'1 process': ([sys.executable, str(job)], threads), '2 ranks (torchrun, gloo)': ([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node=2', str(job)], max(1, threads // 2))}
    rows = {k: [] for k in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for j, (k, (cmd, t)) in enumerate(runs.items()):
                out = Path(tmp)/f'{r}-{j}.jsonl'
                proc = subprocess.run([*cmd, '--out', str(out), '--images', str(images), '--seed', str(seed)], capture_output=True, text=True,
                                   env={**os.environ, 'OMP_NUM_THREADS': str(t)})
                if proc.returncode: raise RuntimeError(f"{k} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
                rows[k].append(json.loads(out.read_text()))
    med = {k: statistics.median(r['images_per_second'] for r in v) for k, v in rows.items()}
    one, two = med.values()
    return dict(images=images, rounds=rounds, seed=seed, runs=rows, median_images_per_second=med, speedup_2_ranks=two / one,
                note="this machine has 2 cores: 2 ranks get one thread each where the single process has both, so the gain is only what one "
                     "thread per process saves in threading overhead minus what the gradient all-reduce costs per step")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--units', type=int, default=20, help='units timed both ways (default 20)')
    ap.add_argument('--cpus', type=int, default=1, help="CPUs of the local Ray (default 1: one task at a time, as the loop)")
    ap.add_argument('--train-size', type=int, default=256, help='corner-task training images per unit (default 256)')
    ap.add_argument('--images', type=int, default=12800, help='training images in the timed epoch of each torchrun comparison run (default 12800)')
    ap.add_argument('--rounds', type=int, default=3, help='runs of each torchrun configuration, alternated (default 3)')
    ap.add_argument('--only', choices=['ray', 'torchrun'], default=None, help='run one of the two measurements (the other keeps its last result in scale.json)')
    ap.add_argument('--out', default=str(OUT), help='folder for scale.json (default benchmarks/results)')
    args = ap.parse_args()
    result = {'benchmark': 'scale', 'machine': environment_info('cpu')}
    out = Path(args.out)
    old = json.loads((out/'scale.json').read_text()) if (out/'scale.json').exists() else {}
    if args.only in (None, 'ray'):
        result['ray_overhead'] = ray_overhead(args.units, args.cpus, args.train_size)
        print(json.dumps(result['ray_overhead']['summary'], indent=1))
    if args.only in (None, 'torchrun'):
        result['torchrun_throughput'] = torchrun_throughput(args.images, args.rounds)
        print(json.dumps(result['torchrun_throughput']['median_images_per_second'], indent=1))
    result = {**{k: v for k, v in old.items() if k in ('ray_overhead', 'torchrun_throughput')}, **result}  # a part not rerun keeps its last result
    out.mkdir(parents=True, exist_ok=True)
    (out/'scale.json').write_text(json.dumps(result, indent=1))
    print(f"wrote {out/'scale.json'}")


if __name__ == '__main__':
    main()
