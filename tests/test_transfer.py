"""Transfer by paired auto-encoders (Tibo et al. Section 4): T reconstructs clean images, the clean/corrupted split,
the classifiers (the SVM against scikit-learn called directly) and bad input."""
import argparse

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from robust_nb.data import ImageData, load_dataset
from robust_nb.eval.corruptions import SUITES
from robust_nb.methods.transfer import (Transfer, _gauss_mix, clean_count, fit_paired_autoencoder, fit_transfer, mnistc_corrupt,
                                        paired_autoencoder, svm_max_samples, train_nn, train_svm, transfer, transfer_accuracy,
                                        transfer_data, transfer_split)
from robust_nb.train import evaluate
from _threads import one_thread

MNISTC = list(SUITES['mnist_c'])


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    "One torch thread for this module (in a fixture: set at import, it held for the whole session)."
    with one_thread(): yield


@pytest.fixture(scope='module')
def fm():
    return load_dataset('fashion_mnist', 'test').take(700, seed=0)


def mse(a, b): return ((a - b) ** 2).mean().item()


# --- T reconstructs clean images ------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def stripe_pair(fm):
    split = transfer_split(512, 256, ['mnistc_stripe'], seed=0)
    clean, cor = transfer_data(fm.x[:512], split, seed=0)
    ae = fit_paired_autoencoder(clean, cor['mnistc_stripe'], steps=300, batch_size=32, balance=True, width=0.25, seed=0, device='cpu')
    return ae, clean


def test_transfer_maps_corrupted_images_to_their_clean_originals(fm, stripe_pair):
    ae, clean = stripe_pair
    held = fm[512:][0]  # images the pair never saw, in either form
    held_c = mnistc_corrupt(held, 'mnistc_stripe', seed=1)
    t_err, id_err = mse(transfer(ae, held_c), held), mse(held_c, held)
    mean_err = mse(clean.mean(0, keepdim=True).expand_as(held), held)  # best map that ignores its input
    assert t_err < 0.25 * id_err, (t_err, id_err)
    assert t_err < 0.8 * mean_err, (t_err, mean_err)
    # and D1(E(x)) reconstructs clean held-out images better than the mean image
    assert mse(transfer(ae, held), held) < 0.6 * mean_err


def test_transfer_is_d1_of_e(stripe_pair, fm):
    ae, _ = stripe_pair
    x = fm[:5][0]
    with torch.no_grad(): ref = ae.decoder_clean(ae.encoder(x))
    torch.testing.assert_close(transfer(ae, x, batch_size=2), ref)


def test_clean_only_training_leaves_d2_untouched(fm):
    x = fm[:64][0]
    ae = paired_autoencoder(width=0.25)
    d2 = {k: v.clone() for k, v in ae.decoder_corrupt.state_dict().items()}
    d1 = {k: v.clone() for k, v in ae.decoder_clean.state_dict().items()}
    fit_paired_autoencoder(x, None, steps=3, width=0.25, model=ae, device='cpu')
    assert all(torch.equal(v, ae.decoder_corrupt.state_dict()[k]) for k, v in d2.items())
    assert not all(torch.equal(v, ae.decoder_clean.state_dict()[k]) for k, v in d1.items())
    fit_paired_autoencoder(x[:32], x[32:], steps=3, model=ae, device='cpu')
    assert not all(torch.equal(v, ae.decoder_corrupt.state_dict()[k]) for k, v in d2.items())


def test_same_seed_same_pair(fm):
    x = fm[:64][0]
    a = fit_paired_autoencoder(x[:32], x[32:], steps=4, width=0.25, seed=3, device='cpu')
    b = fit_paired_autoencoder(x[:32], x[32:], steps=4, width=0.25, seed=3, device='cpu')
    c = fit_paired_autoencoder(x[:32], x[32:], steps=4, width=0.25, seed=4, device='cpu')
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


