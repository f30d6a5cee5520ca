"""M-TLAT (issue 7): Mixup and TLAT labels, M-TLAT's Algorithm 1, IAT's order, the Table 3 ablations, the perturbation
benchmark's scores against accuracies recomputed independently, the reproduction's files and bad input."""
import argparse
import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from hypothesis import example, given, settings, strategies as st

from robust_nb.core import make_generator
from robust_nb.data import ImageData, load_dataset
from robust_nb.models import LeNet
from robust_nb.train import TrainState, fit, soft_cross_entropy
from robust_nb.eval.attacks import cw_l2, mi_fgsm, pgd, pgd_ll
from robust_nb.eval.corruptions import CORRUPTIONS, SUITES, corruption_seed
from robust_nb.eval.measures import accuracy, robust_accuracy
from robust_nb.methods.augment import Mixup, check_soft_labels, mixup, one_hot, sample_beta
from robust_nb.methods.mtlat import (IAT, MTLAT, TLAT, AdversarialTraining, FGSMAT, LabelSmoothingAT, TargetFGSMAT,
                                     fgsm_toward, tlat_labels)
from robust_nb.experiments import mtlat as ex
from _threads import one_thread

# Tolerances. The images and labels compared below are float32 numbers in [0, 1] that the method and the test compute
# by the same formula, at most eight roundings a side, each within half an ulp of 1 (2^-25). The losses are float32
# means of at most 32 cross-entropies, each a log-softmax of a few terms: at most 64 roundings of 2^-24, relative.
IMAGES = 16 * 2**-25
LOSSES = 64 * 2**-24


def grey_batch(levels, labels, k):
    "Images of constant grey levels, so every mixing weight can be read off a pixel."
    x = torch.tensor(levels, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 6, 6).contiguous()
    return x, torch.tensor(labels), k


def small_net(k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, k))


def input_grad(model, x, target):
    "Independent gradient of the summed CE wrt the input (plain F.cross_entropy, class indices)."
    x = x.clone().requires_grad_(True)
    F.cross_entropy(model(x), target, reduction='sum').backward()
    return x.grad


@pytest.fixture(scope='module')
def fm_small():
    train = load_dataset('fashion_mnist', 'train').take(1500, seed=0)
    test = load_dataset('fashion_mnist', 'test').take(96, seed=0)
    torch.manual_seed(0)
    model = LeNet()
    with one_thread(): fit(model, train, epochs=2, batch_size=100, lr=0.002, device='cpu', progress=False)
    return model.eval(), train, test


# ---------------------------------------------------------------- Mixup

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), per_sample=st.booleans(), alpha=st.floats(0.05, 4.0))
@example(seed=134258, per_sample=False, alpha=0.0546875)  # lambda rounds to 1.0 in float32: every label is one-hot
def test_mixup_labels_sum_to_one_with_the_image_weights(seed, per_sample, alpha):
    levels = torch.tensor([0.0, 0.2, 0.45, 0.7, 0.9, 1.0], dtype=torch.float64)
    x, y, k = grey_batch(levels.tolist(), [0, 1, 2, 3, 4, 5], 6)
    xm, ym = Mixup(alpha, num_classes=k, per_sample=per_sample, seed=seed)(x, y)
    # Image i (grey level i, class i) becomes lam * own + (1 - lam) * partner and its label lam * e_i + (1 - lam) *
    # e_partner, with the same float32 lam and 1 - lam, so the image is its label times the levels. Every number lies
    # in [0, 1], where a float32 rounding moves it by at most 2^-25 (2^-24 for a result just above 1). A label row:
    # fl(1 - lam) and, where an image is its own partner, the sum. An image: two products, one sum and its grey levels'
    # own rounding, plus the rounding of its label where it is its own partner.
    torch.testing.assert_close(ym.double().sum(1), torch.ones(6, dtype=torch.float64), rtol=0, atol=2**-25 + 2**-24)
    torch.testing.assert_close(xm[:, 0, 0, 0].double(), ym.double() @ levels, rtol=0, atol=4 * 2**-25 + 2**-24)
    assert ((ym > 0).sum(1) <= 2).all()  # its own class and its partner's
    if not per_sample:
        # one lambda for the batch: every image mixed with another holds exactly lam of its own class (lam * 1 +
        # fl(1 - lam) * 0 is exact) and fl(1 - lam) of its partner's. A Beta draw within 2^-25 of 1 (likely for a small
        # alpha) is 1 in float32, one below 2^-150 is 0: then every label is one-hot and there is nothing to compare.
        mixed = (ym > 0).sum(1) == 2
        own, partner = ym.diagonal()[mixed], (ym - torch.diag(ym.diagonal()))[mixed].sum(1)
        assert (own == own[:1]).all() and (partner == partner[:1]).all()


