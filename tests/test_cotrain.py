"""Co-training (issue 8): L_g (Eq. 9) is zero exactly when g(x) = x is already adversarial, the L_f regulariser (Eq. 10)
shrinks as g(x) moves away, the cross-Lipschitz term against a brute-force sum over class pairs, the alternating updates of
Algorithm 1 leave the other model untouched, resumption, lambda selection and bad input."""
import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from robust_nb.core import derive_seed
from robust_nb.data import ImageData
from robust_nb.methods.cotrain import (CoTraining, CrossLipschitz, classifier_loss, cross_lipschitz, generator_loss,
                                       robustness_regularizer, select_lambda)
from robust_nb.models import TiboCNN, TiboGenerator
from robust_nb.train import TrainState, fit


def linear_model(K=3, D=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(D, K)).double()


def tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData((torch.rand(n, 1, 16, 16, generator=g) * 255).to(torch.uint8), torch.arange(n) % 3, name='tiny')


def tiny_f(seed=0):
    torch.manual_seed(seed)
    return TiboCNN(in_channels=1, num_classes=3, image_size=16, channels=4, embed_dim=8)


def tiny_g(seed=1):
    torch.manual_seed(seed)
    return TiboGenerator(in_channels=1, channels=4, layers=1)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- L_g (Eq. 9)

def test_generator_loss_zero_when_identity_is_already_adversarial():
    model = linear_model()
    x = torch.rand(8, 1, 2, 2, dtype=torch.float64)
    with torch.no_grad(): pred = model(x).argmax(1)
    other = (pred + 1) % 3                       # a label that f does not give x: g(x) = x is adversarial for it
    torch.testing.assert_close(generator_loss(model, x, x.clone(), labels=other), torch.zeros(8, dtype=torch.float64), rtol=0, atol=0)


def test_generator_loss_zero_on_a_tie_with_identity():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0., 0, 0, 0], [1, 1, 1, 1]])); model[1].bias.copy_(torch.tensor([0., -2]))
    x = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)           # logits (0, 0): on the boundary
    assert generator_loss(model, x, x.clone()).item() == 0.0


def test_generator_loss_positive_otherwise():
    model = linear_model()
    torch.manual_seed(3)
    x = torch.rand(32, 1, 2, 2, dtype=torch.float64)
    # g(x) = x, not adversarial: the loss is the probability gap between f's class and the runner-up
    lg = generator_loss(model, x, x.clone())
    p = F.softmax(model(x), 1).sort(1, descending=True).values
    torch.testing.assert_close(lg, p[:, 0] - p[:, 1])
    assert (lg > 0).all()
    # g(x) != x: positive, and exactly the distance term where g(x) is adversarial
    gx = (x + 0.3 * torch.randn(x.shape, dtype=torch.float64)).clamp(0, 1)
    lg2 = generator_loss(model, x, gx)
    assert (lg2 > 0).all()
    with torch.no_grad(): adv = model(gx).argmax(1) != model(x).argmax(1)
    assert adv.any() and (~adv).any()
    half_sq = 0.5 * (gx - x).flatten(1).pow(2).sum(1)
    torch.testing.assert_close(lg2[adv], half_sq[adv])
    assert (lg2[~adv] > half_sq[~adv]).all()


def test_generator_loss_uses_the_runner_up_at_gx():
    "j is the second class at g(x): recompute Eq. 9 literally with a sort."
    model = linear_model(K=5, seed=4)
    x, gx = torch.rand(16, 1, 2, 2, dtype=torch.float64), torch.rand(16, 1, 2, 2, dtype=torch.float64)
    i = model(x).argmax(1)
    p = F.softmax(model(gx), 1)
    order = p.argsort(1, descending=True)
    j = order[:, 1]
    literal = 0.5 * (gx - x).flatten(1).pow(2).sum(1) + (p.gather(1, i[:, None]).squeeze(1) - p.gather(1, j[:, None]).squeeze(1)).clamp_min(0)
    torch.testing.assert_close(generator_loss(model, x, gx), literal)


# ---------------------------------------------------------------- L_f (Eq. 10)

