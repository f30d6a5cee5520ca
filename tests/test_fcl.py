"""FCL (issue 3, parts 1-2): utility against captum, exact sensitivity against finite differences, the estimator's
unbiasedness, top/bottom-k, the two losses by hand, the FCL objective's structure, the corner task and bad input."""
import math

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from robust_nb.core import make_generator
from robust_nb.data import ImageData
from robust_nb.methods.augment import Mixup, PatchGaussian, GaussianNoise
from robust_nb.methods.fcl import (FCL, CLGaussian, XEGaussian, contextual_sensitivity, contextual_utility,
                                   fcl_margin_loss, fcl_xe_loss, sensitivity_estimate, utility_mask, utility_perturbation)
from robust_nb.models import EmbedHead, LeNet
from robust_nb.synthetic import corner_task, noisy_test_sets, pixel_std
from robust_nb.train import TrainState, optimizer_backward


def tiny_conv(seed=0):
    "A smooth (tanh) conv net on 1x5x5 inputs: 25 features, 4-d embedding, 3 classes, float64."
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(27, 4), nn.Tanh())
    return EmbedHead(body, nn.Linear(4, 3)).double()


def linear_embed(E=6, D=12, seed=0):
    torch.manual_seed(seed)
    return EmbedHead(nn.Sequential(nn.Flatten(), nn.Linear(D, E, bias=False)), nn.Linear(E, 3)).double()


# ---------------------------------------------------------------- utility

@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_utility_equals_captum_saliency(dtype):
    from captum.attr import Saliency
    torch.manual_seed(0)
    model = LeNet(num_classes=15).to(dtype)
    x, y = torch.rand(16, 1, 28, 28, dtype=dtype), torch.randint(0, 15, (16,))
    ours = contextual_utility(model, x, y)
    theirs = Saliency(lambda inp: F.log_softmax(model(inp), -1)).attribute(x, target=y, abs=True)
    assert ours.shape == x.shape
    # the same backward pass: d log_softmax(f(x))[y] / dx, which the cross-entropy's gradient negates exactly
    assert torch.equal(ours, theirs)
    assert ours.abs().max() > 1e-4  # not trivially zero


