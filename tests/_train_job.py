"""A small training run used by test_resume.py: LeNet on 3,000 Fashion-MNIST images, checkpointing every epoch."""
import sys
from pathlib import Path

import torch

from robust_nb.data import load_dataset
from robust_nb.models import LeNet
from robust_nb.train import fit, save_model

out, ckpt, resume, epochs = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == 'resume', int(sys.argv[4])
torch.set_num_threads(1)
torch.manual_seed(0)
model = LeNet(embed_dim=64)
train = load_dataset('fashion_mnist', 'train').take(3000, seed=0)
fit(model, train, epochs=epochs, batch_size=32, lr=2e-3, seed=7, device='cpu', checkpoint_dir=ckpt if ckpt != '-' else None,
    resume=resume, progress=False)
save_model(model, out)