def test_regulariser_shrinks_as_gx_moves_away():
    # f is constant along v (v orthogonal to every row of W): only the distance changes along the ray x + t v
    W = torch.tensor([[1., 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False)).double()
    with torch.no_grad(): model[1].weight.copy_(W)
    x = torch.tensor([[0.2, 0.7, 0.1, 0.0]], dtype=torch.float64).view(1, 1, 2, 2)
    v = torch.tensor([0., 0, 0, 1], dtype=torch.float64).view(1, 1, 2, 2)
    regs = []
    for t in (0.0, 0.25, 0.5, 1.0, 2.0):
        gx = x + t * v
        logits = model(torch.cat([x, gx]))
        regs.append(robustness_regularizer(logits[:1], logits[1:], x, gx).item())
    assert all(a > b for a, b in zip(regs, regs[1:]))
    for t, r in zip((0.0, 0.25, 0.5, 1.0, 2.0), regs):
        assert r == pytest.approx(regs[0] / (1 + t * t), rel=1e-12)
    # and the penalty is CE(softmax f(x), softmax f(g(x))) at distance 0
    p = F.softmax(model(x), 1)
    assert regs[0] == pytest.approx(-(p * F.log_softmax(model(x), 1)).sum().item(), rel=1e-12)


def test_classifier_loss_is_log_loss_plus_lambda_penalty():
    model = linear_model()
    x, y = torch.rand(6, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    gx = (x + 0.2).clamp(0, 1)
    loss, logs = classifier_loss(model, x, y, gx, 0.7)
    lx, lg = model(x), model(gx)
    pen = (-(F.softmax(lx, 1) * F.log_softmax(lg, 1)).sum(1) / (1 + (gx - x).flatten(1).pow(2).sum(1))).mean()
    assert loss.item() == pytest.approx((F.cross_entropy(lx, y) + 0.7 * pen).item(), rel=1e-12)
    assert logs['reg'].item() == pytest.approx(pen.item(), rel=1e-12)


# ---------------------------------------------------------------- cross-Lipschitz

@pytest.mark.parametrize('K', [2, 4])
def test_cross_lipschitz_equals_brute_force_over_class_pairs(K):
    torch.manual_seed(K)
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(8, K)).double()
    x = torch.rand(5, 1, 3, 3, dtype=torch.float64)
    _, omega = cross_lipschitz(model, x, create_graph=False)
    total = 0.0
    for i in range(len(x)):
        J = torch.autograd.functional.jacobian(lambda z: model(z.view(1, 1, 3, 3))[0], x[i].flatten())   # [K, D]
        for l in range(K):
            for m in range(K):
                total += (J[l] - J[m]).pow(2).sum().item()
    assert omega.item() == pytest.approx(total / (len(x) * K * K), rel=1e-10)


def test_cross_lipschitz_objective_uses_eval_mode_and_restores_train_mode():
    model = tiny_f()
    data = tiny_data()
    x, y = data[:8]
    model.train()
    loss, logs = CrossLipschitz(0.5)(model, (x, y))
    assert model.training
    model.eval()
    _, omega = cross_lipschitz(model, x, create_graph=False)
    # float32 (TiboCNN): the same sums, perhaps in another order; rel 1e-5 is 168 roundings of 2^-24
    assert logs['reg'].item() == pytest.approx(omega.item(), rel=1e-5)
    assert loss.item() == pytest.approx(logs['nll'].item() + 0.5 * omega.item(), rel=1e-5)
    # the regulariser is differentiable with respect to the weights
    model.train()
    loss, _ = CrossLipschitz(0.5, points=4)(model, (x, y))
    loss.backward()
    assert model.body[0].weight.grad is not None and model.body[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- Algorithm 1

def test_generator_step_leaves_f_untouched():
    f, g, data = tiny_f(), tiny_g(), tiny_data()
    obj = CoTraining(g, data, lam=1.0, batch_size=8)
    f.train()
    before_f, before_g = snapshot(f), snapshot(g)
    obj.generator_step(f, data[:8][0])
    assert same(before_f, snapshot(f))                 # weights and BatchNorm statistics
    assert all(p.grad is None for p in f.parameters())
    assert all(p.requires_grad for p in f.parameters()) and f.training
    assert not same(before_g, snapshot(g))


def test_f_step_leaves_g_untouched():
    f, g, data = tiny_f(), tiny_g(), tiny_data()
    obj = CoTraining(g, data, lam=1.0, batch_size=8)
    opt = torch.optim.Adam(f.parameters(), lr=1e-2)
    state = TrainState(steps_per_epoch=8)
    for step in range(3):
        batch = data[step * 8:(step + 1) * 8]
        before_obj = snapshot(g)
        loss, logs = obj(f, batch, state)                # g's owed update happens here (from the second call on) ...
        assert same(before_obj, snapshot(g)) == (step == 0)
        after_call, f_before = snapshot(g), snapshot(f)
        g_grads = [None if p.grad is None else p.grad.clone() for p in g.parameters()]
        opt.zero_grad(); loss.backward(); opt.step()      # ... and none during f's update
        assert same(after_call, snapshot(g))
        assert all((a is None and p.grad is None) or torch.equal(a, p.grad) for a, p in zip(g_grads, g.parameters()))
        assert not same(f_before, snapshot(f))
        state.step += 1
    assert obj.g_steps == 2


def test_f_loss_does_not_reach_g():
    f, g, data = tiny_f(), tiny_g(), tiny_data()
    obj = CoTraining(g, data, lam=1.0, batch_size=8)
    for p in g.parameters(): p.grad = None
    obj.optimizer.zero_grad(set_to_none=True)
    loss, _ = obj(f, data[:8], TrainState())
    loss.backward()
    assert all(p.grad is None for p in g.parameters())


def test_generator_draws_its_own_shuffle():
    data = tiny_data(n=32)
    obj = CoTraining(tiny_g(), data, batch_size=8, seed=5)
    seen = torch.cat([obj.generator_batch('cpu') for _ in range(4)])
    x_all = data[:][0]
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(derive_seed(5, 0, 0x9)))
    torch.testing.assert_close(seen, x_all[perm])                    # one pass = one permutation of the data
    assert not torch.equal(perm, torch.arange(32))
    nxt = obj.generator_batch('cpu')                                   # the next pass is a new shuffle
    perm2 = torch.randperm(32, generator=torch.Generator().manual_seed(derive_seed(5, 1, 0x9)))
    torch.testing.assert_close(nxt, x_all[perm2[:8]])


def test_fit_with_cotraining_resumes_exactly(tmp_path):
    data = tiny_data(n=48)
    def run(epochs, resume=False, folder=tmp_path / 'ck'):
        f, g = tiny_f(), tiny_g()
        obj = CoTraining(g, data, lam=0.5, batch_size=8, seed=2)
        fit(f, data, epochs=epochs, objective=obj, batch_size=8, seed=2, progress=False, device='cpu', checkpoint_dir=folder, resume=resume)
        return snapshot(f), snapshot(g), obj
    f2, g2, o2 = run(2, folder=tmp_path / 'whole')
    run(1)
    f_r, g_r, o_r = run(2, resume=True)
    assert same(f2, f_r) and same(g2, g_r)
    assert o2.g_steps == o_r.g_steps == 2 * 6 - 1


# ---------------------------------------------------------------- lambda selection

def test_select_lambda_matches_accuracy():
    accs = {0.0: 0.93, 0.1: 0.928, 1.0: 0.90, 10.0: 0.70}
    calls = []
    choice = select_lambda(lambda l: calls.append(l) or accs[l], [0.1, 1.0, 10.0], reference=0.93)
    assert choice.lam == 0.1 and calls == [0.1, 1.0, 10.0]
    assert list(choice.table.gap.round(3)) == [-0.002, -0.03, -0.23]


# ---------------------------------------------------------------- bad input

def test_bad_input():
    data = tiny_data()
    with pytest.raises(ValueError, match='lam'): CoTraining(tiny_g(), data, lam=-0.1)
    with pytest.raises(ValueError, match='lam'): CrossLipschitz(lam=-1e-3)
    with pytest.raises(ValueError, match='lam'): classifier_loss(linear_model(), torch.rand(2, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 1]),
                                                                 torch.rand(2, 1, 2, 2, dtype=torch.float64), -1.0)
    with pytest.raises(ValueError, match='generator'): CoTraining(nn.Conv2d(1, 1, 3), data)              # 16x16 -> 14x14
    with pytest.raises(ValueError, match='generator'): CoTraining(TiboGenerator(in_channels=3, channels=4, layers=1), ImageData(
        torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)))                   # wrong channels
    with pytest.raises(ValueError, match='gx'): generator_loss(linear_model(), torch.rand(2, 1, 2, 2, dtype=torch.float64), torch.rand(2, 1, 2, 1))
    with pytest.raises(ValueError, match='data'): CoTraining(tiny_g(), torch.rand(4, 1, 16, 16))
    with pytest.raises(ValueError, match='lambdas'): select_lambda(lambda l: 0.9, [0.1, -0.5], 0.9)
    with pytest.raises(ValueError, match='lambdas'): select_lambda(lambda l: 0.9, [], 0.9)
