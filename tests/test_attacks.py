"""Cross-checks of robust_nb.eval.attacks against torchattacks and captum on a Fashion-MNIST CNN, properties, bad input.

Conventions where captum differs from torchattacks / robust_nb (recorded by `test_captum_conventions_that_differ`):
- FGSM's default loss is -log(output[target]), i.e. it expects probabilities, not logits: pass a cross-entropy loss.
- FGSM leaves pixels whose |gradient| <= 1e-6 (`zero_thresh`) unchanged; sign(g) moves them (unless g == 0 exactly).
- Inputs are not clipped unless lower_bound / upper_bound are given.
- PGD with norm='L2' takes *sign* steps (the L-inf steepest-ascent direction) and then renormalises onto the L2 ball;
  Madry's L2 PGD (robust_nb, torchattacks) steps along the L2-normalised gradient.
- Random starts come from the global RNG (no generator argument).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from torch import nn

from robust_nb.data import load_dataset
from robust_nb.eval.attacks import (ATTACKS, boundary_gradient_attack, cw_l2, fgsm, least_likely_target, mi_fgsm, pgd,
                                    pgd_ll)

torchattacks = pytest.importorskip('torchattacks')
captum_robust = pytest.importorskip('captum.robust')

N = 256  # a power of two: the mean-reduced loss of torchattacks then has exactly the gradient of our summed loss / N


def _tiny_cnn():
    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 64), nn.ReLU())
            self.fc = nn.Linear(64, 10)
        def embed(self, x): return self.body(x)
        def head(self, z): return self.fc(z)
        def forward(self, x): return self.head(self.embed(x))
    return TinyCNN()


def train_model(seed=0, steps=150):
    """A small LeNet trained for `steps` steps of 128 images (robust_nb.train.fit when present, else an inline loop)."""
    torch.manual_seed(seed)
    train = load_dataset('fashion_mnist', 'train')
    try:
        from robust_nb.models import create_model
        from robust_nb.train import fit
        model = create_model('lenet', in_channels=1, num_classes=10, embed_dim=64, channels=(8, 16))
        fit(model, train, epochs=1, batch_size=128, lr=1e-3, seed=seed, progress=False, max_steps_per_epoch=steps, device='cpu')
    except (ImportError, TypeError):
        model = _tiny_cnn()
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for i, (x, y) in enumerate(train.batches(128, shuffle=True, generator=seed)):
            if i == steps: break
            opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
    return model.eval()


@pytest.fixture(scope='module')
def setup(fmnist_available):
    model = train_model(0)
    x, y = load_dataset('fashion_mnist', 'test').take(N, seed=0)[:]
    with torch.no_grad(): acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.6, acc
    return model, x, y


def _acc(model, x, y):
    with torch.no_grad(): return (model(x).argmax(1) == y).float().mean().item()


# ---------------------------------------------------------------- torchattacks

def test_fgsm_equals_torchattacks(setup):
    model, x, y = setup
    for eps in (0.03, 0.1):
        ours = fgsm(model, x, y, eps)
        theirs = torchattacks.FGSM(model, eps=eps)(x, y)
        assert torch.equal(ours, theirs), (ours - theirs).abs().max()
    t = (y + 1) % 10
    atk = torchattacks.FGSM(model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(fgsm(model, x, y, 0.1, target=t), atk(x, t))


@pytest.mark.parametrize('norm,eps', [('linf', 0.05), ('l2', 1.0)])
def test_pgd_vs_torchattacks(setup, norm, eps):
    model, x, y = setup
    steps, alpha = 10, 4 / 3 * eps / 10
    cls = torchattacks.PGD if norm == 'linf' else torchattacks.PGDL2
    # deterministic start: the same algorithm, so the same examples (L2: torchattacks adds 1e-10 to the norm of the
    # gradient of its *mean* loss, a relative 1e-3 change for confidently classified images, hence the tolerance)
    ours = pgd(model, x, y, eps, steps, norm=norm)
    theirs = cls(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    a_ours, a_theirs = _acc(model, ours, y), _acc(model, theirs, y)
    assert a_ours <= a_theirs + 0.005, (a_ours, a_theirs)
    if norm == 'linf': assert torch.equal(ours, theirs)
    else: assert (ours - theirs).abs().max() < 2e-3
    # random starts draw different random numbers from the same distributions (uniform cube; L2: uniform direction and
    # radius), so single runs differ by RNG noise of 1-2 points: compare the means over 4 restarts, allowing the
    # 0.5 point plus two standard errors of the difference of the means
    ours, theirs = [], []
    for seed in range(4):
        ours.append(_acc(model, pgd(model, x, y, eps, steps, norm=norm, random_start=True, generator=seed), y))
        torch.manual_seed(seed)
        theirs.append(_acc(model, cls(model, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y), y))
    o, t = np.array(ours), np.array(theirs)
    se = math.sqrt(o.var(ddof=1) / 4 + t.var(ddof=1) / 4)
    print(f'pgd {norm} eps={eps} random start, 4 restarts: robust accuracy ours {o.mean():.4f} {ours} '
          f'torchattacks {t.mean():.4f} {theirs} (se of difference {se:.4f})')
    assert o.mean() <= t.mean() + 0.005 + 2 * se, (ours, theirs)


def test_pgd_ll_and_mi_fgsm_vs_torchattacks(setup):
    model, x, y = setup
    # MI-FGSM: torchattacks' alpha is a free parameter; Dong et al. (and robust_nb) use eps / steps
    ours = mi_fgsm(model, x, y, 0.05)
    theirs = torchattacks.MIFGSM(model, eps=0.05, alpha=0.005, steps=10, decay=1.0)(x, y)
    assert abs(_acc(model, ours, y) - _acc(model, theirs, y)) <= 0.005
    t = least_likely_target(model, x, y)
    atk = torchattacks.PGD(model, eps=0.1, alpha=4 / 3 * 0.01, steps=10, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(pgd_ll(model, x, y, 0.1), atk(x, t))


def test_cw_l2_vs_torchattacks(setup):
    """torchattacks' CW has no search over c and keeps the closest *misclassified* iterate (clean x if none);
    robust_nb keeps the closest iterate that beats the confidence margin kappa (the last iterate if none)."""
    model, x, y = setup
    x, y = x[:64], y[:64]
    ours = cw_l2(model, x, y, steps=40, confidence=50, c=1.0, search_steps=1)
    theirs = torchattacks.CW(model, c=1.0, kappa=50, steps=40, lr=0.01)(x, y)
    a_ours, a_theirs, clean = _acc(model, ours, y), _acc(model, theirs, y), _acc(model, x, y)
    print(f'cw_l2 (40 steps, kappa 50, c=1): robust accuracy ours {a_ours:.3f} torchattacks {a_theirs:.3f} clean {clean:.3f}')
    assert a_ours <= a_theirs + 0.005 and a_ours < clean
    assert ours.min() >= 0 and ours.max() <= 1


# ---------------------------------------------------------------- captum

def _captum_loss(out, t): return F.cross_entropy(out, t, reduction='none')


def test_fgsm_matches_captum_where_conventions_match(setup):
    model, x, y = setup
    c = captum_robust.FGSM(model, loss_func=_captum_loss, lower_bound=0., upper_bound=1.)
    theirs = c.perturb(x, 0.1, y)
    ours = fgsm(model, x, y, 0.1)
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction='sum'), xg)
    big = g.abs() > 1e-6
    assert torch.equal(ours[big], theirs[big])
    assert torch.equal(theirs[~big], x[~big])       # captum's zero threshold: small gradients do not move
    print(f'captum FGSM: {big.float().mean().item():.4f} of pixels have |grad| > 1e-6 and agree exactly')


def test_pgd_linf_matches_captum(setup):
    model, x, y = setup
    eps, steps = 0.05, 10
    theirs = captum_robust.PGD(model, loss_func=_captum_loss, lower_bound=0., upper_bound=1.).perturb(
        x, radius=eps, step_size=4 / 3 * eps / steps, step_num=steps, target=y, norm='Linf')
    ours = pgd(model, x, y, eps, steps)
    a_ours, a_theirs = _acc(model, ours, y), _acc(model, theirs, y)
    agree = (ours == theirs).float().mean().item()
    print(f'captum PGD Linf: robust accuracy ours {a_ours:.4f} captum {a_theirs:.4f}; {agree:.4f} of pixels identical')
    assert a_ours <= a_theirs + 0.005
    assert agree > 0.95


def test_captum_conventions_that_differ(setup):
    model, x, y = setup
    x, y = x[:32], y[:32]
    # L2 PGD: captum takes a sign step, so one step of size s moves non-flat pixels by exactly s each
    s = 0.01
    theirs = captum_robust.PGD(model, loss_func=_captum_loss).perturb(x, radius=10., step_size=s, step_num=1, target=y, norm='L2')
    ours = pgd(model, x, y, 10., steps=1, norm='l2', step_size=s)
    moved = (theirs - x).abs()
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], s))
    inside = ((ours > 0) & (ours < 1)).flatten(1).all(1)             # images the box did not clip
    assert torch.allclose((ours - x).flatten(1).norm(dim=1)[inside], torch.full((int(inside.sum()),), s), atol=1e-6)
    # captum's default loss is -log(output): with logits as outputs it is not the cross-entropy
    d = captum_robust.FGSM(model).perturb(x, 0.1, y)
    assert not torch.equal(d.clamp(0, 1), fgsm(model, x, y, 0.1))


# ---------------------------------------------------------------- behaviour

@pytest.mark.parametrize('name', sorted(ATTACKS))
def test_attack_leaves_model_and_inputs_alone(setup, name):
    model, x, y = setup
    x, y = x[:16].clone(), y[:16]
    x0 = x.clone()
    model.train()
    for p in model.parameters(): p.grad = torch.ones_like(p)
    kw = dict(steps=3) if name in ('pgd', 'pgd_ll', 'mi_fgsm') else dict(steps=3, search_steps=1) if name == 'cw_l2' else {}
    xa = ATTACKS[name](model, x, y, 0.1, **kw)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert torch.equal(x, x0) and xa.data_ptr() != x.data_ptr()
    for p in model.parameters(): p.grad = None
    model.eval()


@pytest.mark.parametrize('name', sorted(ATTACKS))
def test_batch_size_independence(setup, name):
    model, x, y = setup
    x, y = x[:64], y[:64]
    kw = dict(steps=5, search_steps=1) if name == 'cw_l2' else {}
    whole = ATTACKS[name](model, x, y, 0.1, **kw)
    parts = torch.cat([ATTACKS[name](model, x[i:i + 16], y[i:i + 16], 0.1, **kw) for i in range(0, 64, 16)])
    # sign-based attacks can flip a pixel whose gradient is ~0 under float noise: compare the share of pixels
    assert (whole - parts).abs().gt(1e-4).float().mean() < 1e-3
    assert abs(_acc(model, whole, y) - _acc(model, parts, y)) <= 1 / 64


def test_bg_finds_close_boundary_points(setup):
    model, x, y = setup
    x, y = x[:64], y[:64]
    with torch.no_grad(): pred = model(x).argmax(1)
    xa = boundary_gradient_attack(model, x, pred)
    with torch.no_grad():
        adv = model(xa).argmax(1) != pred
        inner = model(x + 0.95 * (xa - x)).argmax(1) != pred
    # BG fails where the linearisation is poor: for a few confidently classified images no class can be reached
    # even with the whole box (the ensemble in minimal_perturbation covers those with FGSM and PGD)
    print(f'BG fools {adv.float().mean():.3f} of 64 images')
    assert adv.float().mean() >= 0.9
    assert inner[adv].float().mean() < 0.1        # on the boundary: 5% closer and the prediction is back
    d_bg = (xa - x).flatten(1).norm(dim=1)[adv]
    d_pgd_budget = 1.0
    xp = pgd(model, x, pred, d_pgd_budget, norm='l2')
    with torch.no_grad(): pgd_adv = model(xp).argmax(1) != pred
    print(f'BG median L2 {d_bg.median():.3f}; L2-PGD at eps 1 fools {pgd_adv.float().mean():.3f}')
    assert (d_bg <= d_pgd_budget).float().mean() >= pgd_adv.float().mean() - 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device on this machine')
def test_cuda_matches_cpu(setup):
    model, x, y = setup
    cpu = pgd(model, x, y, 0.05)
    gpu = pgd(model.cuda(), x.cuda(), y.cuda(), 0.05).cpu()
    model.cpu()
    assert abs(_acc(model, cpu, y) - _acc(model, gpu, y)) <= 0.01


# ---------------------------------------------------------------- properties (hypothesis)

hsettings = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


@hsettings
@given(name=st.sampled_from(['fgsm', 'pgd', 'mi_fgsm', 'pgd_ll', 'bg', 'cw_l2']), norm=st.sampled_from(['linf', 'l2']),
       eps=st.floats(0.0, 2.0), start=st.integers(0, N - 8), random_start=st.booleans())
def test_perturbation_inside_ball_and_box(setup, name, norm, eps, start, random_start):
    model, x, y = setup
    x, y = x[start:start + 8], y[start:start + 8]
    if name in ('bg', 'cw_l2'): norm, kw = 'l2', (dict(steps=5, search_steps=1) if name == 'cw_l2' else {})
    elif name == 'fgsm': kw = dict(norm=norm)
    else: kw = dict(norm=norm, steps=3)
    if name == 'pgd': kw['random_start'], kw['generator'] = random_start, start
    xa = ATTACKS[name](model, x, y, eps, **kw)
    d = (xa - x).flatten(1)
    size = d.abs().amax(1) if norm == 'linf' else d.norm(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-6).all(), (size.max(), eps)
    assert xa.min() >= 0 and xa.max() <= 1


@hsettings
@given(target=st.integers(0, 9), eps=st.floats(0.02, 0.3), name=st.sampled_from(['fgsm', 'pgd', 'mi_fgsm']))
def test_targeted_attacks_raise_target_share(setup, target, eps, name):
    model, x, y = setup
    keep = y != target
    x, y = x[keep][:64], y[keep][:64]
    t = torch.full_like(y, target)
    kw = {} if name == 'fgsm' else dict(steps=5)
    xa = ATTACKS[name](model, x, y, eps, target=t, **kw)
    with torch.no_grad():
        before = (model(x).argmax(1) == target).float().mean()
        after = (model(xa).argmax(1) == target).float().mean()
        ce_before, ce_after = F.cross_entropy(model(x), t), F.cross_entropy(model(xa), t)
    assert after >= before and ce_after < ce_before


@hsettings
@given(name=st.sampled_from(sorted(ATTACKS)), start=st.integers(0, N - 8))
def test_eps_zero_is_identity(setup, name, start):
    model, x, y = setup
    x, y = x[start:start + 8], y[start:start + 8]
    xa = ATTACKS[name](model, x, y, 0.0)
    assert torch.equal(xa, x)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize('call,arg', [
    (lambda m, x, y: fgsm(m, x, y, -0.1), 'eps'),
    (lambda m, x, y: pgd(m, x, y, float('nan')), 'eps'),
    (lambda m, x, y: pgd(m, x, y, 0.1, steps=0), 'steps'),
    (lambda m, x, y: mi_fgsm(m, x, y, 0.1, steps=0), 'steps'),
    (lambda m, x, y: cw_l2(m, x, y, steps=0), 'steps'),
    (lambda m, x, y: pgd(m, x, y, 0.1, norm='l1'), 'norm'),
    (lambda m, x, y: fgsm(m, x, y, 0.1, norm='L2'), 'norm'),
    (lambda m, x, y: pgd(m, x, y, 0.1, step_size=-1.), 'step_size'),
    (lambda m, x, y: fgsm(m, x, y + 10, 0.1), 'y'),
    (lambda m, x, y: pgd(m, x, y - 20, 0.1), 'y'),
    (lambda m, x, y: fgsm(m, x, y.float(), 0.1), 'y'),
    (lambda m, x, y: fgsm(m, x, y[:2], 0.1), 'y'),
    (lambda m, x, y: pgd(m, x, y, 0.1, target=y), 'target'),
    (lambda m, x, y: pgd(m, x, y, 0.1, target=torch.full_like(y, 12)), 'target'),
    (lambda m, x, y: fgsm(m, x * float('nan'), y, 0.1), 'x'),
    (lambda m, x, y: fgsm(m, x * 3, y, 0.1), 'x'),
    (lambda m, x, y: fgsm(m, x[:, 0], y, 0.1), 'x'),
    (lambda m, x, y: boundary_gradient_attack(m, x, y, eps=-1), 'eps'),
    (lambda m, x, y: boundary_gradient_attack(m, x, y, growth=1.0), 'growth'),
    (lambda m, x, y: cw_l2(m, x, y, confidence=-1), 'confidence'),
    (lambda m, x, y: ATTACKS['pgd'](m, x, y, 0.1, steps=1.5), 'steps'),
])
def test_bad_input(setup, call, arg):
    model, x, y = setup
    x, y = x[:4], y[:4]
    with pytest.raises(ValueError, match=rf'^{arg}\b'):
        call(model, x, y)
