"""The cost of the paper-scale recipes, measured where they can be measured and estimated where they cannot.

For each recipe (FCL Tables 2-3 on CIFAR-10 and CIFAR-100, CEB Figures 2-3 on CIFAR-10, M-TLAT on ImageNet-100) and each kind of
training step it runs, this script builds the real architecture at the real input size and, on a small batch of random images:

1. times one training step on the CPU (forward, backward into the optimiser's parameters as `fit` does, the optimiser step; one warm-up
   step, then the median of `--repeats` steps), with the torch threads this process has;
2. counts the floating-point operations of one such step with torch's FLOP formulas (`torch.utils.flop_counter.flop_registry`: matrix
   products and convolutions, forward and backward, two operations per multiply-add; element-wise work is not counted), and scales the count
   linearly to the paper's batch size;
3. estimates the GPU time of the whole protocol as (FLOPs per step at the paper's batch) x (steps of the protocol) / (a sustained
   throughput), for two stated throughputs of one H100: 100 TFLOP/s (about 10% of its 989 TFLOP/s dense bf16 peak, what eager PyTorch
   with bf16 autocast roughly sustains on ResNet-50-class networks) and 30 TFLOP/s (for narrow networks on 32 x 32 images, such as
   CIFAR's ResNet-56, whose kernels are too small to fill the GPU). These are assumptions, not measurements: no GPU was used.

Work done on the CPU during training is measured separately and added serially to the step where it runs in the training loop:
AutoAugment (CEB), which `AutoAugmentBatch` applies on the CPU, image by image; and the decoding of ImageNet files (M-TLAT), which runs
in DataLoader workers beside the GPU, so it only bounds the step from below (reported as images per second per worker). Evaluation
(attacks, corruptions) is not included.

    OMP_NUM_THREADS=1 python benchmarks/paper_scale_steps.py [--repeats 3] [--out benchmarks/results]

Writes paper_scale_steps.json into `--out`."""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from robust_nb.core import environment_info, make_generator, seed_everything
from robust_nb.data import AutoAugmentBatch, decode_image
from robust_nb.experiments import ceb, fcl, mtlat
from robust_nb.methods.augment import Mixup
from robust_nb.models import create_model
from robust_nb.train import TrainState, optimizer_backward

OUT = Path(__file__).parent/'results'
SUSTAINED = {'100_tflops': 100e12, '30_tflops': 30e12}
SEED = 0


class CountFlops(TorchDispatchMode):
    "FLOPs of the matrix products and convolutions run inside, by torch's own formulas (`flop_registry`, as `FlopCounterMode` counts them) but without its module hooks, which FCL's `torch.autograd.grad` does not allow."
    def __init__(self):
        super().__init__()
        self.total = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        count = flop_registry.get(func._overloadpacket)
        if count is not None: self.total += count(*args, **(kwargs or {}), out_val=out)
        return out


def step(model, objective, transform, batch, state, opt):
    "One training step as `fit` takes it."
    xb, yb = transform(*batch, state) if transform is not None else batch
    loss, _ = objective(model, (xb, yb), state)
    opt.zero_grad(set_to_none=True)
    optimizer_backward(loss, opt)
    opt.step()


def measure(model, objective, transform, shape, classes: int, batch: int, repeats: int, optimizer: str) -> dict:
    "CPU seconds per step (median of `repeats` after a warm-up) and FLOPs per step, on `batch` random images of `shape`."
    seed_everything(SEED)
    g = make_generator(SEED)
    data = (torch.rand(batch, *shape, generator=g), torch.randint(0, classes, (batch,), generator=g))
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, nesterov=True) if optimizer == 'sgd' else torch.optim.Adam(params, lr=1e-3)
    state = TrainState(generator=make_generator(SEED), epochs=1, steps_per_epoch=1)
    model.train()
    step(model, objective, transform, data, state, opt)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); step(model, objective, transform, data, state, opt); times.append(time.perf_counter() - t)
    with CountFlops() as counter: step(model, objective, transform, data, state, opt)
    return dict(batch=batch, cpu_seconds_per_step=statistics.median(times), cpu_seconds_raw=times, flops_per_step=counter.total)


def estimate(m: dict, paper_batch: int, steps: int) -> dict:
    "The GPU estimate of `steps` steps at `paper_batch` from the measured FLOPs (linear in the batch), at each assumed throughput."
    flops = m['flops_per_step'] * paper_batch / m['batch']
    return dict(paper_batch=paper_batch, flops_per_paper_step=flops, protocol_steps=steps,
                gpu_seconds_per_paper_step={k: flops / v for k, v in SUSTAINED.items()},
                gpu_hours={k: flops * steps / v / 3600 for k, v in SUSTAINED.items()})


