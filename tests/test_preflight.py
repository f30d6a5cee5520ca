"""preflight's checks on deliberately broken models, its cache and off-switch, the wiring into the attacks and
measures, and masking_flags on hand-made tables with known answers."""
import warnings

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust_nb.eval.attacks import ATTACKS, fgsm, pgd
from robust_nb.eval.measures import robust_accuracy
from robust_nb.eval.preflight import (PreflightReport, PreflightWarning, checks, checks_enabled, masking_flags, preflight,
                                      preflight_once)


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


class Wrap(nn.Module):
    "The sound CNN with `f_in` applied to its input and `f_out` to its logits."
    def __init__(self, f_in=None, f_out=None):
        super().__init__()
        self.net, self.f_in, self.f_out = cnn(), f_in or (lambda x: x), f_out or (lambda z: z)
    def forward(self, x): return self.f_out(self.net(self.f_in(x)))


class ForcedBN(nn.Module):
    "Batch norm that uses the batch's statistics whatever the mode."
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.head = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(512, 10)
    def forward(self, x):
        z = F.batch_norm(self.conv(x), self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias, training=True)
        return self.head(z.relu().flatten(1))


@pytest.fixture
def data():
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return x, torch.arange(16) % 10


def quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', PreflightWarning)
        return fn()


def warned(report): return [f.check for f in report.at('warn')]


def test_sound_cnn_trips_nothing(data):
    m = cnn()
    with warnings.catch_warnings():
        warnings.simplefilter('error', PreflightWarning)
        r = preflight(m, *data)
    assert r.ok and r.names() == ['check_train_mode_modules'] and r.zero_gradient_share == 0
    m.eval()
    assert preflight(m, *data).findings == [] and not m.training


@pytest.mark.parametrize('f_out, word', [(lambda z: z.softmax(1), 'softmax'), (lambda z: z.log_softmax(1), 'log_softmax')])
def test_probabilities_raise(data, f_out, word):
    with pytest.raises(ValueError, match=f'remove the final {word}'): preflight(Wrap(f_out=f_out), *data)
    assert preflight(Wrap(f_out=f_out), *data, strict=False).at('error')[0].check == 'check_outputs'


def test_inputs_outside_unit_range_raise(data):
    x, y = data
    with pytest.raises(ValueError, match='normalisation inside the model'): preflight(cnn(), (x - 0.5) / 0.29, y)
    with pytest.raises(ValueError, match='divide the images by 255'): preflight(cnn(), x * 255, y)


def test_forced_batch_norm_warns(data):
    with pytest.warns(PreflightWarning, match='depend on the other images'):
        r = preflight(ForcedBN(), *data)
    assert warned(r) == ['check_batch_dependence']


def test_forced_batch_norm_model_left_untouched(data):
    m = ForcedBN()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    quiet(lambda: preflight(m, *data))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_random_forward_warns(data):
    r = quiet(lambda: preflight(Wrap(f_in=lambda x: F.dropout(x, 0.5, training=True)), *data))
    assert warned(r) == ['check_random']


@pytest.mark.parametrize('f_in', [lambda x: torch.round(x * 255) / 255, lambda x: (x > 0.5).float()])
def test_zero_gradients_warn(data, f_in):
    r = quiet(lambda: preflight(Wrap(f_in=f_in), *data))
    assert r.zero_gradient_share == 1.0 and warned(r) == ['check_gradients']


class SignOfMean(nn.Module):
    "Class 1 when the image's mean is positive: right on standardised images, always 1 on [0, 1] images."
    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([-m, m], 1)


def test_normalisation_outside_the_model_warns():
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)) ** torch.linspace(0.5, 2, 32).view(-1, 1, 1, 1)
    y = (((x - x.mean()) / x.std()).mean((1, 2, 3)) > 0).long()
    assert 0 < y.sum() < len(y)
    assert warned(quiet(lambda: preflight(SignOfMean(), x, y))) == ['check_normalisation']
    assert quiet(lambda: preflight(SignOfMean(), x)).at('warn') == []        # needs labels


