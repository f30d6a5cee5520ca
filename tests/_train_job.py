"""Training runs for test_resume.py and test_checkpoint_faults.py: LeNet on Fashion-MNIST, checkpointing every epoch.

    python _train_job.py OUT CKPT fresh|resume EPOCHS    one run on 3,000 training images in batches of 32; weights saved to OUT
    python _train_job.py serve N BATCH_SIZE              a fork server for many short runs on the first N test images

The fork server pays for importing torch and loading the data once. It reads lines `OUT CKPT fresh|resume EPOCHS KILL_AFTER`
from stdin; for each it forks a child that trains, sends it SIGKILL if it still runs after KILL_AFTER seconds (`-`: 600 s, a guard
against a hung run), and prints `exit CODE SECONDS` (CODE as subprocess reports it: -9 after SIGKILL). A child is killed only
before it has been reaped, so the signal never reaches a process that reused its id.
"""
import os, signal, sys, tempfile, time, traceback
from pathlib import Path

import torch

from robust_nb.data import load_dataset
from robust_nb.models import LeNet
from robust_nb.train import fit, save_model


def train(out, ckpt: str, resume: bool, epochs: int, data, batch_size: int = 32, embed_dim: int = 64):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LeNet(embed_dim=embed_dim)
    fit(model, data, epochs=epochs, batch_size=batch_size, lr=2e-3, seed=7, device='cpu',
        checkpoint_dir=ckpt if ckpt != '-' else None, resume=resume, progress=False)
    save_model(model, out)


def serve(data, batch_size: int):
    with tempfile.TemporaryDirectory() as warm:  # the first fit pays for lazy imports (optimiser, checkpoints): once, here
        train(Path(warm)/'w', str(Path(warm)/'ck'), False, 1, data, batch_size)
    for line in iter(sys.stdin.readline, ''):
        out, ckpt, mode, epochs, kill_after = line.split()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 0
            try: train(out, ckpt, mode == 'resume', int(epochs), data, batch_size)
            except BaseException:
                traceback.print_exc(); code = 1
            finally:
                sys.stderr.flush(); os._exit(code)
        deadline = t0 + (float(kill_after) if kill_after != '-' else 600.0)  # '-': a guard against a hung run only
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.perf_counter() < deadline:
            time.sleep(min(0.002, max(0.0, deadline - time.perf_counter())))
        if done[0] == 0:  # still running (or a zombie: not reaped yet, so the id is still its own)
            os.kill(pid, signal.SIGKILL)
            done = os.waitpid(pid, 0)
        status = done[1]
        print('exit', os.waitstatus_to_exitcode(status), f'{time.perf_counter() - t0:.4f}', flush=True)


if __name__ == '__main__':
    torch.set_num_threads(1)  # before any work, so that no thread pool exists when the server forks
    if sys.argv[1] == 'serve':
        serve(load_dataset('fashion_mnist', 'test').take(int(sys.argv[2])), int(sys.argv[3]))
    else:
        out, ckpt, mode, epochs = sys.argv[1:5]
        train(Path(out), ckpt, mode == 'resume', int(epochs), load_dataset('fashion_mnist', 'train').take(3000, seed=0))