# --- the split: never a clean image together with its corrupted twin; N_o and N_c --------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 3000), frac=st.floats(0, 1), k=st.integers(1, 16), seed=st.integers(0, 10))
def test_split_never_pairs_a_clean_image_with_its_twin(n, frac, k, seed):
    n_c = int(frac * (n // 2))
    names = MNISTC[:k] if k <= 15 else MNISTC + ['identity']
    s = transfer_split(n, n_c, names, seed=seed)
    clean = set(s.clean.tolist())
    assert len(clean) == len(s.clean) == s.n_o == clean_count(n, n_c, k)
    for c, idx in (s.corrupted.items() if n_c else []):
        assert len(set(idx.tolist())) == n_c  # N_c distinct images per corruption
        assert not clean & set(idx.tolist())  # none is the twin of a clean training image
        assert idx.min() >= 0 and idx.max() < n
    if n_c and k * n_c <= n // 2:  # the paper's regime: N_o = n - k N_c and disjoint blocks
        assert s.n_o == n - k * n_c
        assert len(s.sources()) == k * n_c
    if n_c and k * n_c > n // 2:  # capped: half the set stays clean
        assert s.n_o == n - n // 2
    assert len(clean | set(s.sources().tolist())) <= n


def test_paper_counts():
    assert [clean_count(60000, n_c) for n_c in (0, 128, 1024, 30000)] == [60000, 58080, 44640, 30000]
    s = transfer_split(60000, 1024)
    assert s.n_o == 44640 and s.n_c == 1024 and len(s.corrupted) == 15 and len(s.sources()) == 15 * 1024
    s = transfer_split(60000, 0)
    assert s.n_o == 60000 and s.corrupted == {}


def test_transfer_data_uses_exactly_the_split(fm):
    x = fm.x[:200]
    s = transfer_split(200, 10, ['mnistc_stripe', 'mnistc_brightness'], seed=1)
    clean, cor = transfer_data(x, s, seed=0)
    torch.testing.assert_close(clean, x[s.clean].float() / 255)
    # stripe inverts the outer columns: undoing it recovers exactly the source images, which are not among the clean ones
    src = x[s.corrupted['mnistc_stripe']].float() / 255
    undone = cor['mnistc_stripe'].clone()
    undone[..., :7], undone[..., 21:] = 1 - undone[..., :7], 1 - undone[..., 21:]
    torch.testing.assert_close(undone, src, atol=1e-6, rtol=0)
    for img in undone:
        assert not any(torch.allclose(img, c, atol=1e-6) for c in clean)
    assert cor['mnistc_brightness'].shape == (10, 1, 28, 28)


# --- classifiers ------------------------------------------------------------------------------------------------------

def test_svm_agrees_with_scikit_learn(fm):
    from sklearn.svm import SVC
    train, test = fm.take(250, seed=2), fm[600:][0]
    x, y = train.tensors()
    ours = train_svm(train).predict(test).numpy()
    direct = SVC(kernel='rbf', gamma=0.05, C=5).fit(x.flatten(1).numpy().astype(np.float64), y.numpy())
    np.testing.assert_array_equal(ours, direct.predict(test.flatten(1).numpy().astype(np.float64)))
    # GAUSS: the same SVC on the noise-mixed images
    noisy = _gauss_mix(x, 0.1, seed=5)
    direct_g = SVC(kernel='rbf', gamma=0.05, C=5).fit(noisy.flatten(1).numpy().astype(np.float64), y.numpy())
    np.testing.assert_array_equal(train_svm(train, noise_sigma=0.1, seed=5).predict(test).numpy(),
                                  direct_g.predict(test.flatten(1).numpy().astype(np.float64)))


def test_gauss_mix_noises_about_half():
    x = torch.full((2000, 1, 4, 4), 0.5)
    out = _gauss_mix(x, 0.1, seed=0)
    hit = (out != x).flatten(1).any(1)
    # seeded; within 5 standard errors: of a binomial share of 2000, 5 * sqrt(1/4 / 2000), and of the standard deviation
    # of m normal numbers, 5 * 0.1 / sqrt(2 m)
    assert abs(hit.double().mean().item() - 0.5) < 5 * (0.25 / 2000) ** 0.5
    noise = (out[hit] - 0.5).double()
    assert abs(noise.std().item() - 0.1) < 5 * 0.1 / (2 * noise.numel()) ** 0.5


def test_nn_keeps_the_best_validation_epoch(fm):
    train = fm.take(300, seed=3)
    clf = train_nn(train, epochs=3, max_steps_per_epoch=4, seed=1, device='cpu')
    _, val = train.split(0.1, seed=1)
    assert evaluate(clf.model, val)['acc'] == max(h['val_acc'] for h in clf.history)


def test_identity_under_separate_deals_images_to_every_pair(fm):
    x, y = fm[:9][0], fm[:9][1]
    a, b, c = (paired_autoencoder(width=0.25).eval() for _ in range(3))
    model = Transfer('transfer_separate', {'p': a, 'q': b, 'r': c}, 8)
    clf = train_svm(fm.take(100, seed=0))
    tx = x.clone()
    for k, m in enumerate((a, b, c)): tx[k::3] = transfer(m, x[k::3])
    assert transfer_accuracy(clf, x, y, 'identity', model) == clf.accuracy(tx, y)
    assert transfer_accuracy(clf, x, y, 'q', model) == clf.accuracy(transfer(b, x), y)


def test_joint_shares_one_pair_and_separate_trains_one_per_corruption(fm):
    s = transfer_split(300, 20, ['mnistc_stripe', 'mnistc_fog', 'mnistc_rotate'], seed=0)
    clean, cor = transfer_data(fm.x[:300], s)
    j = fit_transfer('transfer_joint', clean, cor, steps=1, width=0.25, device='cpu')
    sep = fit_transfer('transfer_separate', clean, cor, steps=1, width=0.25, device='cpu')
    assert len({id(m) for m in j.models.values()}) == 1 and len({id(m) for m in sep.models.values()}) == 3
    zero = fit_transfer('transfer_separate', clean, {}, corruptions=['mnistc_fog'], steps=1, width=0.25, device='cpu')
    assert zero.n_c == 0 and list(zero.models) == ['mnistc_fog']


# --- bad input --------------------------------------------------------------------------------------------------------

def test_bad_input(fm):
    with pytest.raises(ValueError, match='n_c: 30001 corrupted images per corruption do not fit in a training set of 60000; at most 30000'):
        transfer_split(60000, 30001)
    with pytest.raises(ValueError, match='n_c'): transfer_split(100, -1)
    with pytest.raises(ValueError, match='n_c'): clean_count(100, 51)
    with pytest.raises(ValueError, match='corruptions'): transfer_split(100, 1, [])
    train = fm.take(200, seed=0)
    with pytest.raises(ValueError, match=r'train: an RBF SVM on 200 samples of 784 features .* at most 100 samples fit'):
        train_svm(train, memory=200 * 2**20 + 3 * 8 * 784 * 100)
    assert svm_max_samples(784, memory=200 * 2**20 + 3 * 8 * 784 * 100) == 100
    with pytest.raises(ValueError, match='max_samples'): train_svm(train, max_samples=1)
    with pytest.raises(ValueError, match='protocol'): fit_transfer('both', fm[:4][0], {})
    with pytest.raises(ValueError, match='name'): mnistc_corrupt(fm[:4][0], 'fog')
    with pytest.raises(ValueError, match='width'): paired_autoencoder(width=-1)
    with pytest.raises(ValueError, match='loss'): fit_paired_autoencoder(fm[:4][0], steps=1, loss='l1')
    with pytest.raises(ValueError, match='corrupted'): fit_paired_autoencoder(fm[:4][0], torch.rand(4, 1, 20, 20), steps=1)
    with pytest.raises(ValueError, match='clean'): fit_paired_autoencoder(fm[:4][0] * 2, steps=1)
    with pytest.raises(ValueError, match='train: the split indexes 100 images'):
        transfer_data(fm.x[:50], transfer_split(100, 5, ['mnistc_stripe']))


def test_cli_options():
    from robust_nb.experiments.transfer import TransferRecipe, add_arguments, cli, run_transfer
    from dataclasses import replace
    p = argparse.ArgumentParser(); add_arguments(p)
    with pytest.raises(SystemExit): p.parse_args(['--quick', '--full'])
    with pytest.raises(ValueError, match='classifiers'): run_transfer(TransferRecipe.quick(classifiers=('knn',)))
    with pytest.raises(ValueError, match='dataset'): run_transfer(TransferRecipe.quick(dataset='svhn'))
    r = TransferRecipe.cpu()
    assert (r.n_cs, r.seeds, r.warm_start) == ((0, 128, 1024), 2, True)
    assert replace(TransferRecipe(), tag='').n_cs == (0, 128, 1024, 30000)