def test_utility_is_per_sample_not_batch_mean():
    model = tiny_conv()
    x, y = torch.rand(6, 1, 5, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    u_batch = contextual_utility(model, x, y)
    u_single = torch.cat([contextual_utility(model, x[i:i + 1], y[i:i + 1]) for i in range(6)])
    # float64 gradients below 1 summed in another order: a few hundred roundings of 2^-53 at most
    torch.testing.assert_close(u_batch, u_single, rtol=0, atol=1e-14)


# ---------------------------------------------------------------- sensitivity

def test_exact_sensitivity_equals_finite_differences():
    model = tiny_conv()
    x = torch.rand(3, 1, 5, 5, dtype=torch.float64)
    s = contextual_sensitivity(model, x, chunk_size=2)
    h = 1e-6
    fd = torch.empty_like(x).flatten(1)
    with torch.no_grad():
        for j in range(25):
            e = torch.zeros(1, 25, dtype=torch.float64); e[0, j] = h
            e = e.view(1, 1, 5, 5)
            col = (model.embed(x + e) - model.embed(x - e)) / (2 * h)
            fd[:, j] = col.norm(dim=1)
    # central differences in float64: rounding error ~2^-53 |phi| / h ~ 1e-10, truncation h^2 |phi'''| / 6 ~ 1e-13
    torch.testing.assert_close(s, fd.view_as(x), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(contextual_sensitivity(model, x, squared=True), s ** 2)


def rademacher_var(Jcol):
    "Per-probe variance of (J^T v)_j^2 for Rademacher v: 2 (s_j^4 - sum_e J_ej^4)."
    return 2 * (Jcol.pow(2).sum(0) ** 2 - Jcol.pow(4).sum(0))


def test_estimator_is_unbiased_known_answer():
    "Linear embedding phi(x) = W x: the squared sensitivity is the squared column norm of W."
    model = linear_embed()
    W = model.body[1].weight.detach()
    truth = W.pow(2).sum(0)  # [D]
    x = torch.rand(1, 1, 3, 4, dtype=torch.float64)
    n = 200_000
    for noise, var in (('rademacher', rademacher_var(W)), ('gaussian', 2 * truth ** 2)):
        est = sensitivity_estimate(model, x, probes=n, noise=noise, generator=1).flatten()
        z = (est - truth) / (var / n).sqrt()
        assert z.abs().max() < 4.5, (noise, z)
        # the same tolerance rejects an estimator that is 2% off: the test has the power to see a bias
        assert ((1.02 * est - truth) / (var / n).sqrt()).abs().max() > 4.5
    # the square root is biased low (Jensen): with few probes its mean over many draws is clearly below s
    roots = torch.stack([sensitivity_estimate(model, x, probes=2, generator=g, squared=False).flatten() for g in range(3000)])
    assert (roots.mean(0) < truth.sqrt() * 0.97).all()


def test_estimator_matches_exact_on_lenet():
    "Nonlinear case: the exact map is the known answer; the z-scores use the Rademacher variance from the exact Jacobian."
    torch.manual_seed(0)
    model = LeNet(num_classes=15).double().eval()
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    n = 4000
    est = sensitivity_estimate(model, x, probes=n, generator=3).flatten()
    J = torch.func.jacrev(lambda v: model.embed(v))(x).reshape(500, 784)
    truth = J.pow(2).sum(0)
    torch.testing.assert_close(contextual_sensitivity(model, x, squared=True).flatten(), truth)
    var = rademacher_var(J)
    ok = var > 1e-20 * truth.max() ** 2
    z = (est[ok] - truth[ok]) / (var[ok] / n).sqrt()
    assert z.abs().max() < 5.5  # 784 features: max |z| of standard normals rarely exceeds 4.5
    assert abs(z.mean()) < 4 / math.sqrt(ok.sum().item()) * 3  # no systematic bias across features


# ---------------------------------------------------------------- perturbations

def test_top_bottom_k_select_right_indices():
    g = make_generator(0)
    u = torch.rand(5, 3, 4, 4, generator=g)  # 48 features per sample, distinct values
    for k in (1, 7, 48):
        top, bottom = utility_mask(u, k, 'top'), utility_mask(u, k, 'bottom')
        order = u.flatten(1).argsort(1, descending=True)
        for i in range(5):
            assert set(top[i].flatten().nonzero().flatten().tolist()) == set(order[i, :k].tolist())
            assert set(bottom[i].flatten().nonzero().flatten().tolist()) == set(order[i, -k:].tolist())
        assert (top.flatten(1).sum(1) == k).all()
    eps = utility_perturbation(u, 7, 0.5, 'bottom', generator=1)
    assert ((eps != 0) == utility_mask(u, 7, 'bottom')).all()
    assert torch.equal(eps, utility_perturbation(u, 7, 0.5, 'bottom', generator=1))
    assert (utility_perturbation(u, 7, 0.0, 'top', generator=1) == 0).all()


# ---------------------------------------------------------------- losses by hand

def cos(a, b): return sum(p * q for p, q in zip(a, b)) / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))