def test_sample_beta_matches_torch_distribution():
    from scipy import stats
    n, a = 20000, 0.4
    lam = sample_beta(a, n, make_generator(0)).numpy().astype(np.float64)
    ref = torch.distributions.Beta(a, a)
    var = ref.variance.item()
    # seeded, so the numbers are fixed; the bounds are 5 standard errors: of the mean, sqrt(var / n), and of the sample
    # variance, var * sqrt((kurtosis - 1) / n), where Beta(a, a) has kurtosis 3 - 6 / (2a + 3)
    assert abs(lam.mean() - ref.mean.item()) < 5 * (var / n) ** 0.5
    assert abs(lam.var() - var) < 5 * var * ((2 - 6 / (2 * a + 3)) / n) ** 0.5
    assert stats.kstest(lam, stats.beta(a, a).cdf).pvalue > 0.001


# ---------------------------------------------------------------- TLAT and the ablations

@pytest.mark.parametrize('per_sample', [False, True])
def test_tlat_labels_and_perturbation(per_sample):
    net = small_net(5)
    x = torch.rand(16, 1, 6, 6) * 0.8 + 0.1
    y = torch.arange(16) % 5
    p = TLAT(0.05, per_sample=per_sample, num_classes=5).make_pairs(net, x, y, make_generator(3))
    eps = torch.as_tensor(p['eps']).expand(16) if not per_sample else p['eps']
    assert ((eps >= 0) & (eps <= 0.05)).all()
    if not per_sample: assert torch.as_tensor(p['eps']).ndim == 0
    else: assert len(set(p['eps'].tolist())) > 1
    ya = p['y_adv']
    assert torch.allclose(ya.sum(1), torch.ones(16), rtol=0, atol=IMAGES)
    want = (1 - eps[:, None]) * F.one_hot(y, 5) + eps[:, None] * F.one_hot(p['target'], 5)
    assert torch.allclose(ya, want, rtol=0, atol=IMAGES)
    same = p['target'] == y
    assert torch.allclose(ya[~same].gather(1, y[~same, None]).squeeze(1), 1 - eps[~same], rtol=0, atol=IMAGES)
    # x_adv = x - eps sign(grad CE(x, target)), recomputed with an independent gradient
    g = input_grad(net, x, p['target'])
    assert torch.allclose(p['x_adv'], (x - eps.view(-1, 1, 1, 1) * g.sign()).clamp(0, 1), rtol=0, atol=IMAGES)


def test_targets_are_uniform_over_classes():
    net = small_net(4)
    x, y = torch.rand(4000, 1, 6, 6), torch.zeros(4000, dtype=torch.long)
    t = TLAT(0.02, num_classes=4).make_pairs(net, x, y, make_generator(0))['target']
    counts = torch.bincount(t, minlength=4).double() / 4000
    # seeded; each share is binomial: within 5 standard errors, 5 * sqrt(0.25 * 0.75 / 4000) = 0.034, of 1/4
    assert ((counts - 0.25).abs() < 5 * (0.25 * 0.75 / 4000) ** 0.5).all(), counts


