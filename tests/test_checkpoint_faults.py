"""Checkpoints under faults: SIGKILL at random moments, corrupt bytes, NaN gradients.

A killed run may lose the epoch in progress but never the latest checkpoint: after every kill it loads, its SHA-256 verified,
and resuming to the end gives the uninterrupted run's weights bit for bit, with nothing left behind.
"""
import json, os, random, re, shutil, subprocess, sys, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robust_nb.core import CorruptFileError, TrainingDivergedError
from robust_nb.models import LeNet
from robust_nb.train import CrossEntropy, fit, latest_checkpoint, load_checkpoint, load_model, save_checkpoint, save_model

JOB = Path(__file__).with_name('_train_job.py')
IMAGES, BATCH, EPOCHS, KILLS = 64, 32, 40, 10  # 2 steps an epoch, so writing checkpoints takes a good part of the time


class ForkServer:
    "_train_job.py's fork server: each run starts in milliseconds, and a kill reaches the run it was meant for."
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(JOB), 'serve', str(IMAGES), str(BATCH)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, out: Path, ckpt, mode: str, kill_after: float | None = None) -> tuple[int, float]:
        "Exit code (-9 when killed) and seconds of one run of EPOCHS epochs."
        self.proc.stdin.write(f"{out} {ckpt} {mode} {EPOCHS} {'-' if kill_after is None else f'{kill_after:.4f}'}\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        assert len(reply) == 3 and reply[0] == 'exit', f'the fork server replied {reply!r} and exited with {self.proc.poll()}'
        return int(reply[1]), float(reply[2])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def temp_files(folder: Path) -> list[str]:
    "Hidden files: atomic_write's `.{name}.tmp{pid}` and any other writer's temporary files."
    return sorted(p.name for p in folder.iterdir() if p.name.startswith('.'))


def orphan_sidecars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob('*.json') if p.name != 'latest.json' and not p.with_suffix('.safetensors').exists())


def latest_epoch(ckpt: Path, scratch: Path) -> int:
    "The epoch (0-based) of the latest checkpoint in `ckpt`, loaded from a copy with its hash verified; -1 when there is none yet."
    if not ckpt.exists(): return -1
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(ckpt, scratch)  # loading cleans debris: do it on a copy, so that only the training runs clean the original
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*incomplete')  # latest.json never names an incomplete checkpoint
        name = latest_checkpoint(scratch)
        if name is None: return -1
        assert 'sha256' in json.loads((scratch/f'{name}.json').read_text())
        states, meta = load_checkpoint(scratch)
    LeNet(embed_dim=64).load_state_dict(states['model'])
    assert all(torch.isfinite(v).all() for v in states['model'].values())
    assert f"ckpt-{meta['epoch'] + 1:04d}" == name
    return meta['epoch']


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='the fork server needs os.fork')
def test_sigkill_at_random_moments_then_resume(tmp_path, fmnist_available):
    server = ForkServer()
    try:
        code, t_ref = server.run(tmp_path/'ref', '-', 'fresh')
        assert code == 0
        rng, ckpt, done, log = random.Random(20240607), tmp_path/'ckpt', -1, []
        for _ in range(KILLS):
            code, secs = server.run(tmp_path/'run', ckpt, 'resume', kill_after=rng.uniform(0, t_ref / 6))
            assert code in (-9, 0), f'a run ended with {code}'
            debris = temp_files(ckpt) + orphan_sidecars(ckpt) if ckpt.exists() else []
            epoch = latest_epoch(ckpt, tmp_path/'copy')
            assert epoch >= done, f'the latest checkpoint went back from epoch {done + 1} to {epoch + 1}'
            done = epoch
            log.append((round(secs, 2), code, epoch + 1, debris))
            if done == EPOCHS - 1: break  # finished before a kill (or killed after its last checkpoint): nothing left to resume
        print(f'uninterrupted run {t_ref:.1f} s; kills (seconds, exit code, epochs checkpointed, debris left):', *log, sep='\n  ')
        if done < EPOCHS - 1:
            assert server.run(tmp_path/'run', ckpt, 'resume')[0] == 0
            assert temp_files(ckpt) == [] and orphan_sidecars(ckpt) == []
            assert sorted(p.name for p in ckpt.iterdir()) == [f'ckpt-{EPOCHS - 1:04d}.json', f'ckpt-{EPOCHS - 1:04d}.safetensors',
                                                              f'ckpt-{EPOCHS:04d}.json', f'ckpt-{EPOCHS:04d}.safetensors', 'latest.json']
    finally:
        server.close()
    states, meta = load_checkpoint(ckpt)
    assert meta['epoch'] == EPOCHS - 1
    assert temp_files(ckpt) == [] and orphan_sidecars(ckpt) == []
    ref = load_file(str(tmp_path/'ref.safetensors'))
    assert ref.keys() == states['model'].keys()
    for k in ref: assert torch.equal(ref[k], states['model'][k]), k