Z = [[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]
ZP = [[1.0, 1.5, 0.5], [0.5, 1.0, -1.0], [1.0, 1.0, 1.0]]
ZN = [[-1.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def hand_xe(tau, use_neg=True):
    out = []
    for i in range(3):
        pos = math.exp(cos(Z[i], ZP[i]) / tau)
        negs = [math.exp(cos(Z[i], Z[j]) / tau) for j in range(3) if j != i]
        if use_neg: negs.append(math.exp(cos(Z[i], ZN[i]) / tau))
        out.append(-math.log(pos / (pos + sum(negs))))
    return out


def hand_margin(gamma):
    out = []
    for i in range(3):
        l = (1 - cos(Z[i], ZP[i])) ** 2 + max(0.0, gamma - (1 - cos(Z[i], ZN[i]))) ** 2
        l += sum(max(0.0, gamma - (1 - cos(Z[i], Z[j]))) ** 2 for j in range(3) if j != i)
        out.append(l)
    return out


@pytest.mark.parametrize('tau', [0.1, 0.5, 2.0])
def test_xe_loss_by_hand(tau):
    z, zp, zn = (torch.tensor(t, dtype=torch.float64) for t in (Z, ZP, ZN))
    want = hand_xe(tau)
    torch.testing.assert_close(fcl_xe_loss(z, zp, zn, tau, reduction='none'), torch.tensor(want, dtype=torch.float64))
    assert math.isclose(fcl_xe_loss(z, zp, zn, tau).item(), sum(want) / 3, rel_tol=1e-12)
    assert math.isclose(fcl_xe_loss(z, zp, zn, tau, reduction='sum').item(), sum(want), rel_tol=1e-12)
    torch.testing.assert_close(fcl_xe_loss(z, zp, None, tau, reduction='none'), torch.tensor(hand_xe(tau, False), dtype=torch.float64))


@pytest.mark.parametrize('gamma', [0.0, 0.8, 1.5])
def test_margin_loss_by_hand(gamma):
    z, zp, zn = (torch.tensor(t, dtype=torch.float64) for t in (Z, ZP, ZN))
    want = hand_margin(gamma)
    torch.testing.assert_close(fcl_margin_loss(z, zp, zn, gamma, reduction='none'), torch.tensor(want, dtype=torch.float64))
    assert math.isclose(fcl_margin_loss(z, zp, zn, gamma).item(), sum(want) / 3, rel_tol=1e-12)


def test_losses_scale_invariant():
    "Cosine distance: rescaling an embedding changes nothing."
    z, zp, zn = (torch.tensor(t, dtype=torch.float64) for t in (Z, ZP, ZN))
    torch.testing.assert_close(fcl_xe_loss(3 * z, zp, 0.5 * zn, 0.1), fcl_xe_loss(z, zp, zn, 0.1))


# ---------------------------------------------------------------- the FCL objective

class CountingLeNet(LeNet):
    def __init__(self):
        super().__init__(num_classes=15)
        self.embed_batches = []
    def embed(self, x):
        self.embed_batches.append(len(x))
        return super().embed(x)


def test_fcl_step_structure():
    "One clean forward (shared with the utility) and one forward over the stacked 2B batch; lambda ramps."
    torch.manual_seed(0)
    model = CountingLeNet()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 15, (8,))
    on = TrainState(epoch=5, epochs=20, steps_per_epoch=10, step=50, generator=make_generator(0))
    loss, logs = FCL()(model, (x, y), on)
    assert model.embed_batches == [8, 16]
    assert logs['lam'] == 0.001 and logs['dropped'] == 0
    fcl = FCL(start_epoch=2, warmup_epochs=2)
    assert [fcl.weight(TrainState(steps_per_epoch=10, step=s)) for s in (0, 19, 20, 25, 30, 40, 100)] == [0, 0, 0, 0.00025, 0.0005, 0.001, 0.001]
    model.embed_batches.clear()
    FCL()(model, (x, y), TrainState(steps_per_epoch=10, step=5, generator=make_generator(0)))
    assert model.embed_batches == [8]  # warm-up: cross-entropy only


def test_fcl_drops_negatives_without_utility():
    torch.manual_seed(0)
    model = LeNet(num_classes=15)
    nn.init.zeros_(model.fc.weight)  # constant logits: every utility is exactly 0
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 15, (8,))
    loss, logs = FCL(start_epoch=0, warmup_epochs=0)(model, (x, y), TrainState(generator=make_generator(0)))
    assert logs['dropped'] == 1.0
    # by hand: the positives are bottom-k perturbations (k=256 of 784; all utilities tie), no utility negatives
    u = contextual_utility(model, x, y)
    assert u.max() == 0
    g = make_generator(0)
    z_pos = model.embed(x + utility_perturbation(u, 256, 0.5, 'bottom', g))
    want = F.cross_entropy(model(x), y) + 0.001 * fcl_xe_loss(model.embed(x), z_pos, None, 0.1, reduction='sum')
    torch.testing.assert_close(loss, want)


def test_fcl_step_as_fit_makes_it():
    "fit's backward (into the optimiser's parameters only) gives a plain backward's loss and gradients bit for bit, and both are Algorithm 1's."
    g = make_generator(3)
    x, y = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 15, (16,), generator=g)
    out = {}
    for how in ('plain', 'fit'):
        torch.manual_seed(0)
        model = LeNet(num_classes=15)
        loss, logs = FCL(k=64, start_epoch=0, warmup_epochs=0)(model, (x, y), TrainState(generator=make_generator(0)))
        if how == 'plain': loss.backward()
        else: optimizer_backward(loss, torch.optim.SGD(model.parameters(), lr=0.1))
        out[how] = loss.detach(), [p.grad for p in model.parameters()]
    assert logs['dropped'] == 0
    assert torch.equal(out['plain'][0], out['fit'][0])
    assert all(torch.equal(a, b) for a, b in zip(out['plain'][1], out['fit'][1]))
    # Algorithm 1 written out with separate passes: equal up to float32 rounding (the graphs sum in another order)
    torch.manual_seed(0)
    model = LeNet(num_classes=15)
    u, gen = contextual_utility(model, x, y), make_generator(0)
    x_pos, x_neg = x + utility_perturbation(u, 64, 0.5, 'bottom', gen), x + utility_perturbation(u, 64, 0.5, 'top', gen)
    z = model.embed(x)
    z_pos, z_neg = model.embed(torch.cat([x_pos, x_neg])).chunk(2)
    want = F.cross_entropy(model.head(z), y) + 0.001 * fcl_xe_loss(z, z_pos, z_neg, 0.1, reduction='sum')
    want.backward()
    torch.testing.assert_close(out['fit'][0], want.detach())
    for got, p in zip(out['fit'][1], model.parameters()): torch.testing.assert_close(got, p.grad)


