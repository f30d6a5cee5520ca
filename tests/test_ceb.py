"""CEB and VIB (issue 6): the losses against torch.distributions, their noise averages, their large-rho limits, the
rho schedules, the rate estimator's isolation from the model, the mixture density, and bad input."""
import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from robust_nb.core import make_generator
from robust_nb.models import EmbedHead, LeNet
from robust_nb.train import TrainState
from robust_nb.methods.ceb import (CEB, VIB, ConstantRho, Deterministic, GaussianMixture, JumpStart, RateEstimator,
                                   StepAnneal, StochasticHead, ceb_log_ratio, ceb_loss, gaussian_log_prob, information,
                                   vib_loss)


def small_head(d=5, marginal=0, seed=0):
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh())
    return StochasticHead(EmbedHead(body, nn.Linear(12, 4)), d=d, num_classes=4, marginal=marginal, embed_dim=12).double()


def batch(n=7, seed=0):
    g = make_generator(seed)
    return torch.rand(n, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


def dist_log_ratio(f, z, mu):
    "log e(z|x) - log b(z|y) with torch.distributions (unit-variance diagonal Gaussians)."
    return Independent(Normal(f, 1.0), 1).log_prob(z) - Independent(Normal(mu, 1.0), 1).log_prob(z)


# Tolerances. Where both sides compute in float64, 1e-12 (relative and absolute) bounds a few hundred roundings of
# 2^-53 = 1.1e-16 on numbers of order ten, more than either side does. The objectives compute in float32: a mean over
# the batch of a log-softmax over 4 classes plus a log-ratio summed over d <= 5 dimensions, from inputs rounded to
# float32, is at most 64 roundings of 2^-24, each relative to the size of the terms it adds.
def float32_tol(*terms):
    "Absolute tolerance for a float32 mean over the batch of the sum of these per-sample terms (float64 tensors)."
    return 64 * 2**-24 * sum(t.abs() for t in terms).mean().item()


def within_standard_errors(draws, target, k=5):
    "The mean of `draws` (a seeded Monte Carlo estimate) lies within k of its standard errors of `target`."
    draws = torch.as_tensor(draws, dtype=torch.float64)
    return abs(draws.mean().item() - float(target)) < k * draws.std().item() / len(draws) ** 0.5


# ---------------------------------------------------------------- CEB loss

@pytest.mark.parametrize('rho', [-1.0, 0.0, 2.5])
def test_ceb_loss_equals_log_ratio_plus_ce_with_distributions(rho):
    g = make_generator(3)
    B, d, K = 9, 6, 5
    f, mu, eps = (torch.randn(B, d, generator=g, dtype=torch.float64) for _ in range(3))
    W, y = torch.randn(K, d, generator=g, dtype=torch.float64), torch.randint(0, K, (B,), generator=g)
    z = f + eps
    logits = z @ W.T
    ce = -Categorical(logits=logits).log_prob(y)
    expected = ce + math.exp(-rho) * dist_log_ratio(f, z, mu)
    torch.testing.assert_close(ceb_loss(logits, y, f, eps, mu, rho, reduction='none'), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ceb_loss(logits, y, f, eps, mu, rho), expected.mean(), rtol=1e-12, atol=1e-12)
    # Eq. 8 as printed (with the 1/2 on the second term) is the same number
    eq8 = ce + math.exp(-rho) / 2 * ((f - mu) * (f - mu + 2 * eps)).sum(-1)
    torch.testing.assert_close(eq8, expected, rtol=1e-12, atol=1e-12)


def test_ceb_objective_equals_independent_computation():
    model = small_head()
    x, y = batch()
    loss, logs = CEB(rho=0.7)(model, (x, y), TrainState(generator=make_generator(11)))
    # redraw the same noise from the same seed and recompute everything from the model's layers
    f = model.encoder(model.trunk.embed(x))
    z = f + torch.randn(f.shape, generator=make_generator(11), dtype=torch.float32).double()
    mu = model.class_means.weight.T[y]
    ce, kl = -Categorical(logits=model.fc(z)).log_prob(y), math.exp(-0.7) * dist_log_ratio(f, z, mu)
    torch.testing.assert_close(loss.double(), (ce + kl).mean(), rtol=0, atol=float32_tol(ce, kl))
    assert logs['rho'] == 0.7


def test_ceb_term_mean_over_noise_is_half_squared_distance():
    g = make_generator(5)
    f, mu = torch.randn(3, 4, generator=g, dtype=torch.float64) * 2, torch.randn(3, 4, generator=g, dtype=torch.float64)
    n = 400_000
    eps = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    draws = ceb_log_ratio(f, eps, mu)                       # [n, 3]
    target = 0.5 * (f - mu).pow(2).sum(-1)
    # the term is linear in eps: variance ||f - mu||^2 per draw, so the mean is within 5 standard errors
    se = (f - mu).norm(dim=-1) / math.sqrt(n)
    assert ((draws.mean(0) - target).abs() < 5 * se).all()
    # and the KL divergence of the two Gaussians, from torch.distributions
    kl = torch.distributions.kl_divergence(Independent(Normal(f, 1.0), 1), Independent(Normal(mu, 1.0), 1))
    torch.testing.assert_close(target, kl)


def test_ceb_objective_mean_over_noise_approaches_ce_plus_kl():
    model = small_head()
    x, y = batch(4)
    rho = 0.0
    with torch.no_grad():
        f, mu = model.embed(x), model.mu(y)
        losses = [CEB(rho)(model, (x, y), TrainState(generator=make_generator(s)))[0] - F.cross_entropy(
                  model.head(f + torch.randn(f.shape, generator=make_generator(s)).double()), y) for s in range(3000)]
    target = 0.5 * (f - mu).pow(2).sum(-1).mean()
    assert within_standard_errors(torch.stack(losses), target), (torch.stack(losses).mean(), target)


@pytest.mark.parametrize('cls', ['ceb', 'vib'])
def test_large_rho_gives_cross_entropy_on_z(cls):
    model = small_head(marginal=3)
    x, y = batch()
    obj = CEB(60.0) if cls == 'ceb' else VIB(60.0)
    loss, _ = obj(model, (x, y), TrainState(generator=make_generator(2)))
    f, eps = model.sample(x, make_generator(2))
    ce = F.cross_entropy(model.head(f + eps), y)
    # exp(-60) (CEB) or sigmoid(-60) (VIB) times the rate is below 1e-25: what is left is the float32 computation
    ces = F.cross_entropy(model.head(f + eps), y, reduction='none')
    torch.testing.assert_close(loss.double(), ce.double(), rtol=0, atol=float32_tol(ces))
    # and the distance to it shrinks as rho grows: it is exp(-rho) (VIB: sigmoid(-rho)) times the batch's mean rate,
    # plus float32 rounding far below that here, and exp(-10) / exp(0) = 4.5e-5
    gaps = [abs(float((CEB(r) if cls == "ceb" else VIB(r))(model, (x, y), TrainState(generator=make_generator(2)))[0].detach() - ce.detach()))
            for r in (0.0, 2.0, 5.0, 10.0)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3 * gaps[0]


# ---------------------------------------------------------------- VIB loss

def test_vib_loss_equals_distributions():
    g = make_generator(4)
    B, d, K, C = 8, 3, 4, 5
    f, eps = torch.randn(B, d, generator=g, dtype=torch.float64), torch.randn(B, d, generator=g, dtype=torch.float64)
    z = f + eps
    logits, y = torch.randn(B, K, generator=g, dtype=torch.float64), torch.randint(0, K, (B,), generator=g)
    m = GaussianMixture(d, C).double()
    with torch.no_grad():
        m.loc.normal_(generator=g); m.log_scale.uniform_(-0.5, 0.5, generator=g); m.logits.normal_(generator=g)
    mix = MixtureSameFamily(Categorical(logits=m.logits), Independent(Normal(m.loc, m.log_scale.exp()), 1))
    torch.testing.assert_close(m.log_prob(z), mix.log_prob(z), rtol=1e-10, atol=1e-10)
    log_e = Independent(Normal(f, 1.0), 1).log_prob(z)
    torch.testing.assert_close(gaussian_log_prob(z, f), log_e)
    for rho in (-2.0, 0.0, 3.0):
        expected = -Categorical(logits=logits).log_prob(y) + torch.sigmoid(torch.tensor(-rho, dtype=torch.float64)) * (log_e - mix.log_prob(z))
        torch.testing.assert_close(vib_loss(logits, y, log_e, m.log_prob(z), rho, reduction='none'), expected, rtol=1e-10, atol=1e-10)


def test_vib_objective_equals_independent_computation():
    model = small_head(marginal=3)
    x, y = batch()
    loss, logs = VIB(1.3)(model, (x, y), TrainState(generator=make_generator(8)))
    f = model.embed(x)
    z = f + torch.randn(f.shape, generator=make_generator(8)).double()
    mg = model.marginal
    mix = MixtureSameFamily(Categorical(logits=mg.logits), Independent(Normal(mg.loc, mg.log_scale.exp()), 1))
    rate = Independent(Normal(f, 1.0), 1).log_prob(z) - mix.log_prob(z)
    ce, kl = -Categorical(logits=model.head(z)).log_prob(y), rate / (1 + math.exp(1.3))
    torch.testing.assert_close(loss.double(), (ce + kl).mean(), rtol=0, atol=float32_tol(ce, kl))
    torch.testing.assert_close(logs['kl'].double(), rate.mean(), rtol=0, atol=float32_tol(rate))


def test_vib_rate_mean_over_noise_bounds_kl_to_marginal():
    "With a single-component standard-normal marginal, the mean one-sample rate is KL(N(f, I) || N(0, I)) = ||f||^2 / 2."
    model = small_head(marginal=1)
    with torch.no_grad(): model.marginal.loc.zero_(); model.marginal.log_scale.zero_()
    x, y = batch(3)
    kls = torch.stack([VIB(0.0)(model, (x, y), TrainState(generator=make_generator(s)))[1]['kl'] for s in range(3000)])
    with torch.no_grad(): target = 0.5 * model.embed(x).pow(2).sum(-1).mean()
    assert within_standard_errors(kls.detach(), target), (kls.mean(), target)


def test_deterministic_is_plain_cross_entropy_on_mean_encoding():
    model = small_head()
    x, y = batch()
    loss, logs = Deterministic()(model, (x, y))
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))
    torch.testing.assert_close(model(x), model.fc(model.encoder(model.trunk.embed(x))))


