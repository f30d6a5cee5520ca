"""The zoo as shipped and the comparison of its entries: every shipped entry verifies and the weights fit the size budget; the
committed comparison and its corner-task table were measured on these weights; our PGD agrees with torchattacks' on a robust entry; the CLI
refuses an unknown entry with the names it knows."""
import json, subprocess, sys
from pathlib import Path

import pytest
import torch

from robust_nb import compare, zoo
from robust_nb.core import predict_classes

EXE = [str(Path(sys.executable).parent/'robust-nb')]
RESULTS = Path(__file__).parents[1]/'benchmarks'/'results'/'compare_fmnist.json'


def test_packaged_zoo_is_small_and_verifies(fmnist_available):
    m = zoo.read_manifest()
    assert set(compare.load(RESULTS).records.name) <= set(m)  # every compared entry ships
    size = sum((zoo.zoo_dir()/e['file']).stat().st_size for e in m.values())
    assert size <= 30 * 2**20, f"{size / 2**20:.1f} MB of weights"
    rows = zoo.verify(device='cpu')  # raises when a hash or an accuracy (0.2 points) moved
    assert rows.ok.all() and len(rows) == len(m)


def test_zoo_entries_reach_the_issue_targets():
    m = zoo.read_manifest()
    assert m['xe']['test_acc'] >= 0.90
    r = compare.load(RESULTS).records.set_index('name')
    assert r.loc['pgd_at', 'pgd_linf_0.1'] >= 0.50 and r.loc['pgd_at', 'pgd_linf_0.1'] - r.loc['xe', 'pgd_linf_0.1'] >= 0.30


def test_committed_comparison_was_measured_on_these_weights(fmnist_available):
    comp = compare.load(RESULTS)
    x, y = compare._test_images(comp.config)
    for rec in comp.records.to_dict('records'):
        model = zoo.load_model(rec['name'], 'cpu')
        assert (predict_classes(model, x, 1000) == y).float().mean().item() == pytest.approx(rec['clean'], abs=1e-9), rec['name']
        assert rec['unreliable'] == bool(rec['flags'])
        card = comp.cards[rec['name']]
        assert card['clean_acc'] == rec['clean'] and card['training']['sha256'] == zoo.read_manifest()[rec['name']]['sha256']


def test_committed_corner_table_was_measured_on_these_weights(fmnist_available):
    comp = compare.load(RESULTS)
    assert comp.corner is not None and list(comp.corner.name) == ['corner_xe', 'corner_fcl']
    fresh = compare.corner_table(device='cpu')
    for col in ('bal', 'bal_un', 'bal_nun'): assert fresh[col].tolist() == comp.corner[col].tolist(), col
    for name in ('corner_xe', 'corner_fcl'):
        card = comp.cards[name]
        assert card['figures']['bal']['value'] == card['clean_acc'] and card['training']['sha256'] == zoo.read_manifest()[name]['sha256']


def test_our_pgd_agrees_with_torchattacks_on_a_robust_entry(fmnist_available):
    torchattacks = pytest.importorskip('torchattacks')
    model = zoo.load_model('pgd_at', 'cpu')
    x, y = compare._test_images(compare.CompareConfig(n=200, seed=3))
    ours = compare.pgd_robust(model, x, y, 'linf', 0.1, steps=20, seed=0).float().mean().item()
    torch.manual_seed(0)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=2.5 * 0.1 / 20, steps=20, random_start=True)
    acc = (predict_classes(model, theirs(x, y), 200) == y).float().mean().item()
    # the same attack from different random starts: on 200 images the two rarely differ by more than a few images
    assert abs(ours - acc) <= 0.03, (ours, acc)
    assert 0.3 < ours < 0.95  # a robust model: neither broken nor untouched


def test_cli_compare_refuses_an_unknown_entry():
    r = subprocess.run([*EXE, 'compare', '--quick', '--names', 'nope'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'robust-nb compare: error: name:' in r.stderr and 'pgd_at' in r.stderr, r.stderr