def test_fcl_deterministic_and_trains():
    from robust_nb.train import fit
    d = ImageData((torch.rand(64, 1, 28, 28) * 255).to(torch.uint8), torch.arange(64) % 15)
    hs = []
    for _ in range(2):
        torch.manual_seed(0)
        hs.append(fit(LeNet(num_classes=15), d, epochs=2, batch_size=16, objective=FCL(start_epoch=0, warmup_epochs=1),
                      transform=PatchGaussian(10, 0.3), device='cpu', progress=False))
    assert hs[0].drop(columns='seconds').equals(hs[1].drop(columns='seconds'))
    assert hs[0].train_lam.iloc[0] > 0 and hs[0].train_fcl.iloc[-1] > 0


def test_baselines_use_stacked_batch():
    torch.manual_seed(0)
    model = CountingLeNet()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 15, (8,))
    st = TrainState(epoch=5, steps_per_epoch=10, step=50, generator=make_generator(0))
    CLGaussian()(model, (x, y), st)
    assert model.embed_batches == [16]
    loss, logs = XEGaussian(lam=0.3)(model, (x, y), st)
    torch.testing.assert_close(loss, logs['ce'] + 0.3 * logs['ce_noisy'])


# ---------------------------------------------------------------- the corner task

@pytest.fixture(scope='module')
def task(fmnist_available):
    return corner_task(seed=0)


def test_corner_task_counts(task):
    c = {k: torch.bincount(v.y, minlength=15) for k, v in task.splits().items()}
    assert (c['train'][10:] == 50).all()
    assert (c['train'][:10] >= 4000).all() and (c['train'][:10] <= 6000).all()
    assert 45_000 <= len(task.train) <= 52_000
    for split in ('val', 'test'):
        assert len(set(c[split].tolist())) == 1, c[split]  # balanced over 15 classes
        assert 13_000 <= len(task.splits()[split]) <= 15_000
    assert task.num_classes == 15 and len(task.classes) == 15


def test_corner_task_rules(task):
    from robust_nb.data import load_dataset
    base = {'train': load_dataset(task.params['base'], 'train'), 'test': load_dataset(task.params['base'], 'test')}
    s, r = task.params['corner_size'], task.params['margin']
    for split, d in task.splits().items():
        m = task.meta[split]
        has = m['corner'] >= 0
        assert has[d.y >= 5].all()  # 5-9 always (the 100-of-101 rule) and 10-14 by definition
        assert not has[d.y < 5].any()
        assert torch.equal(d.y, torch.where(has & (m['base_label'] < 5), m['base_label'] + 10, m['base_label']))
        b = base['test' if split == 'test' else 'train']
        assert torch.equal(b.y[m['base_index']], m['base_label'])
        assert torch.equal(d.x[~has], b.x[m['base_index'][~has]])  # no corner item: the base image unchanged
        # with combine='max' an image is its base image everywhere outside the corner square, and >= it inside
        i = has.nonzero().flatten()[:500]
        diff = d.x[i].int() - b.x[m['base_index'][i]].int()
        assert (diff >= 0).all()
        for c in range(4):
            sel = m['corner'][i] == c
            if not sel.any(): continue
            outside = torch.ones(28, 28, dtype=torch.bool)
            rr = r if c in (0, 1) else 28 - r - s
            cc = r if c in (0, 2) else 28 - r - s
            outside[rr:rr + s, cc:cc + s] = False
            assert (diff[sel][:, :, outside] == 0).all()
    tr, va = set(task.meta['train']['base_index'].tolist()), set(task.meta['val']['base_index'].tolist())
    assert not tr & va


