"""The same seed gives the same numbers on the CPU."""
import torch

from robust_nb.core import seed_everything
from robust_nb.data import load_dataset
from robust_nb.models import LeNet
from robust_nb.train import ExponentialDecay, fit


def run(seed):
    train = load_dataset('fashion_mnist', 'train').take(1500, seed=3)
    val = load_dataset('fashion_mnist', 'test').take(500, seed=3)
    seed_everything(seed)
    model = LeNet(embed_dim=32)
    hist = fit(model, train, epochs=2, val=val, batch_size=64, lr=2e-3, schedule=ExponentialDecay(0.89), seed=seed,
               device='cpu', progress=False)
    return hist.drop(columns='seconds'), model.state_dict()


def test_same_seed_same_history(fmnist_available):
    (h1, w1), (h2, w2) = run(0), run(0)
    assert h1.equals(h2)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_different_seed_differs(fmnist_available):
    (h1, _), (h2, _) = run(0), run(1)
    assert not h1.equals(h2)