def test_ablations_differ_only_in_attack_and_label():
    net = small_net(4)
    x, y = torch.rand(8, 1, 6, 6) * 0.8 + 0.1, torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    f = FGSMAT(0.03, num_classes=4).make_pairs(net, x, y, make_generator(1))
    e = float(f['eps'])
    assert torch.allclose(f['x_adv'], (x + e * input_grad(net, x, y).sign()).clamp(0, 1), rtol=0, atol=IMAGES)
    assert torch.equal(f['y_adv'], F.one_hot(y, 4).float()) and f['target'] is None
    with torch.no_grad():  # untargeted: the true-class loss rises
        assert F.cross_entropy(net(f['x_adv']), y) > F.cross_entropy(net(x), y)
    t = TargetFGSMAT(0.03, num_classes=4).make_pairs(net, x, y, make_generator(1))
    assert torch.equal(t['y_adv'], F.one_hot(y, 4).float())
    ls = LabelSmoothingAT(0.03, num_classes=4).make_pairs(net, x, y, make_generator(1))
    assert torch.allclose(ls['x_adv'], t['x_adv']) and torch.equal(ls['target'], t['target'])  # same draws, same attack
    e = float(ls['eps'])
    assert torch.allclose(ls['y_adv'], (1 - e) * F.one_hot(y, 4) + e / 4, rtol=0, atol=IMAGES)
    assert torch.allclose(ls['y_adv'].sum(1), torch.ones(8), rtol=0, atol=IMAGES)


def test_adversarial_training_loss_is_clean_half_plus_adversarial_half():
    net = small_net(4)
    x, y = torch.rand(10, 1, 6, 6), torch.arange(10) % 4
    obj = TLAT(0.02, num_classes=4)
    state = TrainState(generator=make_generator(7))
    loss, logs = obj(net, (x, y), state)
    p = TLAT(0.02, num_classes=4).make_pairs(net, x[5:], y[5:], make_generator(7))
    want = F.cross_entropy(net(x[:5]), y[:5]) + soft_cross_entropy(net(p['x_adv']), p['y_adv'])
    torch.testing.assert_close(loss, want, rtol=LOSSES, atol=0)


# ---------------------------------------------------------------- M-TLAT

def test_mtlat_follows_algorithm_1(fm_small):
    model, train, _ = fm_small
    x, y = train[0:64]
    mt = MTLAT(0.4, 0.025, num_classes=10)
    p = mt.make_pairs(model, x, y, make_generator(11))
    lam1, lam2, e = float(p['lam1']), float(p['lam2']), float(p['eps'])
    x12, x34 = x[:32], x[32:]
    y12, y34 = F.one_hot(y[:32], 10).float(), F.one_hot(y[32:], 10).float()
    assert torch.allclose(p['x_mix1'], lam1 * x12 + (1 - lam1) * x12[p['perm1']], rtol=0, atol=IMAGES)
    assert torch.allclose(p['y_mix1'], lam1 * y12 + (1 - lam1) * y12[p['perm1']], rtol=0, atol=IMAGES)
    x_mix2 = lam2 * x34 + (1 - lam2) * x34[p['perm2']]
    y_mix2 = lam2 * y34 + (1 - lam2) * y34[p['perm2']]
    assert torch.allclose(p['x_mix2'], x_mix2, rtol=0, atol=IMAGES)
    # mix first, then attack the mixed image toward the target; the label mixes in the target with weight eps (the
    # gradient taken at the method's own mixed images: at ours, a rounding apart, a sign could flip where it is ~0)
    g = input_grad(model, p['x_mix2'], p['target'])
    assert torch.allclose(p['x_mtlat'], (p['x_mix2'] - e * g.sign()).clamp(0, 1), rtol=0, atol=IMAGES)
    assert torch.allclose(p['y_mtlat'], (1 - e) * y_mix2 + e * F.one_hot(p['target'], 10), rtol=0, atol=IMAGES)
    for k in ('y_mix1', 'y_mtlat'): assert torch.allclose(p[k].sum(1), torch.ones(32), rtol=0, atol=IMAGES)
    assert 0 <= e <= 0.025 and 0 <= lam1 <= 1 and 0 <= lam2 <= 1