def test_corner_task_deterministic(task):
    t2 = corner_task(seed=0)
    assert torch.equal(t2.train.x, task.train.x) and torch.equal(t2.test.y, task.test.y)


def test_noise_fractions(task):
    sets = noisy_test_sets(task, fraction=0.15, seed=0)
    x0 = task.test.x
    for k in ('bal_un', 'bal_nun'):
        changed = (sets[k].x != x0).float().mean().item()
        # a replaced pixel keeps its value only when the new grey level rounds to the old one (about 1/256)
        assert abs(changed - 0.15 * (1 - 1 / 256)) < 0.003, (k, changed)
    std = pixel_std(task.train)[0]
    hit_un = (sets['bal_un'].x != x0).float().mean((0, 1))
    hit_nun = (sets['bal_nun'].x != x0).float().mean((0, 1))
    low = std < std.quantile(0.25)
    assert abs(hit_un[low].mean() - hit_un[~low].mean()) < 0.01  # UN: places uniform
    assert hit_nun[low].mean() > 2 * hit_nun[~low].mean()  # NUN: concentrated on low-variance pixels
    # NUN's probability is proportional to 1 / std where it is not capped at 1
    p = hit_nun.flatten(); w = 1 / std.clamp_min(1e-3).flatten()
    free = p < 0.5
    ratio = p[free] / w[free]
    assert ratio.std() / ratio.mean() < 0.1


# ---------------------------------------------------------------- bad input

def test_bad_input():
    torch.manual_seed(0)
    model = LeNet(num_classes=15)
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 15, (4,))
    u = torch.rand(4, 1, 28, 28)
    st = TrainState(epoch=5, steps_per_epoch=10, step=50, generator=make_generator(0))
    z = torch.randn(4, 8)
    for fn, msg in [
        (lambda: utility_mask(u, 0), 'k: must be >= 1'),
        (lambda: utility_mask(u, 785), r'k: must be <= the number of input features \(784\)'),
        (lambda: utility_perturbation(u, 10, -0.5), 'sigma: must be >= 0'),
        (lambda: utility_mask(u, 3, 'middle'), "which: unknown value 'middle'"),
        (lambda: FCL(k=-1), 'k: must be >= 1'),
        (lambda: FCL(k=785)(model, (x, y), st), 'k: must be <= the number of input features'),
        (lambda: FCL(sigma=-1), 'sigma: must be >= 0'),
        (lambda: FCL(tau=0), 'tau: must be > 0'),
        (lambda: FCL(gamma=-0.1), 'gamma: must be >= 0'),
        (lambda: FCL(lam=-1), 'lam: must be >= 0'),
        (lambda: fcl_xe_loss(z, z, z, tau=0), 'tau: must be > 0'),
        (lambda: fcl_xe_loss(z, z, z, tau=-1), 'tau: must be > 0'),
        (lambda: fcl_margin_loss(z, z, z, gamma=-1), 'gamma: must be >= 0'),
        (lambda: fcl_xe_loss(z, z[:, :4], z, 0.1), 'z_pos: expected embeddings shaped like z'),
        (lambda: fcl_xe_loss(z, z, z[:3], 0.1), 'z_neg: expected embeddings shaped like z'),
        (lambda: fcl_margin_loss(z, z.T, z, 1.0), 'z_pos: expected embeddings shaped like z'),
        (lambda: fcl_xe_loss(z[0], z, z, 0.1), r'z: expected embeddings \[B, E\]'),
        (lambda: fcl_xe_loss(z, z, z, 0.1, reduction='max'), "reduction: unknown value 'max'"),
        (lambda: contextual_sensitivity(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), x), 'model: needs `embed'),
        (lambda: sensitivity_estimate(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), x), 'model: needs `embed'),
        (lambda: FCL()(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), (x, y), st), 'model: needs `embed'),
        (lambda: CLGaussian()(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), (x, y), st), 'model: needs `embed'),
        (lambda: contextual_utility(model, x, y.float()), 'y: expected 4 class indices'),
        (lambda: contextual_utility(model, x, y[:2]), 'y: expected 4 class indices'),
        (lambda: sensitivity_estimate(model, x, probes=0), 'probes: must be >= 1'),
        (lambda: XEGaussian(sigma=-1), 'sigma: must be >= 0'),
        (lambda: CLGaussian(tau=0), 'tau: must be > 0'),
        (lambda: PatchGaussian(patch_size=0), 'patch_size: must be >= 1'),
        (lambda: PatchGaussian(sigma=-0.1), 'sigma: must be >= 0'),
        (lambda: GaussianNoise(sigma=-0.1), 'sigma: must be >= 0'),
        (lambda: Mixup(alpha=0), 'alpha: must be > 0'),
        (lambda: Mixup(alpha=0.4)(x, y), 'num_classes: needed'),
    ]:
        with pytest.raises(ValueError, match=msg):
            fn()


