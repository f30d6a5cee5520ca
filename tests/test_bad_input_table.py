"""Bad input across the public API and the CLI, one row each: the call, the error type, and the words the message must
contain (the argument, option or file it names, and what is accepted). Nothing here trains for more than a step."""
import gzip, json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robust_nb.cli import main
from robust_nb.core import CorruptFileError, make_generator, seed_everything
from robust_nb.data import ImageData, check_data, find_dataset, load_dataset, read_idx, write_idx
from robust_nb.eval.attacks import cw_l2, fgsm, least_likely_target, mi_fgsm, pgd, predict_classes, boundary_gradient_attack
from robust_nb.eval.benchmark import corruption_sweep
from robust_nb.eval.measures import accuracy, robust_accuracy, targeted_attack_success
from robust_nb.experiments.common import combine_runs
from robust_nb.methods.augment import GaussianNoise, Mixup, PatchGaussian, mixup
from robust_nb.methods.fcl import contextual_utility
from robust_nb.models import LeNet
from robust_nb.synthetic import corner_task, shrink
from robust_nb.train import evaluate, fit, load_model, save_model
from robust_nb.eval.benchmark import corruption_errors, group_averages
from robust_nb.eval.measures import UniformBall, basic_robustness, clopper_pearson, margin_curve, proposition6
from robust_nb.experiments.fcl import FCLRecipe
from robust_nb.experiments.margins import MarginsRecipe
from robust_nb.experiments.mtlat import MTLATRecipe
from robust_nb.widgets import CorruptionSweep, MarginCurves
from robust_nb.methods.ceb import ceb_loss
from robust_nb.methods.fcl import FCL
from robust_nb.methods.mtlat import TLAT, fgsm_toward
from robust_nb.viz import margin_curves_plot, show_images

NO_CUDA = not torch.cuda.is_available()


def _x(n=4, size=28):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


def _y(n=4, top=10):
    return torch.arange(n) % top


def _model():
    torch.manual_seed(0)
    return LeNet().eval()


