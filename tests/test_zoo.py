"""The model zoo (issue 16): a tiny zoo built in a temporary folder, loaded, listed and verified; a damaged weights
file, an unknown name and a device that does not exist are refused with what to do; the CLI's `zoo` command."""
import json, subprocess, sys
from pathlib import Path

import pytest
import torch

from robust_nb import zoo
from robust_nb.core import CorruptFileError
from robust_nb.methods.mtlat import PGDAT
from robust_nb.train import evaluate

EXE = [str(Path(sys.executable).parent/'robust-nb')]
QUICK = dict(epochs=2, n_train=512, n_test=256, max_steps_per_epoch=3, batch_size=64)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, fmnist_available):
    folder = tmp_path_factory.mktemp('zoo')
    zoo.build('xe', folder, progress=False, device='cpu', **QUICK)
    zoo.build('pgd_at', folder, progress=False, device='cpu', **QUICK)
    return folder


def test_build_writes_weights_and_manifest(tiny):
    m = zoo.read_manifest(tiny)
    assert sorted(m) == ['pgd_at', 'xe']
    for name, e in m.items():
        assert (tiny/e['file']).exists() and e['sha256'] == zoo.file_sha256(tiny/e['file'])
        assert e['recipe']['n_train'] == 512 and e['recipe']['method'] == e['method'] and e['epochs_run'] == 2
        assert e['params'] == 431080 and e['dtype'] in ('float16', 'float32') and 0 <= e['test_acc'] <= 1
        for key in ('seed', 'seconds', 'machine', 'best_epoch', 'val_acc'): assert key in e
    assert m['pgd_at']['recipe']['params'] == dict(eps=0.1, steps=10)
    assert not list(tiny.glob('.*tmp*'))   # nothing half written is left


def test_load_model_eval_mode_and_recorded_accuracy(tiny):
    model = zoo.load_model('xe', 'cpu', tiny)
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    test = zoo.recipe_data(zoo.ZooRecipe('xe', **QUICK))[2]
    assert evaluate(model, test, device='cpu')['acc'] == zoo.read_manifest(tiny)['xe']['test_acc']


def test_env_variable_points_at_the_zoo(tiny, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(tiny))
    assert zoo.zoo_dir() == tiny
    assert not zoo.load_model('pgd_at', 'cpu').training


def test_list_and_verify(tiny):
    lm = zoo.list_models(tiny).set_index('name')
    assert list(lm.index) == list(zoo.RECIPES)
    assert lm.built.to_dict() == {n: n in ('xe', 'pgd_at') for n in zoo.RECIPES}
    assert lm.loc['gauss'].test_acc is None or lm.loc['gauss'].test_acc != lm.loc['gauss'].test_acc   # not built: empty
    v = zoo.verify(tiny, 'cpu')
    assert v.ok.all() and v.hash_ok.all() and len(v) == 2


def test_corrupted_weights_refused_with_file_and_fix(tiny):
    path = tiny/'xe.safetensors'
    raw = path.read_bytes()
    try:
        path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
        with pytest.raises(CorruptFileError) as e: zoo.load_model('xe', 'cpu', tiny)
        assert str(path) in str(e.value) and 'robust-nb zoo build xe' in str(e.value)
        with pytest.raises(CorruptFileError, match='xe.safetensors'): zoo.verify(tiny, 'cpu')
        assert zoo.verify(tiny, 'cpu', strict=False).set_index('name').hash_ok.to_dict() == {'pgd_at': True, 'xe': False}
    finally: path.write_bytes(raw)


def test_moved_accuracy_fails_verify(tiny, tmp_path):
    m = zoo.read_manifest(tiny)
    m['xe']['test_acc'] -= 0.01
    for f in ('xe.safetensors',): (tmp_path/f).write_bytes((tiny/f).read_bytes())
    (tmp_path/'manifest.json').write_text(json.dumps({'xe': m['xe']}))
    with pytest.raises(CorruptFileError, match=r'xe: accuracy moved by \+1.00 points'): zoo.verify(tmp_path, 'cpu')


def test_bad_input(tiny):
    with pytest.raises(ValueError, match='corner_fcl'): zoo.load_model('resnet', 'cpu', tiny)
    with pytest.raises(FileNotFoundError, match='robust-nb zoo build mixup'): zoo.load_model('mixup', 'cpu', tiny)
    with pytest.raises(ValueError, match="device: 'tpu' is not a device"): zoo.load_model('xe', 'tpu', tiny)
    with pytest.raises(ValueError, match='dataset'): zoo.build('xe', tiny, progress=False, device='cpu', dataset='cifar10')


def test_same_recipe_same_bytes(tiny, tmp_path):
    e = zoo.build('xe', tmp_path, progress=False, device='cpu', **QUICK)
    assert e['sha256'] == zoo.read_manifest(tiny)['xe']['sha256']


def test_every_entry_makes_its_objective():
    for name, r in zoo.RECIPES.items():
        model = zoo.model_for(r)
        objective, transform = zoo.METHODS[r.method](r, zoo.num_classes(r), None if r.method != 'cotrain' else zoo.recipe_data(zoo.ZooRecipe('xe', n_train=64, n_test=64))[0])
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, zoo.num_classes(r)), name
    assert isinstance(zoo.METHODS['pgd_at'](zoo.RECIPES['pgd_at'], 10, None)[0], PGDAT)


def test_cli_zoo(tiny):
    r = subprocess.run([*EXE, 'zoo', 'list', '--folder', str(tiny)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'pgd_at' in r.stdout and 'corner_fcl' in r.stdout, r.stderr
    r = subprocess.run([*EXE, 'zoo', 'verify', '--folder', str(tiny), '--device', 'cpu'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'True' in r.stdout, r.stderr
    r = subprocess.run([*EXE, 'zoo', 'show', 'xe', '--folder', str(tiny)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)['sha256'] == zoo.read_manifest(tiny)['xe']['sha256']
    r = subprocess.run([*EXE, 'zoo', 'show', 'nope'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'robust-nb zoo: error: name:' in r.stderr and 'pgd_at' in r.stderr
    r = subprocess.run([*EXE, 'zoo', 'build', 'xe', '--jobs', '2'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and '--jobs: builds several entries at once, so it goes with --all' in r.stderr