@pytest.mark.parametrize('shape,classes', [((1, 32, 32), 10), ((1, 28, 28), 3), ((3, 28, 28), 100)])
def test_corner_task_rejects_other_base_sets(shape, classes):
    n = 2 * classes
    d = ImageData(torch.zeros(n, *shape, dtype=torch.uint8), torch.arange(n) % classes)
    with pytest.raises(ValueError, match='base: the corner task needs a 10-class base set of 28x28 images'):
        corner_task(base=(d, d))


def test_corner_task_bad_parameters():
    for kw, msg in [(dict(corner_size=0), 'corner_size: must be >= 1'), (dict(corner_size=15), 'corner_size: must be <= 14'),
                    (dict(corner_size=10, margin=5), 'margin: corner_size \\+ margin must be <= 14'),
                    (dict(combine='blend'), "combine: unknown value 'blend'"), (dict(base='cifar10'), "base: unknown value 'cifar10'"),
                    (dict(common_corner_fraction=1.5), 'common_corner_fraction: must be <= 1'), (dict(seed=-1), 'seed: must be >= 0')]:
        with pytest.raises(ValueError, match=msg):
            corner_task(**kw)


def test_corner_task_on_a_small_unbalanced_base():
    "Any 10-class 28x28 base set: the balanced splits take the smallest class count, the rare classes get n_rare."
    g = make_generator(0)
    y_tr = torch.cat([torch.full((40 + 2 * c,), c) for c in range(10)])
    y_te = torch.cat([torch.full((12 + c,), c) for c in range(10)])
    mk = lambda y: ImageData(torch.randint(0, 256, (len(y), 1, 28, 28), generator=g, dtype=torch.uint8), y, [f'c{i}' for i in range(10)], 'fake')
    tr, te = mk(y_tr), mk(y_te)
    t = corner_task(base=(tr, te), n_rare=3, val_per_class=10, test_per_class=100, combine='paste', corner_size=6, margin=2)
    assert torch.bincount(t.test.y, minlength=15).tolist() == [12] * 15  # smallest test class has 12
    assert torch.bincount(t.val.y, minlength=15).tolist() == [10] * 15
    tc = torch.bincount(t.train.y, minlength=15)
    assert tc[10:].tolist() == [3] * 5 and tc[:5].tolist() == [40 + 2 * c - 10 - 3 for c in range(5)]
    assert t.classes[10:] == [f'c{i} + corner' for i in range(5)]
    assert t.params['test_per_class'] == 12 and t.params['combine'] == 'paste'
    # paste: the 6x6 corner square, 2 px from the border, is the shrunken corner item; the rest is the base image
    from robust_nb.synthetic import shrink, corner_offsets
    m = t.meta['test']
    for i in (m['corner'] >= 0).nonzero().flatten()[:20].tolist():
        r, c = corner_offsets(int(m['corner'][i]), 6, 28, 2)
        assert torch.equal(t.test.x[i, :, r:r + 6, c:c + 6], shrink(te.x[m['corner_item'][i:i + 1]], 6)[0])
        rest = torch.ones(28, 28, dtype=torch.bool); rest[r:r + 6, c:c + 6] = False
        assert torch.equal(t.test.x[i][:, rest], te.x[m['base_index'][i]][:, rest])
    with pytest.raises(ValueError, match='n_rare: 1000 rare training images per class are asked for'):
        corner_task(base=(tr, te), n_rare=1000, val_per_class=10)