# ---------------------------------------------------------------- schedules

def test_constant_and_step_anneal():
    assert [ConstantRho(-0.5)(TrainState(step=s)) for s in (0, 10 ** 6)] == [-0.5, -0.5]
    sa = StepAnneal(target=0.0, start=100.0, steps=10_000)
    assert [sa(TrainState(step=s)) for s in (0, 2500, 5000, 10_000, 20_000)] == [100.0, 75.0, 50.0, 0.0, 0.0]


def test_jump_start_stated_values():
    spe = 50
    js = JumpStart(target=3.0, start=100.0, middle=10.0, first_epochs=2, final_epochs=1, threshold=0.2, smoothing=0.0)
    st = TrainState(steps_per_epoch=spe)
    seen = {}
    for step in range(0, 8 * spe + 1):
        st.step = step
        seen[step] = js(st)
        js.observe(0.1 if step < 4 * spe else 0.3, st)       # accuracy passes 20% at epoch 4
    assert seen[0] == 100.0 and seen[spe] == 55.0 and seen[2 * spe] == 10.0
    assert all(seen[s] == 10.0 for s in range(2 * spe, 4 * spe + 1))   # held at 10 while accuracy <= 20%
    assert js.began == 4.0
    assert abs(seen[4 * spe + spe // 2] - 6.5) < 1e-9                   # half-way through the final epoch
    assert seen[5 * spe] == 3.0 and seen[8 * spe] == 3.0
    # accuracy already high: the final anneal starts right after the first phase
    js2, st2 = JumpStart(target=0.0, smoothing=0.0), TrainState(steps_per_epoch=10)
    for step in range(0, 40):
        st2.step = step; js2(st2); js2.observe(0.9, st2)
    st2.step = 30; assert js2(st2) == 0.0 and js2.began == 2.0
    # state round trip (checkpoints)
    js3 = JumpStart(target=3.0); js3.load_checkpoint_state(js.checkpoint_state()); st.step = 4 * spe + spe // 2
    assert js3(st) == js(st)


def test_schedule_drives_the_objective_weight():
    model = small_head()
    x, y = batch()
    obj = CEB(StepAnneal(target=0.0, start=10.0, steps=10))
    _, logs0 = obj(model, (x, y), TrainState(step=0, generator=make_generator(0)))
    _, logs1 = obj(model, (x, y), TrainState(step=10, generator=make_generator(0)))
    assert (logs0['rho'], logs1['rho']) == (10.0, 0.0)


# ---------------------------------------------------------------- rate estimator

def test_marginal_optimizer_leaves_model_bit_identical():
    model = small_head(d=5)
    x, y = batch(32)
    est = RateEstimator(5, 4, components=3, lr=0.1)
    obj = CEB(0.0, rate=est)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    est_before = [p.clone() for p in est.parameters()]
    for s in range(5):
        _, logs = obj(model, (x, y), TrainState(generator=make_generator(s)))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())          # nothing even reached the model's gradients
    assert any(not torch.equal(a, b) for a, b in zip(est_before, est.parameters()))   # the densities did move
    assert {'rate', 'residual'} <= set(logs)
    # and the estimator's optimiser holds only its own parameters
    own = {id(p) for p in est.parameters()}
    assert all(id(p) in own for g in est.optimizer.param_groups for p in g['params'])
    assert not own & {id(p) for p in model.parameters()}


def test_rate_estimate_on_known_encoder():
    "Ten separated class centres: I(X;Z) -> ln 10 and I(X;Z|Y) -> 0; one centre for all: both -> 0."
    g = make_generator(1)
    centres = 40 * torch.randn(10, 3, generator=g)
    y = torch.randint(0, 10, (2000,), generator=g)
    data_f = centres[y]

    class Fixed(StochasticHead):
        def embed(self, x): return data_f[x.flatten(1)[:, 0].long()]
    model = Fixed(LeNet(), d=3)
    idx = torch.arange(2000, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    out = information(model, (idx, y), steps=400, lr=5e-2)
    assert abs(out['rate'] - math.log(10)) < 0.15 and abs(out['residual']) < 0.1, out
    data_f = torch.zeros(2000, 3)
    out = information(model, (idx, y), steps=200, lr=5e-2)
    assert abs(out['rate']) < 0.05 and abs(out['residual']) < 0.1, out


def test_objective_checkpoint_round_trip():
    model = small_head(d=5)
    x, y = batch(16)
    a = CEB(JumpStart(0.0), rate=RateEstimator(5, 4, components=2))
    st = TrainState(steps_per_epoch=2)
    for s in range(3):
        st.step, st.generator = s, make_generator(s); a(model, (x, y), st)
    b = CEB(JumpStart(0.0), rate=RateEstimator(5, 4, components=2))
    b.load_checkpoint_state(a.checkpoint_state())
    st.step, st.generator = 3, make_generator(9); la = a(model, (x, y), st)[1]
    st.generator = make_generator(9); lb = b(model, (x, y), st)[1]
    assert float(la['rate']) == float(lb['rate']) and la['rho'] == lb['rho']


# ---------------------------------------------------------------- bad input

def test_bad_input():
    model = small_head(marginal=2)
    x, y = batch()
    with pytest.raises(ValueError, match='rho: must be finite'): CEB(float('nan'))
    with pytest.raises(ValueError, match='rho: must be finite'): VIB(float('inf'))
    with pytest.raises(ValueError, match='rho: must be finite'): ceb_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4), float('-inf'))
    with pytest.raises(ValueError, match='target: must be finite'): JumpStart(float('nan'))
    with pytest.raises(ValueError, match='d: must be >= 1'): StochasticHead(LeNet(), d=0)
    with pytest.raises(ValueError, match='d: expected an integer'): StochasticHead(LeNet(), d=2.5)
    with pytest.raises(ValueError, match=r'y: labels must lie in \[0, 3\]'): CEB(0.0)(model, (x, y + 4), TrainState())
    with pytest.raises(ValueError, match=r'y: labels must lie in \[0, 3\]'): VIB(0.0)(model, (x, -1 - y), TrainState())
    with pytest.raises(ValueError, match=r'y: labels must lie'): Deterministic()(model, (x, y + 4))
    with pytest.raises(ValueError, match='model: needs `embed'): StochasticHead(nn.Linear(16, 4), d=3)
    with pytest.raises(ValueError, match='model: needs `embed'): CEB(0.0)(nn.Linear(16, 4), (x, y), TrainState())
    with pytest.raises(ValueError, match='model: VIB needs a learned marginal'): VIB(0.0)(small_head(marginal=0), (x, y), TrainState())
    with pytest.raises(ValueError, match='reduction'): ceb_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4), 0.0, reduction='avg')
