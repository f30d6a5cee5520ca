"""Checkpoints are atomic and resuming reproduces the uninterrupted run exactly on the CPU."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

JOB = Path(__file__).with_name('_train_job.py')
EPOCHS = 4


def run(*args, **kw):
    return subprocess.Popen([sys.executable, str(JOB), *map(str, args)], **kw)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path, fmnist_available):
    ref = run(tmp_path/'ref', '-', 'fresh', EPOCHS)
    ckpt = tmp_path/'ckpt'
    job = run(tmp_path/'killed', ckpt, 'fresh', EPOCHS)
    # wait for the first checkpoint, then kill somewhere inside the second epoch
    deadline = time.time() + 240
    while time.time() < deadline and not (ckpt/'latest.json').exists():
        time.sleep(0.05)
        assert job.poll() is None, 'training ended before it could be killed'
    assert (ckpt/'latest.json').exists(), 'no checkpoint appeared'
    time.sleep(0.4)
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL
    done = json.loads((ckpt/'latest.json').read_text())['name']
    assert done < f'ckpt-{EPOCHS:04d}', 'the run finished before the kill'
    assert (ckpt/f'{done}.safetensors').exists() and (ckpt/f'{done}.json').exists()
    resumed = run(tmp_path/'resumed', ckpt, 'resume', EPOCHS)
    assert resumed.wait() == 0 and ref.wait() == 0
    a, b = load_file(str(tmp_path/'ref.safetensors')), load_file(str(tmp_path/'resumed.safetensors'))
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k


def test_resume_history_continues(tmp_path, fmnist_available):
    from robust_nb.data import load_dataset
    from robust_nb.models import LeNet
    from robust_nb.train import fit
    train = load_dataset('fashion_mnist', 'train').take(500, seed=1)
    torch.manual_seed(0)
    h1 = fit(LeNet(embed_dim=32), train, epochs=1, batch_size=50, checkpoint_dir=tmp_path, progress=False, device='cpu')
    torch.manual_seed(0)
    h2 = fit(LeNet(embed_dim=32), train, epochs=2, batch_size=50, checkpoint_dir=tmp_path, resume=True, progress=False, device='cpu')
    assert list(h2.epoch) == [1, 2]
    assert h2.train_loss.iloc[0] == h1.train_loss.iloc[0]


def test_checkpoint_write_failure_keeps_previous(tmp_path, monkeypatch):
    from robust_nb import train as tr
    lin = torch.nn.Linear(2, 2)
    tr.save_checkpoint(tmp_path, 'ckpt-0001', {'model': lin.state_dict()}, {'epoch': 0})
    def boom(path, data):  # the weights' write fails half-way
        with open(path, 'wb') as f: f.write(data[:len(data) // 2])
        raise OSError('disk full')
    monkeypatch.setattr(Path, 'write_bytes', boom)
    with pytest.raises(OSError):
        tr.save_checkpoint(tmp_path, 'ckpt-0002', {'model': lin.state_dict()}, {'epoch': 1})
    states, meta = tr.load_checkpoint(tmp_path)
    assert meta['epoch'] == 0
    assert not (tmp_path/'ckpt-0002.safetensors').exists()
    assert not list(tmp_path.glob('.*tmp*'))


def test_checkpoints_never_pickle(tmp_path):
    from robust_nb.train import save_checkpoint
    save_checkpoint(tmp_path, 'c', {'model': torch.nn.Linear(2, 2).state_dict()})
    for p in tmp_path.iterdir():
        assert p.suffix in ('.safetensors', '.json'), p
