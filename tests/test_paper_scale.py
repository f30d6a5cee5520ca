"""The paper-scale recipes (FCL Tables 2 and 3 on CIFAR-10 / CIFAR-100, CEB Figures 2 and 3 on CIFAR-10, M-TLAT on ImageNet-100) run end to end
for a few steps on tiny data sets written in the real file formats: CIFAR python batches pickled in the official dict layout, CIFAR-10-C `.npy`
files in the released layout, and an image folder of PNGs."""
import argparse, pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _threads import one_thread
from robust_nb.core import CorruptFileError, DataNotFoundError
from robust_nb.data import CIFAR_C_CORRUPTIONS, ImageFolderData, image_folder_splits, load_dataset
from robust_nb.experiments import ceb, fcl, mtlat
from robust_nb.experiments.common import recipe_from
from robust_nb.models import create_model

CLEAN = ['method', 'seed', 'dataset', 'clean', 'un', 'nun']


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv('ROBUST_NB_DATA', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_cifar(root, hundred: bool = False, n_train: int = 40, n_test: int = 20, seed: int = 0):
    "CIFAR-10 (or -100) python batches of random images, pickled in the official dict layout; the test images [N, 32, 32, 3] and labels."
    rng, k = np.random.default_rng(seed), 100 if hundred else 10
    folder = root/('cifar-100-python' if hundred else 'cifar-10-batches-py')
    folder.mkdir()
    key = 'fine_labels' if hundred else 'labels'
    splits = [('train', n_train), ('test', n_test)] if hundred else [(f'data_batch_{i}', n_train // 5) for i in range(1, 6)] + [('test_batch', n_test)]
    for name, n in splits:
        entry = {'data': rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: [int(v) for v in rng.integers(0, k, n)], 'batch_label': name}
        if hundred: entry['coarse_labels'] = [0] * n
        with open(folder/name, 'wb') as f: pickle.dump(entry, f)
    meta = {'fine_label_names': [f'c{i}' for i in range(k)]} if hundred else {'label_names': [f'class{i}' for i in range(k)]}
    with open(folder/('meta' if hundred else 'batches.meta'), 'wb') as f: pickle.dump(meta, f)
    with open(folder/splits[-1][0], 'rb') as f: test = pickle.load(f)
    return test['data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(test[key], dtype=np.uint8)


def write_cifar_c(root, x, y, name: str = 'CIFAR-10-C'):
    "A corrupted set in the released layout whose every severity block is the clean test set: `<corruption>.npy` [5 N, 32, 32, 3] and `labels.npy`."
    folder = root/name
    folder.mkdir()
    np.save(folder/'labels.npy', np.tile(y, 5))
    for c in CIFAR_C_CORRUPTIONS: np.save(folder/f'{c}.npy', np.tile(x, (5, 1, 1, 1)))
    return folder


def tiny_fcl(dataset: str, **kw):
    "CIFAR_QUICK's recipe cut to one epoch of two steps on every image, FCL on from the start."
    return fcl.FCLRecipe.quick(**{**dict(dataset=dataset, epochs=1, batch_size=20, train_size=None, eval_size=None, milestones=(), lr_warmup_epochs=0,
                                         start_epoch=0, device='cpu'), **kw})


def test_fcl_cifar10_reads_the_released_corruptions(root):
    x, y = write_cifar(root)
    folder = write_cifar_c(root, x, y)
    with one_thread(): result = fcl.reproduction.run(tiny_fcl('cifar10'), log=None)
    recs = result.records
    assert list(recs.columns[:6]) == CLEAN and set(CIFAR_C_CORRUPTIONS) <= set(recs.columns)
    assert (len(recs), list(recs.method), sorted(set(recs.seed))) == (2, ['xe', 'fcl'], [0])
    assert (recs.cifar_c == str(folder)).all()
    # every released block holds the clean test images, so every corruption's accuracy is the clean accuracy, exactly
    assert (recs[CIFAR_C_CORRUPTIONS].to_numpy() == recs[['clean']].to_numpy()).all()
    js = fcl.reproduction.report(result, out=root/'out', log=None)  # the files as `robust-nb reproduce fcl --dataset cifar10` writes them
    assert sorted(p.name for p in (root/'out').iterdir()) == ['fcl_tables23_cifar10.csv', 'fcl_tables23_cifar10.json', 'fcl_tables23_cifar10.png']
    assert list(js['tables']) == ['table2', 'table3', 'table4'] and [r['method'] for r in js['tables']['table2']] == ['xe', 'fcl']
    assert js['tables']['table2'][0]['paper_clean'] == '0.9389 +- 0.0014'
    assert [c['name'] for c in js['claims']] == [n for n, *_ in fcl.FCL_CIFAR_CLAIMS]
    assert fcl.fcl_stem(tiny_fcl('cifar10')) == 'fcl_tables23_cifar10' and set(fcl.fcl_figures(result)) == {''}


def test_fcl_cifar100_builds_the_corruptions_when_none_are_released(root):
    write_cifar(root, hundred=True, n_train=30, n_test=10)
    recipe = tiny_fcl('cifar100', methods=('xe',), batch_size=15)
    assert (recipe.tau, recipe.model_name()) == (0.1, 'resnet20')
    with one_thread(): recs = fcl.run_fcl_cifar(recipe, log=None)
    assert (len(recs), recs.cifar_c.item(), recs.dataset.item()) == (1, 'built', 'cifar100')
    assert recs[CIFAR_C_CORRUPTIONS + ['clean', 'un', 'nun']].stack().between(0, 1).all()
    with pytest.raises(DataNotFoundError, match='CIFAR-100-C is not on this machine'):
        fcl.run_fcl_cifar(tiny_fcl('cifar100', methods=('xe',), corrupted='released', epochs=1), log=None)


def test_fcl_released_labels_must_match_the_test_set(root):
    x, y = write_cifar(root, n_test=10)
    write_cifar_c(root, x, (y + 1) % 10)
    sets, idx = fcl.cifar_test_sets(tiny_fcl('cifar10'))
    model = create_model('resnet20', 3, 10, 32).eval()
    with pytest.raises(CorruptFileError, match='labels differ from the cifar10 test set'):
        fcl.cifar_c_accuracy(model, 'cifar10', sets['clean'], idx)


def test_fcl_noisy_sets_replace_pixels_by_grey_levels(root):
    write_cifar(root, n_test=20)
    sets, idx = fcl.cifar_test_sets(tiny_fcl('cifar10'))
    clean, un = sets['clean'].x, sets['un'].x
    changed = (clean != un).any(1)  # pixels replaced (a grey level equal to all three channels is kept as it was)
    assert torch.equal(idx, torch.arange(20)) and torch.equal(sets['un'].y, sets['clean'].y)
    assert (un[:, 0] == un[:, 1])[changed].all() and (un[:, 1] == un[:, 2])[changed].all()
    assert 0.10 < changed.float().mean().item() < 0.20  # 15% expected over 20,480 pixels


def options(reproduction, *argv):
    p = argparse.ArgumentParser()
    reproduction.add_arguments(p)
    return recipe_from(p.parse_args(list(argv)), reproduction.recipe, reproduction.default)


@pytest.mark.parametrize('reproduction', [fcl.reproduction, ceb.reproduction, mtlat.reproduction], ids=['fcl', 'ceb', 'mtlat'])
def test_help_formats(reproduction):
    p = argparse.ArgumentParser()
    reproduction.add_arguments(p)
    assert '--dataset' in p.format_help()


def test_fcl_command_line_selects_the_cifar_protocol():
    r = options(fcl.reproduction, '--dataset', 'cifar10', '--full')
    assert (r.model_name(), r.epochs, r.batch_size, r.optimizer, r.lr, r.lr_warmup_epochs, r.milestones) == ('resnet56', 450, 1024, 'sgd', 1.0, 15, (200, 300, 400))
    assert (r.seeds, r.k, r.lam, r.tau, r.sigma, r.start_epoch, r.warmup_epochs, r.pg_patch_size(), r.pg_sigma()) == (5, 256, 1e-4, 2.0, 0.5, 300, 0, 25, 0.1)
    assert options(fcl.reproduction, '--dataset', 'cifar100', '--full', '--seeds', '2').tau == 0.1
    corner = options(fcl.reproduction, '--dataset', 'fashion_mnist', '--full')
    assert (corner.model_name(), corner.epochs, corner.optimizer, corner.pg_patch_size()) == ('lenet', 20, 'adam', 14)


def test_ceb_cifar10_with_autoaugment(root):
    write_cifar(root)
    recipe = ceb.CEBRecipe.quick(dataset='cifar10', train_size=None, test_size=None, attack_size=8, epochs=1, batch_size=20, pgd_steps=2,
                                 rate_steps=5, rate_size=20, sweep_linf=(4 / 255, 8 / 255), sweep_l2=(0.5,), device='cpu')
    with one_thread(): result = ceb.reproduction.run(recipe, log=None)
    recs = result.records
    assert (len(recs), list(recs.method), list(recs.rho.fillna(-1))) == (3, ['deterministic', 'ceb', 'ceb'], [-1, 1.0, 5.0])
    sweep = ['pgd_linf_0.01569', 'pgd_linf_0.03137', 'pgd_l2_0.5']
    assert {'accuracy', 'rate', 'robust_l2', 'robust_linf', *sweep} <= set(recs.columns) and set(recs.dataset) == {'cifar10'}
    assert recs[sweep + ['accuracy']].stack().between(0, 1).all() and recs.rate.iloc[1:].notna().all()
    js = ceb.reproduction.report(result, out=root/'out', log=None)
    assert sorted(p.name for p in (root/'out').iterdir()) == ['ceb_cifar10_cpu.csv', 'ceb_cifar10_cpu.json', 'ceb_cifar10_cpu.png', 'ceb_cifar10_cpu_embedding.png', 'ceb_cifar10_cpu_figure3.png']
    assert list(js['tables']) == ['rho_sweep', 'eps_sweep'] and len(js['tables']['eps_sweep']) == 3
    assert [c['name'] for c in js['claims']] == [n for n, *_ in ceb.CEB_CIFAR_CLAIMS]


def test_ceb_command_line_selects_the_cifar_protocol():
    r = options(ceb.reproduction, '--dataset', 'cifar10', '--full')
    assert (r.depth, r.width, r.batch_norm, r.autoaugment, r.epochs, r.lr, r.lr_drops) == (28, 10, False, True, 1500, 1e-3, (1 / 3, 2 / 3, 5 / 6))
    assert (r.rhos[0], r.rhos[-1], len(r.rhos), r.methods, r.pgd_steps) == (-1.0, 5.0, 25, ('deterministic', 'ceb'), 20)
    assert ceb.ceb_stem(r) == 'ceb_cifar10_full' and options(ceb.reproduction, '--full').dataset == 'fashion_mnist'


def write_image_folder(root, classes=('n01440764', 'n01443537', 'n01484850'), per_class: int = 8, val: int = 2, seed: int = 0):
    "`root/train/<class>/*.png` and `root/val/<class>/*.png` of random images of varied sizes (ImageNet's layout)."
    rng = np.random.default_rng(seed)
    for split, n in (('train', per_class), ('val', val)):
        for c in classes:
            (root/split/c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (36 + 2 * i, 44, 3), dtype=np.uint8)).save(root/split/c/f'{c}_{i}.png')
    return root


def test_mtlat_imagenet100_streams_an_image_folder(tmp_path):
    folder = write_image_folder(tmp_path/'imagenet100')
    recipe = mtlat.MTLATRecipe.quick(dataset='imagenet100', data_dir=str(folder), methods=('standard', 'mtlat'), ablations=(), image_size=32,
                                     batch_size=8, epochs=1, train_size=None, eval_size=None, cost_steps=1, workers=0, device='cpu')
    train, test = mtlat.mtlat_data(recipe)
    assert isinstance(train, ImageFolderData) and (len(train), len(test), train.shape) == (24, 6, (3, 32, 32))
    with one_thread(): result = mtlat.reproduction.run(recipe, log=None)
    recs = result.records
    assert (list(recs.method), set(recs.dataset)) == (['standard', 'mtlat'], {'imagenet100'})
    assert set(mtlat.PERTURBATIONS) <= set(recs.columns) and recs[mtlat.PERTURBATIONS].notna().all().all()
    js = mtlat.reproduction.report(result, out=tmp_path/'out', log=None)
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == ['mtlat_imagenet100_cpu.csv', 'mtlat_imagenet100_cpu.json', 'mtlat_imagenet100_cpu_scores.png']
    assert js['classes'] == ['n01440764', 'n01443537', 'n01484850']  # the folder's classes, declared in the result
    assert set(js['step_cost']['seconds_per_step']) >= {'standard', 'mtlat'}


def test_image_folder_holds_out_ten_percent_of_each_class(tmp_path):
    for c in ('a', 'b'):
        (tmp_path/c).mkdir()
        for i in range(20): Image.new('RGB', (10, 12), (i, 0, 0)).save(tmp_path/c/f'{i}.png')
    (tr, ytr), (te, yte), classes = image_folder_splits(tmp_path)
    assert (classes, len(tr), sorted(yte)) == (['a', 'b'], 36, [0, 0, 1, 1])
    assert not set(tr) & set(te) and image_folder_splits(tmp_path)[1] == (te, yte)
    assert image_folder_splits(tmp_path, seed=1)[1][0] != te


def test_mtlat_command_line_selects_imagenet100(tmp_path):
    r = options(mtlat.reproduction, '--dataset', 'imagenet100', '--data-dir', str(tmp_path), '--full')
    assert (r.model_name(), r.image_size, r.augment, r.epochs, r.batch_size, r.lr, r.train_size, r.eval_size) == ('resnet50', 224, 'resize', 90, 256, 0.002, None, None)
    with pytest.raises(ValueError, match='data_dir: ImageNet-100 is read from an image folder'):
        options(mtlat.reproduction, '--dataset', 'imagenet100')
