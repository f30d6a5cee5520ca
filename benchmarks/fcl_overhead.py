"""Cost of FCL, side by side in one process on the CPU (or on a GPU with `--device cuda`):

1. one FCL training step (Algorithm 1, lambda fully on) against one plain cross-entropy step, for the same LeNet,
   the same batch of corner-task images and the same optimiser (target: at most 3x). Both backpropagate as `fit` does
   (`train.optimizer_backward`: into the optimiser's parameters only); `fcl_all_leaves_step_ms` times the FCL step with a
   plain `loss.backward()` as well, which also computes the gradient of the clean images the utility pass made require one;
2. the exact contextual-sensitivity map (torch.func vmap + jacrev) against a loop over the input features that
   takes one Jacobian column per feature with a forward-mode product (target: at least 10x faster), for the map of
   one image (`sensitivity_speedup_vs_loop`) and for a batch of `--sens-batch` images at once
   (`sensitivity_speedup_vs_loop_batch`), where the loop's per-call overhead is shared by the batch.

Also the parts of an FCL step (the utility pass, the stacked 2B forward) and the random-projection estimate.
Repeats of the steps and of the parts are interleaved (A, B, C, ..., then the reverse order) and medians reported.

What 3x asks of Algorithm 1: an XE step is one forward (F) and one backward (W) over B images, plus the optimiser
(A). An FCL step must at least do that, plus the input gradient of the clean batch for the utilities (I: a backward
pass to the input that skips the weight gradients), plus a forward and backward over the 2B perturbed images. With
costs linear in the batch, FCL / XE >= (F + W + A + I + 2 (F + W)) / (F + W + A) = 3 - 2A / (F + W + A) + I / (F + W + A),
which is above 3 whenever the input gradient costs more than twice the optimiser step. `summary.fcl_lower_bound_over_xe`
is this bound from the parts measured here (I = utility pass - clean forward, F + W = an XE forward and backward
without the optimiser).

    python benchmarks/fcl_overhead.py [--batch-size 128] [--steps 20] [--rounds 7] [--sens-batch 8] [--sens-rounds 3]
                                      [--device cpu] [--out benchmarks/results]

Writes fcl_overhead.json (fcl_overhead_<device>.json for a non-CPU device, e.g. fcl_overhead_cuda.json) into `--out`, a
folder (by default benchmarks/results/) or a file name ending in .json. On CUDA the steps and their parts run under
bfloat16 autocast as `fit` runs them (`--no-amp` for float32), the random numbers of the FCL step come from a generator
on the device as in `fit`, and every timing waits for the GPU to finish."""
import argparse, json, os, statistics, time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import jvp

from robust_nb.core import environment_info, get_device, make_generator
from robust_nb.methods.fcl import FCL, contextual_sensitivity, embed_with_utility, sensitivity_estimate, utility_perturbation
from robust_nb.models import LeNet
from robust_nb.synthetic import corner_task
from robust_nb.train import CrossEntropy, TrainState, optimizer_backward

OUT = Path(__file__).parent/'results'


def sensitivity_loop(model, x, features=None):
    "The baseline: for every input feature j (the first `features` of them), column j of each sample's Jacobian by one forward-mode product; `[B, features]`."
    d = x[0].numel() if features is None else min(features, x[0].numel())
    s2 = torch.empty(len(x), d, device=x.device)
    with torch.no_grad():  # as in contextual_sensitivity: no graph back to the weights
        for j in range(d):
            t = torch.zeros_like(x).flatten(1); t[:, j] = 1
            _, col = jvp(model.embed, (x,), (t.view_as(x),))  # [B, E]
            s2[:, j] = col.pow(2).sum(1)
    return s2.sqrt()


def sync(device):
    "Wait for the GPU's queued work (timings on CUDA are otherwise only launch times)."
    if device.type == 'cuda': torch.cuda.synchronize(device)


def autocast(device, amp):
    "bfloat16 autocast on `device` when `amp`, as `fit` trains."
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


def step_timer(model, objective, batch, state, steps, amp=False, all_leaves=False):
    "Seconds per optimiser step (forward, backward as `fit` makes it, Adam) of `objective` on `batch`; `all_leaves`: a plain `loss.backward()`."
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = batch[0].device
    def run(n):
        sync(device); t = time.perf_counter()
        for _ in range(n):
            with autocast(device, amp): loss, _ = objective(model, batch, state)
            opt.zero_grad(set_to_none=True)
            loss.backward() if all_leaves else optimizer_backward(loss, opt)
            opt.step()
        sync(device)
        return (time.perf_counter() - t) / n
    return run