def test_mtlat_adversarial_half_moves_toward_the_target(fm_small):
    model, train, _ = fm_small
    x, y = train[0:256]
    mt = MTLAT(0.4, 0.025, num_classes=10)
    mt.uniform = lambda g, n, hi, device: torch.full((n,), 0.02)  # a fixed, non-zero eps
    p = mt.make_pairs(model, x, y, make_generator(0))
    with torch.no_grad():
        before = F.cross_entropy(model(p['x_mix2']), p['target'], reduction='none')
        after = F.cross_entropy(model(p['x_mtlat']), p['target'], reduction='none')
        p_before = model(p['x_mix2']).softmax(1).gather(1, p['target'][:, None])
        p_after = model(p['x_mtlat']).softmax(1).gather(1, p['target'][:, None])
    assert after.mean() < before.mean()
    assert (after < before).float().mean() > 0.9
    assert p_after.mean() > p_before.mean()


def test_mtlat_loss_is_loss1_plus_loss2_and_reproducible():
    net = small_net(4)
    x, y = torch.rand(12, 1, 6, 6), torch.arange(12) % 4
    loss, logs = MTLAT(num_classes=4)(net, (x, y), TrainState(generator=make_generator(4)))
    p = MTLAT(num_classes=4).make_pairs(net, x, y, make_generator(4))
    want = soft_cross_entropy(net(p['x_mix1']), p['y_mix1']) + soft_cross_entropy(net(p['x_mtlat']), p['y_mtlat'])
    torch.testing.assert_close(loss, want, rtol=LOSSES, atol=0)
    loss2, _ = MTLAT(num_classes=4)(net, (x, y), TrainState(generator=make_generator(4)))
    assert torch.equal(loss, loss2)


def test_training_is_reproducible_on_cpu():
    data = load_dataset('fashion_mnist', 'train').take(256, seed=1)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(fit(LeNet(), data, epochs=1, batch_size=64, objective=MTLAT(num_classes=10), device='cpu', progress=False).train_loss.tolist())
    assert runs[0] == runs[1]


# ---------------------------------------------------------------- IAT

def test_iat_perturbs_then_mixes():
    net = small_net(4)
    x, y = torch.rand(16, 1, 6, 6) * 0.8 + 0.1, torch.arange(16) % 4
    p = IAT(0.4, 0.03, num_classes=4).make_pairs(net, x, y, make_generator(2))
    e = float(p['eps'])
    # adversarial examples from the unmixed batch with its true labels (untargeted)...
    assert torch.allclose(p['x_adv'], (x + e * input_grad(net, x, y).sign()).clamp(0, 1), rtol=0, atol=IMAGES)
    # ... then a fresh Mixup (own lambda and partners) with plain Mixup labels
    l2 = float(p['lam2'])
    assert torch.allclose(p['x_adv_mix'], l2 * p['x_adv'] + (1 - l2) * p['x_adv'][p['perm2']], rtol=0, atol=IMAGES)
    y1 = F.one_hot(y, 4).float()
    assert torch.allclose(p['y_adv_mix'], l2 * y1 + (1 - l2) * y1[p['perm2']], rtol=0, atol=IMAGES)
    assert torch.allclose(p['y_adv_mix'].sum(1), torch.ones(16), rtol=0, atol=IMAGES)
    # the other order (mix, then attack the mixed images) gives different images
    mixed = l2 * x + (1 - l2) * x[p['perm2']]
    y_mixed = l2 * y1 + (1 - l2) * y1[p['perm2']]
    xm = mixed.clone().requires_grad_(True)
    soft_cross_entropy(net(xm), y_mixed, reduction='sum').backward()
    other = (mixed + e * xm.grad.sign()).clamp(0, 1)
    if e > 1e-3: assert not torch.allclose(other, p['x_adv_mix'], rtol=0, atol=IMAGES)
    loss, logs = IAT(0.4, 0.03, num_classes=4)(net, (x, y), TrainState(generator=make_generator(2)))
    assert torch.allclose(loss, (logs['loss_clean'] + logs['loss_adv']) / 2)
    want = (soft_cross_entropy(net(p['x_mix']), p['y_mix']) + soft_cross_entropy(net(p['x_adv_mix']), p['y_adv_mix'])) / 2
    torch.testing.assert_close(loss, want, rtol=LOSSES, atol=0)