def test_random_bytes_over_a_checkpoint_are_caught(tmp_path):
    model = LeNet(embed_dim=64)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward(); opt.step()
    save_checkpoint(tmp_path, 'ckpt-0001', {'model': model.state_dict(), 'optimizer': opt.state_dict()}, {'epoch': 0})
    w = tmp_path/'ckpt-0001.safetensors'
    raw = bytearray(w.read_bytes()); mid = len(raw) // 2
    raw[mid:mid + 1000] = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    w.write_bytes(raw)
    load_file(str(w))  # the format alone does not notice: the bytes changed are tensor data
    with pytest.raises(CorruptFileError, match=r'ckpt-0001\.safetensors: the file is corrupt.*delete ckpt-0001\.safetensors and ckpt-0001\.json'):
        load_checkpoint(tmp_path)
    path = save_model(model, tmp_path/'model')
    raw = bytearray(path.read_bytes()); raw[len(raw) // 2] ^= 0xFF; path.write_bytes(raw)
    with pytest.raises(CorruptFileError, match=r'model\.safetensors: the file is corrupt'):
        load_model(LeNet(embed_dim=64), path)


def test_sidecars_without_a_hash_still_load(tmp_path):
    lin = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path, 'c', {'model': lin.state_dict()}, {'epoch': 0})
    side = tmp_path/'c.json'
    old = json.loads(side.read_text()); del old['sha256']; side.write_text(json.dumps(old))
    states, meta = load_checkpoint(tmp_path)
    assert torch.equal(states['model']['weight'], lin.weight.detach())


class NanGrad(torch.autograd.Function):
    "The identity, whose gradient is NaN: a finite loss with NaN gradients."
    @staticmethod
    def forward(ctx, x): return x.clone()
    @staticmethod
    def backward(ctx, g): return g * float('nan')


@pytest.fixture(scope='module')
def small():
    from robust_nb.data import load_dataset
    return load_dataset('fashion_mnist', 'test').take(96, seed=0)  # 3 steps an epoch in batches of 32