def part_timer(f, device):
    "Seconds per call of `f`."
    def run(n):
        sync(device); t = time.perf_counter()
        for _ in range(n): f()
        sync(device)
        return (time.perf_counter() - t) / n
    return run


def fcl_parts(x, y, seed, device, amp) -> dict:
    "The parts of an FCL step, without the backward pass (which covers B clean + 2B perturbed images), on a fresh LeNet."
    torch.manual_seed(seed)
    net = LeNet(num_classes=15).to(device)
    def utility_pass():
        with autocast(device, amp): return embed_with_utility(net, x, y, keep_graph=False)
    def xe_forward_backward():
        net.zero_grad(set_to_none=True)
        with autocast(device, amp): loss = F.cross_entropy(net(x), y)
        loss.backward()
    def clean_forward():
        with autocast(device, amp): return net(x)
    def stacked_2b_forward():
        with autocast(device, amp): return net.embed(xp)
    _, _, u = utility_pass()
    g = make_generator(seed, device)
    xp = torch.cat([x + utility_perturbation(u, 256, 0.5, 'bottom', g), x + utility_perturbation(u, 256, 0.5, 'top', g)])
    return {'clean_forward': clean_forward, 'utility_pass': utility_pass, 'stacked_2b_forward': stacked_2b_forward,
            'xe_forward_backward': xe_forward_backward}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--steps', type=int, default=20, help='steps per timed repeat')
    ap.add_argument('--rounds', type=int, default=7, help='interleaved repeats of each step kind')
    ap.add_argument('--sens-batch', type=int, default=8, help='images per sensitivity map')
    ap.add_argument('--sens-rounds', type=int, default=3)
    ap.add_argument('--loop-features', type=int, default=None,
                    help='run the loop baseline over the first N input features only and scale its times to all of them (default: all)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cpu', help="'cpu' (default), 'cuda', 'cuda:N' or 'mps'")
    ap.add_argument('--no-amp', action='store_true', help='on CUDA, time float32 steps instead of bfloat16 autocast')
    ap.add_argument('--out', default=str(OUT), help='folder for the result JSON, or a file name ending in .json (default benchmarks/results)')
    a = ap.parse_args()
    device = get_device(a.device)
    amp = device.type == 'cuda' and not a.no_amp

    load_before = os.getloadavg()
    task = corner_task(seed=a.seed)
    x, y = task.train.take(a.batch_size, seed=a.seed)[:]
    x, y = x.to(device), y.to(device)
    state = TrainState(epoch=10, epochs=20, steps_per_epoch=100, step=1000, device=device,
                       generator=make_generator(a.seed, device))  # lambda fully on
    fcl = FCL()  # the paper's k=256, lambda=0.001, tau=0.1, sigma=0.5
    assert fcl.weight(state) == fcl.lam
    runners = {}
    for name, obj, all_leaves in (('xe', CrossEntropy(), False), ('fcl', fcl, False), ('fcl_all_leaves', fcl, True)):
        torch.manual_seed(a.seed)
        runners[name] = step_timer(LeNet(num_classes=15).to(device), obj, (x, y), state, a.steps, amp, all_leaves)
    parts = fcl_parts(x, y, a.seed, device, amp)
    runners.update({name: part_timer(f, device) for name, f in parts.items()})
    for run in runners.values(): run(3)  # warm-up
    times = {k: [] for k in runners}
    for r in range(a.rounds):  # steps and parts interleaved, so that all of them see the same load
        for name in (list(runners) if r % 2 == 0 else list(runners)[::-1]):
            times[name].append(runners[name](a.steps))
    step_times, part_times = {k: v for k, v in times.items() if k not in parts}, {k: v for k, v in times.items() if k in parts}
    med = {k: statistics.median(v) for k, v in step_times.items()}
    pmed = {k: 1000 * statistics.median(v) for k, v in part_times.items()}
    input_grad_ms = pmed['utility_pass'] - pmed['clean_forward']
    lower_bound = (1000 * med['xe'] + input_grad_ms + 2 * pmed['xe_forward_backward']) / (1000 * med['xe'])

    torch.manual_seed(a.seed)
    model = LeNet(num_classes=15).to(device).eval()
    xs = task.test.take(a.sens_batch, seed=a.seed)[:][0].to(device)
    n_features = xs[0].numel()
    k = n_features if a.loop_features is None else max(1, min(a.loop_features, n_features))
    exact, loop = contextual_sensitivity(model, xs), sensitivity_loop(model, xs, k)  # also the warm-up (vmap traces on the first call)
    contextual_sensitivity(model, xs[:1])
    max_rel_diff = float(((exact.flatten(1)[:, :k] - loop).abs().max() / loop.abs().max()))
    fns = {'exact_1': lambda: contextual_sensitivity(model, xs[:1]), 'loop_1': lambda: sensitivity_loop(model, xs[:1], k),
           'exact_batch': lambda: contextual_sensitivity(model, xs), 'loop_batch': lambda: sensitivity_loop(model, xs, k),
           'estimate_16_probes_batch': lambda: sensitivity_estimate(model, xs, probes=16, generator=0)}
    sens_times = {k: [] for k in fns}
    for r in range(a.sens_rounds):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            sync(device); t = time.perf_counter(); fns[name](); sync(device); sens_times[name].append(time.perf_counter() - t)
    smed = {name: statistics.median(v) for name, v in sens_times.items()}
    for name in ('loop_1', 'loop_batch'): smed[name] *= n_features / k  # the loop's time is linear in the features it covers

    result = dict(
        benchmark='fcl_overhead',
        summary=dict(fcl_over_xe_step=med['fcl'] / med['xe'], fcl_over_xe_target_max=3.0,
                     sensitivity_speedup_vs_loop=smed['loop_1'] / smed['exact_1'], sensitivity_speedup_target_min=10.0,
                     sensitivity_speedup_vs_loop_batch=smed['loop_batch'] / smed['exact_batch'],
                     estimate_speedup_vs_exact_batch=smed['exact_batch'] / smed['estimate_16_probes_batch'],
                     xe_step_ms=1000 * med['xe'], fcl_step_ms=1000 * med['fcl'], fcl_all_leaves_step_ms=1000 * med['fcl_all_leaves'],
                     fcl_all_leaves_over_lower_bound=med['fcl_all_leaves'] / (lower_bound * med['xe']),
                     fcl_lower_bound_over_xe=lower_bound, fcl_over_lower_bound=med['fcl'] / (lower_bound * med['xe']),
                     fcl_parts_ms=dict(pmed, utility_input_gradient=input_grad_ms),
                     exact_map_ms_one_image=1000 * smed['exact_1'], loop_map_ms_one_image=1000 * smed['loop_1'],
                     exact_map_ms_per_image_batch=1000 * smed['exact_batch'] / a.sens_batch,
                     loop_map_ms_per_image_batch=1000 * smed['loop_batch'] / a.sens_batch,
                     targets_met=dict(fcl_over_xe_step=med['fcl'] / med['xe'] <= 3.0,
                                      sensitivity_speedup_vs_loop=smed['loop_1'] / smed['exact_1'] >= 10.0)),
        setup=dict(model='LeNet(num_classes=15)', embed_dim=500, input_features=int(x[0].numel()), batch_size=a.batch_size,
                   optimizer='Adam lr 1e-3', backward='train.optimizer_backward, as fit (fcl_all_leaves: loss.backward())', fcl=repr(fcl), data=f"corner task ({task.params['base']}) training images",
                   steps_per_repeat=a.steps, rounds=a.rounds, sens_batch=a.sens_batch, sens_rounds=a.sens_rounds,
                   sensitivity_loop='one torch.func.jvp per input feature over the whole batch',
                   sensitivity_loop_features=k,
                   sensitivity_loop_times=('measured over all input features' if k == n_features else
                                           f'measured over the first {k} of {n_features} input features and scaled by {n_features}/{k}'),
                   exact_vs_loop_max_rel_diff=max_rel_diff, seed=a.seed,
                   load_average_before=load_before, load_average_after=os.getloadavg(),
                   omp_num_threads=os.environ.get('OMP_NUM_THREADS'), device=str(device),
                   autocast='bfloat16' if amp else None),
        raw=dict(step_seconds=step_times, fcl_part_seconds=part_times, sensitivity_seconds=sens_times),
        machine=environment_info(device))
    out = Path(a.out)
    if out.suffix != '.json': out = out/('fcl_overhead.json' if device.type == 'cpu' else f'fcl_overhead_{device.type}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result['summary'], indent=1))
    print(f"wrote {out}")


if __name__ == '__main__':
    main()