def fcl_recipe(name: str, repeats: int) -> dict:
    "FCL on CIFAR: ResNet-56, XE steps for 450 epochs (XE) or 300 (FCL), FCL steps for the last 150; per seed and method."
    r = fcl.FCLRecipe.full(dataset=name)
    k = 10 if name == 'cifar10' else 100
    per_epoch = 50000 // r.batch_size  # fit drops the short last batch
    out = {}
    for method in ('xe', 'fcl'):
        objective, _ = fcl.FCL_METHODS[method](fcl.FCLRecipe.full(dataset=name, start_epoch=0))
        model = create_model(r.model_name(), 3, k, 32)
        out[method] = measure(model, objective, None, (3, 32, 32), k, 32, repeats, r.optimizer)
    xe, fc = out['xe'], out['fcl']
    xe_steps, fcl_steps = r.epochs * per_epoch, (r.epochs - int(r.start_epoch)) * per_epoch  # FCL's model: XE steps until start_epoch
    per_xe, per_fcl = (estimate(m, r.batch_size, 1)['flops_per_paper_step'] for m in (xe, fc))
    runs = r.seeds * (per_xe * (xe_steps + (xe_steps - fcl_steps)) + per_fcl * fcl_steps)
    steps = {'xe': xe_steps, 'fcl_phase': fcl_steps}
    return dict(recipe=f"FCLRecipe.full(dataset='{name}')", model=r.model_name(), input=[3, 32, 32], seeds=r.seeds, methods=['xe', 'fcl'],
                epochs=r.epochs, steps_per_epoch=per_epoch, steps={'xe': {**xe, **estimate(xe, r.batch_size, steps['xe'])},
                                                                   'fcl': {**fc, **estimate(fc, r.batch_size, steps['fcl_phase'])}},
                protocol=f"{r.seeds} seeds x (XE: {r.epochs} epochs of XE steps; FCL: {r.start_epoch} epochs of XE steps, then {r.epochs - r.start_epoch} of FCL steps)",
                total_flops=runs, gpu_hours={k2: runs / v / 3600 for k2, v in SUSTAINED.items()})


def ceb_recipe(repeats: int) -> dict:
    "CEB on CIFAR-10: WRN-28-10 without batch normalisation, 1500 epochs at batch 128, 25 CEB models and one deterministic; AutoAugment on the CPU."
    r = ceb.CEBRecipe.full(dataset='cifar10')
    per_epoch = 50000 // r.batch_size
    out = {}
    for method, rho in (('deterministic', None), ('ceb', 3.0)):
        model = ceb.ceb_model(r, method)
        out[method] = measure(model, ceb.ceb_objective(r, method, rho), None, (3, 32, 32), 10, 4, repeats, 'adam')
    aa = AutoAugmentBatch('cifar10')
    x = torch.randint(0, 256, (r.batch_size, 3, 32, 32), generator=make_generator(SEED), dtype=torch.uint8).float() / 255
    aa(x, None); t = []
    for _ in range(repeats):
        t0 = time.perf_counter(); aa(x, None); t.append(time.perf_counter() - t0)
    aa_s = statistics.median(t)
    steps = r.epochs * per_epoch
    n_ceb = sum(1 for m in r.methods if m == 'ceb') * len(r.rhos)
    flops = steps * (estimate(out['deterministic'], r.batch_size, steps)['flops_per_paper_step'] + n_ceb * estimate(out['ceb'], r.batch_size, steps)['flops_per_paper_step'])
    hours = {k: flops / v / 3600 for k, v in SUSTAINED.items()}
    return dict(recipe="CEBRecipe.full(dataset='cifar10')", model='WRN-28-10 without batch normalisation in a StochasticHead (d=32)', input=[3, 32, 32],
                models=1 + n_ceb, epochs=r.epochs, steps_per_epoch=per_epoch,
                steps={k: {**v, **estimate(v, r.batch_size, steps)} for k, v in out.items()},
                autoaugment_cpu_seconds_per_batch=aa_s, autoaugment_batch=r.batch_size,
                protocol=f"{1 + n_ceb} models (deterministic, CEB at {n_ceb} rhos) x {r.epochs} epochs x {per_epoch} steps",
                total_flops=flops, gpu_hours=hours,
                gpu_hours_with_autoaugment={k: h + (1 + n_ceb) * steps * aa_s / 3600 for k, h in hours.items()})