def test_cache_and_off_switch(data, monkeypatch):
    m = cnn()
    r = preflight_once(m, *data)
    assert preflight_once(m, *data) is r
    with torch.no_grad(): m[-1].bias.add_(1)
    assert preflight_once(m, *data) is not r
    soft = Wrap(f_out=lambda z: z.softmax(1))
    with checks(False):
        assert preflight_once(soft, *data) is None
        with checks(True): assert checks_enabled()
    monkeypatch.setenv('ROBUST_NB_PREFLIGHT', '0')
    assert preflight_once(soft, *data) is None
    monkeypatch.setenv('ROBUST_NB_PREFLIGHT', '1')
    with pytest.raises(ValueError, match='softmax'): preflight_once(soft, *data)
    with pytest.raises(ValueError, match='enabled'):
        with checks('no'): pass


@pytest.mark.parametrize('name, kw', [('fgsm', dict(eps=0.1)), ('pgd', dict(eps=0.1, steps=1)), ('pgd_ll', dict(eps=0.1, steps=1)),
                                      ('mi_fgsm', dict(eps=0.1, steps=1)), ('cw_l2', dict(steps=1, search_steps=1)),
                                      ('bg', dict(search_steps=1))])
def test_attacks_run_preflight(data, name, kw):
    soft = Wrap(f_out=lambda z: z.softmax(1))
    with pytest.raises(ValueError, match='softmax'): ATTACKS[name](soft, *data, **kw)
    with checks(False): ATTACKS[name](soft, *data, **kw)


def test_training_time_attacks_skip_preflight(data):
    soft = Wrap(f_out=lambda z: z.softmax(1))
    fgsm(soft, *data, 0.1, keep_mode=True)
    pgd(soft, *data, 0.1, steps=1, keep_mode=True)


def test_measures_run_preflight(data):
    soft = Wrap(f_out=lambda z: z.softmax(1))
    with pytest.raises(ValueError, match='softmax'): robust_accuracy(soft, data, lambda m, x, y: x)


def rows(attack, norm, pairs, kind='white-box'):
    return [dict(attack=attack, norm=norm, eps=e, accuracy=a, kind=kind) for e, a in pairs]


def test_masking_flags_sound_table():
    t = rows('fgsm', 'linf', [(0.01, .6), (0.03, .3), (0.5, .05)]) + rows('pgd', 'linf', [(0.01, .5), (0.03, .1), (0.5, 0.)]) \
        + rows('square', 'linf', [(0.03, .2)], 'black-box') + rows('pgd', 'l2', [(0.5, .4), (14., 0.)])
    assert masking_flags(t, input_size=784) == []
    assert masking_flags(pd.DataFrame(t), PreflightReport([], 0.25, 16), input_size=784) == []


@pytest.mark.parametrize('table, names', [
    (rows('pgd', 'linf', [(0.03, .5)]) + rows('surrogate', 'linf', [(0.03, .4)], 'transfer'), ['blackbox_beats_whitebox']),
    (rows('pgd', 'linf', [(0.03, .5)]) + rows('fgsm', 'linf', [(0.03, .4)]), ['fgsm_beats_pgd']),
    (rows('pgd', 'linf', [(0.03, .1), (0.1, .2), (0.2, .0)]), ['accuracy_not_monotone']),
    (rows('pgd', 'linf', [(0.5, .3)]), ['no_zero_at_large_eps']),
    (rows('pgd', 'l2', [(14., .3)]), ['no_zero_at_large_eps']),
    (rows('pgd', 'l2', [(13.9, .3)]), []),                                 # below 0.5 sqrt(784) = 14: not large
    (rows('square', 'linf', [(0.5, .3)], 'black-box'), []),               # only white-box attacks must reach chance
])
def test_masking_flags_known_answers(table, names):
    assert [f.name for f in masking_flags(table, input_size=784)] == names


def test_masking_flags_tolerance_zero_gradients_and_bad_table():
    t = rows('pgd', 'linf', [(0.03, .5)]) + rows('fgsm', 'linf', [(0.03, .4)])
    assert masking_flags(t, tol=0.1) == []
    assert [f.name for f in masking_flags([], PreflightReport([], 0.5, 16))] == ['zero_gradients']
    with pytest.raises(ValueError, match='lacks accuracy'): masking_flags([dict(attack='pgd', norm='linf', eps=0.1)])