def _small_base(n_per_class=12):
    "Tiny 10-class 28x28 base sets: enough for the corner task's checks, not for its defaults."
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = torch.randint(0, 256, (len(y), 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageData(x, y), ImageData(x.clone(), y.clone())


# (id, call, error type, words the message must contain)
CASES = [
    # ImageData: uint8, or float in [0, 1] and finite; integer labels in [0, num_classes)
    ('imagedata-float-255', lambda: ImageData(_x() * 255, _y()), ValueError, ['x:', 'values must lie in [0, 1]', 'uint8']),
    ('imagedata-float-labels', lambda: ImageData(_x(), torch.tensor([1.7, 0.0, 1.0, 2.0])), ValueError, ['y:', 'integer class indices', 'float32']),
    ('imagedata-negative-label', lambda: ImageData(_x(), torch.tensor([-1, 0, 1, 2])), ValueError, ['y:', 'labels must lie in', '-1']),
    ('imagedata-label-beyond-classes', lambda: ImageData(_x(), torch.tensor([0, 1, 2, 10]), classes=[str(i) for i in range(10)]), ValueError, ['y:', '[0, 9]', '10 classes']),
    ('imagedata-nan', lambda: ImageData(_x().masked_fill(_x() > 0.9, float('nan')), _y()), ValueError, ['x:', 'NaN or inf', 'finite']),
    ('imagedata-int32-images', lambda: ImageData((_x() * 255).int(), _y()), ValueError, ['x:', 'uint8', 'float']),
    ('imagedata-length', lambda: ImageData(_x(), _y(3)), ValueError, ['y:', 'expected 4 labels']),
    # labels outside the model's classes: evaluation and attribution
    ('accuracy-label-11', lambda: accuracy(_model(), (_x(), torch.tensor([0, 1, 2, 11]))), ValueError, ['labels', '[0, 9]', '11', 'the model predicts 10 classes']),
    ('evaluate-label-11', lambda: evaluate(_model(), ImageData(_x(), torch.tensor([0, 1, 2, 11]))), ValueError, ['[0, 9]', '11']),
    ('robust-accuracy-label-11', lambda: robust_accuracy(_model(), (_x(), torch.tensor([0, 1, 2, 11])), 'fgsm', eps=0.1), ValueError, ['labels', '[0, 9]']),
    ('targeted-label-11', lambda: targeted_attack_success(_model(), (_x(), torch.tensor([0, 1, 2, 11])), target=1), ValueError, ['labels', '[0, 9]']),
    ('sweep-label-11', lambda: corruption_sweep(_model(), (_x(), torch.tensor([0, 1, 2, 11])), suite=['brightness'], severities=[1]), ValueError, ['labels', '[0, 9]']),
    ('utility-label-11', lambda: contextual_utility(_model(), _x(), torch.tensor([0, 1, 2, 11])), ValueError, ['y:', '[0, 9]', '10 classes']),
    # lengths
    ('sweep-one-image-four-labels', lambda: corruption_sweep(_model(), (_x()[:1], _y()), suite=['brightness'], severities=[1]), ValueError, ['labels', 'one label per image (1)']),
    ('sweep-three-labels', lambda: corruption_sweep(_model(), (_x(), _y(3)), suite=['brightness'], severities=[1]), ValueError, ['labels', 'one label per image (4)']),
    ('accuracy-not-a-pair', lambda: accuracy(_model(), [_x()]), ValueError, ['data:', 'ImageData or a pair']),
    ('accuracy-function-model', lambda: accuracy(lambda x: x, (_x(), _y())), ValueError, ['model:', 'torch.nn.Module']),
    # generators and seeds
    ('make-generator-string', lambda: make_generator('abc'), ValueError, ['seed:', 'integer seed', 'torch.Generator']),
    ('make-generator-numpy', lambda: make_generator(np.random.default_rng(0)), ValueError, ['seed:', 'NumPy generators are not accepted']),
    ('batches-numpy-generator', lambda: next(ImageData(_x(), _y()).batches(2, shuffle=True, generator=np.random.default_rng(0))), ValueError, ['torch.Generator']),
    ('seed-negative', lambda: seed_everything(-1), ValueError, ['seed:', '>= 0']),
    # CUDA where there is none: get_device's message everywhere
    pytest.param('generator-cuda', lambda: make_generator(0, 'cuda'), ValueError, ['device:', 'CUDA is not available', "use 'cpu'"], id='generator-cuda', marks=pytest.mark.skipif(not NO_CUDA, reason='CUDA present')),
    pytest.param('seed-cuda', lambda: seed_everything(0, device='cuda'), ValueError, ['device:', 'CUDA is not available'], id='seed-cuda', marks=pytest.mark.skipif(not NO_CUDA, reason='CUDA present')),
    pytest.param('imagedata-to-cuda', lambda: ImageData(_x(), _y()).to('cuda'), ValueError, ['device:', 'CUDA is not available'], id='imagedata-to-cuda', marks=pytest.mark.skipif(not NO_CUDA, reason='CUDA present')),
    pytest.param('load-dataset-cuda', lambda: load_dataset('fashion_mnist', 'test', device='cuda'), ValueError, ['device:', 'CUDA is not available'], id='load-dataset-cuda', marks=pytest.mark.skipif(not NO_CUDA, reason='CUDA present')),
    ('imagedata-to-nonsense', lambda: ImageData(_x(), _y()).to('gpu0'), ValueError, ['device:', "'cpu', 'cuda'"]),
    # shapes the model cannot take, and things that are not models
    ('lenet-no-batch-dim', lambda: LeNet()(_x()[0]), ValueError, ['x:', 'LeNet expects images [B, 1, 28, 28]', 'x[None]']),
    ('lenet-wrong-size', lambda: LeNet()(_x(size=32)), ValueError, ['x:', 'LeNet expects images [B, 1, 28, 28]', '(4, 1, 32, 32)']),
    ('fgsm-1x1-images', lambda: fgsm(_model(), _x(size=1), _y(), 0.1), ValueError, ['x:', 'the model expects images [B, 1, 28, 28]']),
    ('pgd-no-batch-dim', lambda: pgd(_model(), _x()[0], _y(1), 0.1), ValueError, ['x:', 'x[None]']),
    ('pgd-function-model', lambda: pgd(lambda x: x, _x(), _y(), 0.1), ValueError, ['model:', 'torch.nn.Module']),
    ('mi-fgsm-uint8', lambda: mi_fgsm(_model(), (_x() * 255).byte(), _y(), 0.1), ValueError, ['x:', 'float']),
    ('cw-label-length', lambda: cw_l2(_model(), _x(), _y(3)), ValueError, ['y:', 'expected 4 labels']),
    ('bg-function-model', lambda: boundary_gradient_attack(print, _x(), _y()), ValueError, ['model:', 'torch.nn.Module']),
    ('least-likely-function-model', lambda: least_likely_target(len, _x()), ValueError, ['model:', 'torch.nn.Module']),
    ('predict-batch-size', lambda: predict_classes(_model(), _x(), batch_size=0), ValueError, ['batch_size:', '>= 1']),
    ('pgd-eps-negative', lambda: pgd(_model(), _x(), _y(), -0.1), ValueError, ['eps:', '>= 0']),
    ('pgd-norm', lambda: pgd(_model(), _x(), _y(), 0.1, norm='l1'), ValueError, ['norm:', "'linf', 'l2'"]),
    # data-side transforms that would silently return wrong images
    ('shrink-float', lambda: shrink(_x(), 10), ValueError, ['x:', 'uint8', 'float32', 'x * 255']),
    ('gauss-uint8', lambda: GaussianNoise(0.1)((_x() * 255).byte(), _y()), ValueError, ['x:', 'float images', 'x.float() / 255']),
    ('patch-gauss-uint8', lambda: PatchGaussian()((_x() * 255).byte(), _y()), ValueError, ['x:', 'float images']),
    ('mixup-uint8', lambda: Mixup(num_classes=10)((_x() * 255).byte(), _y()), ValueError, ['x:', 'float images']),
    ('mixup-lam-2', lambda: mixup(_x(), torch.eye(10)[_y()], 2.0, torch.tensor([1, 0, 3, 2])), ValueError, ['lam:', '[0, 1]', '2']),
    ('mixup-lam-negative-per-image', lambda: mixup(_x(), torch.eye(10)[_y()], torch.tensor([0.5, -0.1, 0.2, 1.0]), torch.tensor([1, 0, 3, 2])), ValueError, ['lam:', '[0, 1]']),
    ('mixup-perm-length', lambda: mixup(_x(), torch.eye(10)[_y()], 0.5, torch.tensor([1, 0])), ValueError, ['perm:', '[4]']),
    ('gauss-sigma-negative', lambda: GaussianNoise(-0.1), ValueError, ['sigma:', '>= 0']),
    # fit refuses before any work
    ('fit-label-11', lambda: fit(_model(), ImageData(_x(), torch.tensor([0, 1, 2, 11])), progress=False), ValueError, ['train', '[0, 9]', '11']),
    ('fit-max-steps-0', lambda: fit(_model(), ImageData(_x(), _y()), max_steps_per_epoch=0, progress=False), ValueError, ['max_steps_per_epoch:', '>= 1', 'None for no limit']),
    ('fit-keep-negative', lambda: fit(_model(), ImageData(_x(), _y()), keep=-1, progress=False), ValueError, ['keep:', '>= 1']),
    ('fit-checkpoint-dir-is-a-file', lambda: fit(_model(), ImageData(_x(), _y()), checkpoint_dir=__file__, progress=False), ValueError, ['checkpoint_dir:', 'is a file']),
    ('fit-function-model', lambda: fit(lambda x: x, ImageData(_x(), _y()), progress=False), ValueError, ['model:', 'torch.nn.Module']),
    ('fit-momentum', lambda: fit(_model(), ImageData(_x(), _y()), optimizer='sgd', momentum=1.0, progress=False), ValueError, ['momentum:', '[0, 1)']),
    # objectives and losses called directly
    ('tlat-label-11', lambda: TLAT(num_classes=10)(_model(), (_x(), torch.tensor([0, 1, 2, 11])), None), ValueError, ['y:', '[0, 9]', '11']),
    ('fgsm-toward-label-11', lambda: fgsm_toward(_model(), _x(), torch.tensor([0, 1, 2, 11]), 0.1), ValueError, ['target:', '[0, 9]']),
    ('fcl-label-11', lambda: FCL()(_model(), (_x(), torch.tensor([0, 1, 2, 11])), None), ValueError, ['y:', '[0, 9]', '10 classes']),
    ('ceb-loss-label-length', lambda: ceb_loss(torch.rand(4, 10), torch.arange(3), torch.rand(4, 3), torch.rand(4, 3), torch.rand(4, 3), rho=1), ValueError, ['y:', 'expected 4 labels']),
    ('ceb-loss-mu-shape', lambda: ceb_loss(torch.rand(4, 10), torch.arange(4), torch.rand(4, 3), torch.rand(4, 3), torch.rand(10, 3), rho=1), ValueError, ['mu:', '[4, 3]']),
    ('clopper-k-above-n', lambda: clopper_pearson(torch.tensor([5]), 3), ValueError, ['k:', '[0, 3]']),
    ('clopper-confidence', lambda: clopper_pearson(torch.tensor([1]), 3, confidence=2), ValueError, ['confidence:', '<= 1']),
    # figures
    ('show-images-titles', lambda: show_images(_x(), ['a']), ValueError, ['titles:', 'one entry per image (4)']),
    ('margin-curves-text', lambda: margin_curves_plot({'a': 'x'}), ValueError, ["curves['a']", 'distances']),
    ('margin-curves-negative', lambda: margin_curves_plot({'a': torch.tensor([-1.0, 1.0])}), ValueError, ["curves['a']", '>= 0']),
    # indexing and files
    ('imagedata-index-out-of-range', lambda: ImageData(_x(), _y())[10], IndexError, ['idx:', '10', '4 images']),
    ('load-model-missing', lambda: load_model(_model(), '/nonexistent/model.safetensors'), FileNotFoundError, ['/nonexistent/model.safetensors', 'no such weights file']),
    # recipes refuse when they are made, not when they run
    ('fcl-recipe-seeds-0', lambda: FCLRecipe(seeds=0), ValueError, ['seeds:', '>= 1']),
    ('fcl-recipe-lr-text', lambda: FCLRecipe(lr='fast'), ValueError, ['lr:', 'expected a number']),
    ('mtlat-recipe-dataset', lambda: MTLATRecipe(dataset='svhn'), ValueError, ['dataset:', "'fashion_mnist', 'cifar10'"]),
    ('mtlat-recipe-eps-max', lambda: MTLATRecipe(eps_max=2.0), ValueError, ['eps_max:', '<= 1']),
    ('margins-recipe-epochs-0', lambda: MarginsRecipe(epochs=0), ValueError, ['epochs:', '>= 1']),
    ('margins-recipe-val-fraction', lambda: MarginsRecipe(val_fraction=1.0), ValueError, ['val_fraction:', '(0, 1)']),
    # explorers, sweeps and measures of the framework
    ('sweep-widget-label-11', lambda: CorruptionSweep(_model(), (_x(), torch.tensor([0, 1, 2, 11]))), ValueError, ['data labels', '[0, 9]']),
    ('margin-widget-attack', lambda: MarginCurves({'a': _model()}, (_x(), _y()), attacks=('fgsm', 'deepfool')), ValueError, ['attacks:', "'deepfool'"]),
    ('margin-widget-label-11', lambda: MarginCurves({'a': _model()}, (_x(), torch.tensor([0, 1, 2, 11]))), ValueError, ['data labels', '[0, 9]']),
    ('corruption-errors-text', lambda: corruption_errors('sweep.csv'), ValueError, ['sweep:', 'DataFrame']),
    ('group-averages-group', lambda: group_averages(corruption_sweep(_model(), (_x(), _y()), suite=['brightness'], severities=[1]), groups=('colour',)), ValueError, ['groups:', "'noise'"]),
    ('proposition6-label-11', lambda: proposition6(_model(), (_x(), torch.tensor([0, 1, 2, 11])), UniformBall(0.1)), ValueError, ['data labels', '[0, 9]']),
    ('basic-robustness-kernel', lambda: basic_robustness(_model(), _x(), 'gauss'), ValueError, ['kernel:', 'Kernel']),
    ('margin-curve-grid-text', lambda: margin_curve(torch.tensor([1.0]), 'fine'), ValueError, ['eps_grid:', 'numbers']),
    # the corner task on a base set too small for its validation share
    ('corner-val-uses-base', lambda: corner_task(_small_base(), val_per_class=10, n_rare=5, test_per_class=2), ValueError, ['n_rare:', 'val_per_class=10', 'went to validation', 'lower n_rare or val_per_class']),
]


@pytest.mark.parametrize('case,call,exc,words', [c if hasattr(c, 'marks') else pytest.param(*c, id=c[0]) for c in CASES])
def test_bad_input(case, call, exc, words):
    with pytest.raises(exc) as e:
        call()
    msg = str(e.value)
    for w in words: assert w in msg, f"{case}: {w!r} not in {msg!r}"


def test_weights_of_another_architecture_name_both(tmp_path):
    path = save_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path/'other')
    with pytest.raises(ValueError) as e: load_model(_model(), path)
    assert 'model:' in str(e.value) and 'Sequential' in str(e.value) and 'LeNet' in str(e.value)


def test_check_data_accepts_what_it_should():
    d = ImageData((_x() * 255).byte(), _y())
    assert check_data(d, _model()) is d
    pair = (_x(), _y())
    assert check_data(pair, _model()) is pair


# ---------------------------------------------------------------- files

@pytest.fixture
def fmnist_copy(tmp_path, fmnist_available):
    "A private copy of Fashion-MNIST's test split under a data root of its own."
    src = find_dataset('fashion_mnist', 'test')
    dst = tmp_path/'root'/'fashion-mnist'; dst.mkdir(parents=True)
    for p in src.glob('t10k-*'): shutil.copy(p, dst/p.name)
    return tmp_path/'root', dst


def _load_error(monkeypatch, root) -> str:
    "The message of the CorruptFileError that loading Fashion-MNIST's test split from `root` raises."
    monkeypatch.setenv('ROBUST_NB_DATA', str(root))
    with pytest.raises(CorruptFileError) as e: load_dataset('fashion_mnist', 'test')
    return str(e.value)


def test_flipped_gzip_bytes_name_the_file_and_the_fix(fmnist_copy, monkeypatch):
    root, folder = fmnist_copy
    f = folder/'t10k-labels-idx1-ubyte.gz'
    raw = bytearray(f.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 16): raw[i] ^= 0xFF
    f.write_bytes(bytes(raw))
    msg = _load_error(monkeypatch, root)
    assert str(f) in msg and 'robust-nb data --verify' in msg and 'robust-nb data --download fashion_mnist' in msg


def test_swapped_images_and_labels_name_the_file(fmnist_copy, monkeypatch):
    root, folder = fmnist_copy
    xs, ys = folder/'t10k-images-idx3-ubyte.gz', folder/'t10k-labels-idx1-ubyte.gz'
    xs.rename(folder/'tmp'); ys.rename(xs); (folder/'tmp').rename(ys)
    msg = _load_error(monkeypatch, root)
    assert str(xs) in msg and 'a labels file?' in msg


def test_labels_beyond_the_classes_in_a_file(tmp_path, monkeypatch):
    folder = tmp_path/'fashion-mnist'; folder.mkdir()
    write_idx(folder/'t10k-images-idx3-ubyte.gz', np.zeros((3, 28, 28), np.uint8))
    write_idx(folder/'t10k-labels-idx1-ubyte.gz', np.array([0, 3, 12], np.uint8))
    msg = _load_error(monkeypatch, tmp_path)
    assert str(folder) in msg and '[0, 9]' in msg


def test_combine_runs_names_a_truncated_file(tmp_path):
    good, bad = tmp_path/'a.json', tmp_path/'b.json'
    good.write_text(json.dumps({'recipe': {'seeds': 1}, 'records': [{'method': 'xe', 'seed': 0}]}))
    bad.write_text(good.read_text()[:20])
    with pytest.raises(ValueError) as e: combine_runs([good, bad])
    assert str(bad) in str(e.value) and 'not a complete result JSON' in str(e.value)


# ---------------------------------------------------------------- the command

EXE = [str(Path(sys.executable).parent/'robust-nb')]

CLI_CASES = [
    (['train', '--limit', '-3'], ['argument --limit', 'must be >= 0']),
    (['train', '--lr-decay', '0'], ['argument --lr-decay', 'must be > 0']),
    (['train', '--lr-decay', '1.5'], ['argument --lr-decay', 'must be <= 1']),
    (['train', '--lr', 'fast'], ['argument --lr', 'expected a number']),
    (['train', '--epochs', '0'], ['argument --epochs', 'must be >= 1']),
    (['train', '--val-size', '1'], ['argument --val-size', 'must be <= 0.5']),
    (['train', '--device', 'tpu'], ['argument --device', "'cpu', 'cuda'"]),
    (['train', '--limit', '1'], ['--limit', 'at least 2']),
    (['reproduce', 'ceb', '--rhos', '1,x'], ['argument --rhos', 'expected a number']),
    (['reproduce', 'ceb', '--rhos', '0,nan'], ['--rhos', 'must be finite']),
    (['reproduce', 'ceb', '--methods', 'ceb,foo'], ['argument --methods', "unknown value 'foo'", "'ceb'"]),
    (['reproduce', 'fcl', '--seeds', '0'], ['argument --seeds', 'must be >= 1']),
    (['reproduce', 'fcl', '--first-seed', '-1'], ['argument --first-seed', 'must be >= 0']),
    (['reproduce', 'transfer', '--n-c', '0,-5'], ['argument --n-c', 'must be >= 0']),
    (['reproduce', 'mtlat', '--model', 'resnet9000'], ['argument --model', "unknown value 'resnet9000'", "'lenet'"]),
    (['reproduce', 'margins', '--train-size', '0'], ['argument --train-size', 'must be >= 1']),
    (['reproduce', 'fcl', '--combine', '/nonexistent/a.json'], ['--combine', '/nonexistent/a.json', 'is not a file']),
]


@pytest.mark.parametrize('argv,words', CLI_CASES, ids=[' '.join(a) for a, _ in CLI_CASES])
def test_cli_names_the_option(argv, words, capsys):
    "In process (the console script is `main`; tests/test_cli.py runs the installed script itself)."
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out[-500:], err[-500:])
    for w in words: assert w in err, f"{w!r} not in {err!r}"


def test_cli_out_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    blocker = tmp_path/'file'; blocker.write_text('x')
    for argv in (['train', '--out', str(blocker)], ['train', '--out', str(blocker/'sub')],
                 ['reproduce', 'fcl', '--quick', '--out', str(blocker/'sub')]):
        rc = main(argv)
        out, err = capsys.readouterr()
        assert rc == 2 and 'argument --out' in err, err[-500:]
        assert 'epoch' not in out


def test_cli_data_verify_finds_a_corrupt_file(fmnist_copy):
    root, folder = fmnist_copy
    f = folder/'t10k-images-idx3-ubyte.gz'
    f.write_bytes(f.read_bytes()[:5000])
    r = subprocess.run([*EXE, 'data', '--verify'], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'ROBUST_NB_DATA': str(root)})
    assert r.returncode == 1 and str(f) in r.stderr, r.stderr[-800:]