def mtlat_recipe(repeats: int) -> dict:
    "M-TLAT on ImageNet-100: ResNet-50 at 224 px, batch 256, 90 epochs of 10^5 images, for every training of Tables 1-3 and the surrogate."
    r = mtlat.MTLATRecipe.full(dataset='imagenet100', data_dir='.')
    per_epoch = 100000 // r.batch_size
    out = {}
    for method in dict.fromkeys((*r.methods, *r.ablations)):
        objective, transform = mtlat.MTLAT_METHODS[method](r, 100)
        out[method] = measure(create_model('resnet50', 3, 100, 224), objective, transform, (3, 224, 224), 100, 2, repeats, 'adam')
    vgg = create_model('vgg_small', 3, 100, 224, cfg=tuple(r.surrogate_cfg))
    out['surrogate'] = measure(vgg, mtlat.MTLAT_METHODS['standard'](r, 100)[0], None, (3, 224, 224), 100, 2, repeats, 'adam')
    steps = r.epochs * per_epoch
    flops = sum(estimate(v, r.batch_size, steps)['flops_per_paper_step'] for v in out.values()) * steps
    with tempfile.TemporaryDirectory() as d:  # JPEG decoding and resizing of ImageNet-sized files (500 x 375), as the workers do it
        from PIL import Image
        rng = np.random.default_rng(SEED)
        files = []
        for i in range(8):
            p = Path(d)/f'{i}.jpg'
            Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(p, quality=90); files.append(p)
        decode_image(files[0], 224)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for p in files: decode_image(p, 224, r.augment)
        per_image = (time.perf_counter() - t0) / (repeats * len(files))
    return dict(recipe="MTLATRecipe.full(dataset='imagenet100', data_dir=DIR)", model='torchvision ResNet-50 (trainings), SmallVGG (surrogate)',
                input=[3, 224, 224], trainings=len(out), epochs=r.epochs, steps_per_epoch=per_epoch,
                steps={k: {**v, **estimate(v, r.batch_size, steps)} for k, v in out.items()},
                decode_seconds_per_image=per_image, decode_images_per_second_per_worker=1 / per_image,
                protocol=f"one seed: {len(out) - 1} ResNet-50 trainings ({', '.join(k for k in out if k != 'surrogate')}) and the surrogate, {r.epochs} epochs x {per_epoch} steps each",
                total_flops=flops, gpu_hours={k: flops / v / 3600 for k, v in SUSTAINED.items()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=3, help='timed steps per measurement, after one warm-up')
    p.add_argument('--out', default=str(OUT), help='folder for paper_scale_steps.json')
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    recipes = {}
    for name, make in (('fcl_cifar10', lambda: fcl_recipe('cifar10', a.repeats)), ('fcl_cifar100', lambda: fcl_recipe('cifar100', a.repeats)),
                       ('ceb_cifar10', lambda: ceb_recipe(a.repeats)), ('mtlat_imagenet100', lambda: mtlat_recipe(a.repeats))):
        recipes[name] = make()
        print(f"{name}: {recipes[name]['protocol']}; GPU hours " + ', '.join(f"{v:.1f} at {k}" for k, v in recipes[name]['gpu_hours'].items()), flush=True)
    js = dict(benchmark='paper_scale_steps', seed=SEED,
              method='CPU seconds per step measured on random images of the real size (median after a warm-up); FLOPs per step counted by '
                     'torch.utils.flop_counter.flop_registry (matmuls and convolutions, forward and backward) and scaled linearly to the paper batch; '
                     'GPU time = FLOPs / an assumed sustained throughput, no GPU measured',
              assumptions={'100_tflops': 'one H100 sustaining 100 TFLOP/s in bf16 autocast (about 10% of its 989 TFLOP/s dense bf16 peak)',
                           '30_tflops': 'one H100 sustaining 30 TFLOP/s (narrow CIFAR networks, small kernels)'},
              not_included='evaluation (attacks, corruption sweeps, rate estimation), data loading except where stated, checkpoints',
              recipes=recipes, seconds=time.perf_counter() - t0, machine=environment_info('cpu'))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'paper_scale_steps.json').write_text(json.dumps(js, indent=1))
    print(f"wrote {out/'paper_scale_steps.json'} ({js['seconds']:.0f} s)")


if __name__ == '__main__':
    main()