@pytest.mark.parametrize('optimizer', ['adam', 'sgd'])
def test_nan_gradients_on_the_last_step_of_an_epoch(small, tmp_path, optimizer, fmnist_available):
    def objective(model, batch, state):
        loss, logs = CrossEntropy()(model, batch, state)
        return (NanGrad.apply(loss) if state.step == 5 else loss), logs  # step 5: the last of epoch 2
    with pytest.raises(TrainingDivergedError) as e:
        fit(LeNet(embed_dim=16), small, epochs=4, batch_size=32, objective=objective, optimizer=optimizer, checkpoint_dir=tmp_path,
            progress=False, device='cpu')
    assert str(e.value).startswith('parameters became NaN or infinite at step 5 (epoch 2, batch 3) although the loss was finite (')
    assert str(e.value).endswith(f"The last good checkpoint is {tmp_path/'ckpt-0001.safetensors'}; resume=True continues from it.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ckpt-0001.json', 'ckpt-0001.safetensors', 'latest.json']
    states, meta = load_checkpoint(tmp_path)
    assert meta['epoch'] == 0
    tensors = [*states['model'].values(), *(v for s in states['optimizer']['state'].values() for v in s.values() if torch.is_tensor(v))]
    assert all(torch.isfinite(t).all() for t in tensors)


def test_nan_gradients_before_the_first_checkpoint(small, tmp_path, fmnist_available):
    def objective(model, batch, state):
        loss, logs = CrossEntropy()(model, batch, state)
        return (NanGrad.apply(loss) if state.step == 2 else loss), logs  # the last step of epoch 1
    with pytest.raises(TrainingDivergedError, match=rf'at step 2 \(epoch 1, batch 3\).*No checkpoint was written to {re.escape(str(tmp_path))} before it\.$'):
        fit(LeNet(embed_dim=16), small, epochs=2, batch_size=32, objective=objective, checkpoint_dir=tmp_path, progress=False, device='cpu')
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_optimizer_state_is_never_saved(small, tmp_path, fmnist_available):
    class Poisoned(torch.optim.SGD):
        def step(self, closure=None):
            out = super().step(closure)
            if self.calls == 3:  # the last step of epoch 2: parameters stay finite, the momentum buffer does not
                next(iter(self.state.values()))['momentum_buffer'][0] = float('inf')
            self.calls += 1
            return out
    def make(params):
        opt = Poisoned(params, lr=1e-3, momentum=0.9); opt.calls = 0
        return opt
    with pytest.raises(TrainingDivergedError, match=r"optimizer state 'momentum_buffer' of parameter 0 holds NaN or infinite values at the end of epoch 2"):
        fit(LeNet(embed_dim=16), small, epochs=3, batch_size=48, optimizer=make, checkpoint_dir=tmp_path, progress=False, device='cpu')
    assert latest_checkpoint(tmp_path) == 'ckpt-0001'


class Crash(BaseException):
    "Stands for a kill: raised instead of one file operation of a save."


@pytest.mark.parametrize('k', range(10))
def test_a_save_stopped_before_its_kth_file_operation(tmp_path, monkeypatch, k):
    "Every point between the file operations of a save (9 of them here) leaves the previous or the new checkpoint loadable."
    lin = torch.nn.Linear(3, 2)
    save = lambda e: save_checkpoint(tmp_path, f'ckpt-{e:04d}', {'model': lin.state_dict()}, {'epoch': e - 1})
    save(1); save(2)
    calls = []
    def gate(f):
        def op(*args, **kw):
            calls.append(f.__name__)
            if len(calls) == k + 1: raise Crash
            return f(*args, **kw)
        return op
    for owner, name in ((os, 'replace'), (os, 'fsync'), (Path, 'unlink')): monkeypatch.setattr(owner, name, gate(getattr(owner, name)))
    try: save(3)
    except Crash: pass
    monkeypatch.undo()
    if k == 9:  # the whole save: stale sidecar, weights, sidecar, latest.json (each written, synced, renamed), then pruning
        assert calls == ['unlink', 'fsync', 'replace', 'fsync', 'replace', 'fsync', 'replace', 'unlink', 'unlink'], calls
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*incomplete')
        states, meta = load_checkpoint(tmp_path)
    assert meta['epoch'] == (2 if k >= 7 else 1)  # latest.json is renamed into place by operation 7
    assert torch.equal(states['model']['weight'], lin.weight.detach())
    done = meta['epoch'] + 1
    save(done + 1); save(done + 2)  # what a resumed run writes next
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f'ckpt-{done + 1:04d}.json', f'ckpt-{done + 1:04d}.safetensors', f'ckpt-{done + 2:04d}.json', f'ckpt-{done + 2:04d}.safetensors', 'latest.json'])