@pytest.mark.parametrize('per_sample', [False, True])
def test_iat_pgd_is_clipped_fgsm_steps(per_sample):
    """IAT's PGD, recomputed as a loop of FGSM steps of 2.5 eps / steps, each clipped to [0, 1] and then projected onto
    the eps-ball: the same images, bit for bit. Clipping to [0, 1] before the projection or only after it gives the same
    floats wherever eps <= 1/2: a difference to x that is cut to [0, 1] first is 1 - x or -x, exact in float32 for the x
    that can reach the box's edge within eps (Sterbenz), and rounding is monotone in what is cut by the ball."""
    net = small_net(4)
    torch.manual_seed(1)
    x, y = torch.rand(16, 1, 6, 6), torch.arange(16) % 4
    x[:, :, :2] = 1.0; x[:, :, -2:] = 0.0      # pixels at the box's edges
    y1 = F.one_hot(y, 4).float()
    iat = IAT(0.4, 0.45, steps=5, per_sample=per_sample, num_classes=4)
    eps = iat.draw_eps(make_generator(3), 16, x.device)
    e = torch.as_tensor(eps).view(-1, 1, 1, 1) if per_sample else eps
    xa = x
    for _ in range(5):
        xg = xa.clone().requires_grad_(True)
        soft_cross_entropy(net(xg), y1, reduction='sum').backward()
        xa = (xa + 2.5 * e / 5 * xg.grad.sign()).clamp(0, 1)
        xa = (x + (xa - x).clamp(-e, e)).clamp(0, 1)
    assert torch.equal(iat.attack(net, x, y1, eps), xa)


