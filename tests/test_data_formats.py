"""The data readers on small files written in each data set's official format."""
import gzip, pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robust_nb.core import CorruptFileError, DataNotFoundError
from robust_nb.data import find_dataset, load_dataset, write_idx

RNG = np.random.default_rng(0)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv('ROBUST_NB_DATA', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_mnist(folder: Path, n=(12, 7), gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, k in (('train', 'train', n[0]), ('test', 't10k', n[1])):
        x = RNG.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, k).astype(np.uint8)
        ext = '.gz' if gz else ''
        write_idx(folder/f'{prefix}-images-idx3-ubyte{ext}', x)
        write_idx(folder/f'{prefix}-labels-idx1-ubyte{ext}', y)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize('name,sub,gz', [('mnist', 'mnist', True), ('mnist', 'MNIST/raw', False), ('fashion_mnist', 'FashionMNIST/raw', True)])
def test_idx_reader(root, name, sub, gz):
    ref = write_mnist(root/sub, gz=gz)
    for split in ('train', 'test'):
        d = load_dataset(name, split)
        x, y = ref[split]
        assert d.x.dtype == torch.uint8 and d.shape == (1, 28, 28)
        assert torch.equal(d.x[:, 0], torch.from_numpy(x)) and torch.equal(d.y, torch.from_numpy(y.astype(np.int64)))
        xb, yb = d[0:3]
        assert xb.dtype == torch.float32
        # x / 255 * 255 rounds twice, 2^-24 relative each
        assert torch.allclose(xb[:, 0] * 255, torch.from_numpy(x[:3]).float(), rtol=3 * 2**-24, atol=0)


def test_truncated_gzip_names_file(root):
    write_mnist(root/'mnist')
    f = root/'mnist'/'train-images-idx3-ubyte.gz'
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=str(f)):
        load_dataset('mnist', 'train')


def test_short_idx_body_names_file(root):
    write_mnist(root/'mnist', gz=False)
    f = root/'mnist'/'t10k-labels-idx1-ubyte'
    f.write_bytes(f.read_bytes()[:-2])
    with pytest.raises(CorruptFileError, match='t10k-labels-idx1-ubyte: expected 7 data bytes'):
        load_dataset('mnist', 'test')


def test_not_idx(root):
    (root/'mnist').mkdir()
    for n in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'):
        with gzip.open(root/'mnist'/f'{n}.gz', 'wb') as f: f.write(b'hello world, not an idx file')
    with pytest.raises(CorruptFileError, match='bad magic number'):
        load_dataset('mnist', 'train')


def write_cifar(folder: Path, hundred: bool, n=6):
    folder.mkdir(parents=True)
    key = 'fine_labels' if hundred else 'labels'
    k = 100 if hundred else 10
    batches = ['train', 'test'] if hundred else [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']
    ref = {}
    for b in batches:
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = RNG.integers(0, k, n).tolist()
        entry = {'data': x, key: y, 'batch_label': b}
        if hundred: entry['coarse_labels'] = [0] * n
        with open(folder/b, 'wb') as f: pickle.dump(entry, f)
        ref[b] = (x, y)
    meta = {'fine_label_names': [f'c{i}' for i in range(k)]} if hundred else {'label_names': [f'class{i}' for i in range(k)]}
    with open(folder/('meta' if hundred else 'batches.meta'), 'wb') as f: pickle.dump(meta, f)
    return ref


def test_cifar10_reader(root):
    ref = write_cifar(root/'cifar-10-batches-py', hundred=False)
    tr, te = load_dataset('cifar10', 'train'), load_dataset('cifar10', 'test')
    assert len(tr) == 30 and len(te) == 6 and tr.shape == (3, 32, 32)
    x, y = ref['test_batch']
    assert torch.equal(te.x, torch.from_numpy(x).view(6, 3, 32, 32))
    assert te.y.tolist() == y and te.classes[3] == 'class3'
    x1, _ = ref['data_batch_1']
    assert torch.equal(tr.x[:6], torch.from_numpy(x1).view(6, 3, 32, 32))


def test_cifar100_reader(root):
    ref = write_cifar(root/'cifar-100-python', hundred=True)
    te = load_dataset('cifar100', 'test')
    x, y = ref['test']
    assert torch.equal(te.x, torch.from_numpy(x).view(6, 3, 32, 32)) and te.y.tolist() == y
    assert te.num_classes == 100 and te.classes[5] == 'c5'


def test_cifar_truncated(root):
    write_cifar(root/'cifar-10-batches-py', hundred=False)
    f = root/'cifar-10-batches-py'/'test_batch'
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(CorruptFileError, match='cifar-10-batches-py'):
        load_dataset('cifar10', 'test')


def test_svhn_reader(root):
    from scipy.io import savemat
    (root/'svhn').mkdir()
    x = RNG.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [2], [9], [10]], dtype=np.uint8)   # SVHN stores digit 0 as label 10
    savemat(root/'svhn'/'test_32x32.mat', {'X': x, 'y': y})
    d = load_dataset('svhn', 'test')
    assert d.y.tolist() == [0, 1, 2, 9, 0]
    assert torch.equal(d.x[2], torch.from_numpy(x[..., 2]).permute(2, 0, 1))


def test_svhn_corrupt(root):
    (root/'svhn').mkdir()
    (root/'svhn'/'test_32x32.mat').write_bytes(b'MATLAB 5.0 MAT-file, broken')
    with pytest.raises(CorruptFileError, match='test_32x32.mat'):
        load_dataset('svhn', 'test')


def test_missing_dataset_lists_places_and_fixes(root):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset('cifar10', 'test')
    msg = str(e.value)
    assert str(root/'cifar-10-batches-py') in msg
    assert 'robust-nb data --download cifar10' in msg and 'download=True' in msg and 'ROBUST_NB_DATA' in msg


def test_env_root_comes_first(root):
    write_mnist(root/'fashion-mnist')
    assert find_dataset('fashion_mnist', 'test') == root/'fashion-mnist'


def test_device_move_and_batches(root):
    write_mnist(root/'mnist', n=(10, 3))
    d = load_dataset('mnist', 'train', device='cpu')
    seen = torch.cat([yb for _, yb in d.batches(4, shuffle=True, generator=1)])
    assert sorted(seen.tolist()) == sorted(d.y.tolist())