def test_training_time_attacks_see_the_batch_statistics():
    """In training mode the attacks run the network as it is (BatchNorm on the batch's statistics, running statistics
    updated once per forward pass, as in the training step) and leave it in training mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 4)).train()
    x, y = torch.rand(8, 1, 6, 6), torch.arange(8) % 4
    ref = copy.deepcopy(net)
    p = TLAT(0.05, num_classes=4).make_pairs(net, x, y, make_generator(0))
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(ref(xg), p['target'], reduction='sum').backward()
    assert torch.equal(p['x_adv'], (x - p['eps'] * xg.grad.sign()).clamp(0, 1))
    assert net.training and torch.equal(net[1].running_mean, ref[1].running_mean)


# ---------------------------------------------------------------- the benchmark

def test_benchmark_scores_equal_recomputed_accuracy_ratios(fm_small):
    model, train, test = fm_small
    x, y = test.tensors()
    torch.manual_seed(1)
    surrogate = LeNet(channels=(8, 16))
    fit(surrogate, train, epochs=1, batch_size=100, device='cpu', progress=False)
    surrogate.eval()
    b = ex.perturbation_benchmark(model, test, surrogate=surrogate, cw_search_steps=1, seed=3)
    assert list(b) == ['clean'] + ex.PERTURBATIONS and len(ex.PERTURBATIONS) == 24
    clean = accuracy(model, (x, y))
    assert b['clean'] == pytest.approx(clean)
    for c in SUITES['mtlat19']:
        acc = np.mean([accuracy(model, (CORRUPTIONS[c](x, s, make_generator(corruption_seed(3, c, s))), y)) for s in range(1, 6)])
        assert b[c] == pytest.approx(acc / clean, abs=1e-12), c
    att = {'pgd': robust_accuracy(model, (x, y), pgd, eps=0.04, steps=10, random_start=True, generator=make_generator(3)),  # one stream of starts
           'pgd_ll': robust_accuracy(model, (x, y), pgd_ll, eps=0.04, steps=10),
           'cw_l2': robust_accuracy(model, (x, y), cw_l2, steps=40, confidence=50., search_steps=1),
           'mi_fgsm_0.04': robust_accuracy(model, (x, y), mi_fgsm, surrogate=surrogate, eps=0.04, steps=10),
           'mi_fgsm_0.08': robust_accuracy(model, (x, y), mi_fgsm, surrogate=surrogate, eps=0.08, steps=10)}
    for k, a in att.items(): assert b[k] == pytest.approx(a / clean, abs=1e-12), k
    assert b['pgd'] < 1 and b['mi_fgsm_0.08'] <= b['mi_fgsm_0.04'] + 0.05


def test_benchmark_table_markers_and_claims():
    recs = pd_records()
    tab = ex.benchmark_table(recs)
    assert tab.loc['standard', 'pgd'] == 0.2 and tab.loc['mtlat', 'pgd'] == '0.4+' and tab.loc['mixup', 'pgd'] == '0.1-'
    assert tab.loc['mtlat', 'clean'] == '80+' and tab.loc['mixup', 'clean'] == '79-'
    cl = ex.mtlat_claims(recs)
    assert cl['mtlat_raises_every_score'] is True and cl['mtlat_keeps_clean_accuracy'] is True
    assert cl['tlat_keeps_more_clean_accuracy_than_fgsm_target_fgsm_ls'] is False  # LS beats TLAT in these records
    abl = ex.ablation_table(recs)
    assert list(abl.index) == ['standard', 'fgsm', 'target_fgsm', 'ls', 'tlat'] and abl.loc['ls', 'clean'] == 78.0


def pd_records():
    import pandas as pd
    rows = [dict(method='standard', seed=0, clean=0.795, pgd=0.2, cw_l2=0.5), dict(method='mixup', seed=0, clean=0.79, pgd=0.1, cw_l2=0.5),
            dict(method='mtlat', seed=0, clean=0.80, pgd=0.4, cw_l2=0.6), dict(method='tlat', seed=0, clean=0.77, pgd=0.3, cw_l2=0.7),
            dict(method='fgsm', seed=0, clean=0.70), dict(method='target_fgsm', seed=0, clean=0.72), dict(method='ls', seed=0, clean=0.78)]
    return pd.DataFrame(rows)


def test_reproduce_writes_records_tables_cost_and_figures(tmp_path):
    r = ex.MTLATRecipe.quick(train_size=200, eval_size=48, epochs=1, cost_steps=2, methods=('standard', 'mtlat'),
                             ablations=('standard', 'tlat'), device='cpu')
    res = ex.reproduce_mtlat(r, out=tmp_path, variant='test', log=None)
    stem = tmp_path / 'mtlat_fmnist_test'
    for suffix in ('.json', '.csv', '_scores.png', '_pair.png'): assert (tmp_path / f'mtlat_fmnist_test{suffix}').exists()
    js = json.loads((tmp_path / 'mtlat_fmnist_test.json').read_text())
    recs = js['records']
    assert {r['method'] for r in recs} == {'standard', 'mtlat', 'tlat'}
    for rec in recs:
        assert {'method', 'seed', 'clean'} <= set(rec)
        if rec['method'] in ('standard', 'mtlat'): assert all(rec[p] is not None for p in ex.PERTURBATIONS)
    cost = js['step_cost']
    assert set(cost['seconds_per_step']) == {'standard', 'tlat', 'mtlat', 'iat'} and cost['ratio_to_standard']['standard'] == 1.0
    assert js['recipe']['train_size'] == 200 and js['machine']['device'] == 'cpu'


def test_cli_options():
    p = argparse.ArgumentParser(); ex.add_arguments(p)
    a = p.parse_args(['--dataset', 'cifar10', '--seeds', '3', '--quick', '--device', 'cpu', '--out', 'x'])
    assert (a.dataset, a.seeds, a.quick, a.full, a.device, a.out) == ('cifar10', 3, True, False, 'cpu', 'x')
    with pytest.raises(SystemExit): p.parse_args(['--quick', '--full'])
    with pytest.raises(SystemExit): p.parse_args(['--dataset', 'mnist'])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize('make', [lambda: Mixup(0), lambda: Mixup(-0.4), lambda: MTLAT(alpha=0, num_classes=4), lambda: IAT(alpha=-1, num_classes=4)])
def test_alpha_must_be_positive(make):
    with pytest.raises(ValueError, match='alpha: must be > 0'): make()


@pytest.mark.parametrize('make', [lambda: TLAT(-0.01, num_classes=4), lambda: MTLAT(eps_max=-1e-3, num_classes=4), lambda: IAT(eps_max=-0.1, num_classes=4),
                                  lambda: FGSMAT(-0.5, num_classes=4), lambda: TargetFGSMAT(-1, num_classes=4),
                                  lambda: LabelSmoothingAT(-0.2, num_classes=4)])
def test_eps_max_negative(make):
    with pytest.raises(ValueError, match='eps_max: must be >= 0'): make()


@pytest.mark.parametrize('make', [lambda: TLAT(1.01, num_classes=4), lambda: MTLAT(eps_max=2.0, num_classes=4), lambda: IAT(eps_max=255.0, num_classes=4)])
def test_eps_max_beyond_the_image_range(make):
    with pytest.raises(ValueError, match='eps_max: must be <= 1'): make()


def test_soft_labels_that_do_not_sum_to_one():
    net = small_net(3)
    x, bad = torch.rand(4, 1, 6, 6), torch.tensor([[0.5, 0.5, 0.0], [0.6, 0.6, 0.0], [1., 0, 0], [0, 1., 0]])
    for call in (lambda: Mixup(0.4)(x, bad), lambda: TLAT(num_classes=3)(net, (x, bad)), lambda: MTLAT(num_classes=3)(net, (x, bad)),
                 lambda: IAT(num_classes=3)(net, (x, bad)), lambda: check_soft_labels(bad)):
        with pytest.raises(ValueError, match='y: soft labels must sum to one'): call()
    good = torch.tensor([[0.5, 0.5, 0.0], [0.3, 0.3, 0.4], [1., 0, 0], [0, 1., 0]])
    assert torch.isfinite(MTLAT(num_classes=3)(net, (x, good))[0])


def test_surrogate_with_other_classes(fm_small):
    model, _, test = fm_small
    with pytest.raises(ValueError, match='surrogate: outputs 7 classes but model outputs 10'):
        ex.perturbation_benchmark(model, test, surrogate=LeNet(num_classes=7), corruptions=[])


def test_other_bad_input():
    net = small_net(4)
    with pytest.raises(ValueError, match='batch: needs at least 2 images'): TLAT(num_classes=4)(net, (torch.rand(1, 1, 6, 6), torch.tensor([0])))
    with pytest.raises(ValueError, match="attack: unknown value"): AdversarialTraining(attack='pgd', num_classes=4)
    with pytest.raises(ValueError, match="labels: 'tlat' needs attack='targeted'"): AdversarialTraining(attack='untargeted', labels='tlat', num_classes=4)
    with pytest.raises(ValueError, match='data: expected an ImageData or a pair'): ex.perturbation_benchmark(net, torch.rand(3, 1, 6, 6))
    with pytest.raises(ValueError, match="methods: unknown value 'magic'"): ex.run_mtlat(ex.MTLATRecipe(methods=('magic',)), log=None)
    with pytest.raises(ValueError, match="dataset: unknown value 'svhn'"): ex.MTLATRecipe(dataset='svhn').model_name()
