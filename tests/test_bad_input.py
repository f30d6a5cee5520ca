"""Bad input gets a ValueError naming the argument and what is accepted."""
import pytest
import torch

from robust_nb.core import TrainingDivergedError
from robust_nb.data import ImageData, load_dataset
from robust_nb.models import LeNet, create_model
from robust_nb.train import CrossEntropy, fit, load_checkpoint


@pytest.fixture(scope='module')
def small():
    return load_dataset('fashion_mnist', 'test').take(256, seed=0)


def test_empty_dataset():
    empty = ImageData(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match='train: the data set is empty'):
        fit(LeNet(), empty, progress=False)


@pytest.mark.parametrize('bs', [0, -3])
def test_batch_size(small, bs):
    with pytest.raises(ValueError, match='batch_size: must be >= 1'):
        fit(LeNet(), small, batch_size=bs, progress=False)


def test_unknown_model():
    with pytest.raises(ValueError, match="model: unknown value 'resnet9000'; accepted: 'lenet'"):
        create_model('resnet9000')


def test_unknown_dataset():
    with pytest.raises(ValueError, match="name: unknown value 'imagenet'; accepted: 'mnist', 'fashion_mnist'"):
        load_dataset('imagenet')


def test_images_outside_unit_range():
    x = torch.rand(8, 1, 28, 28) * 2
    with pytest.raises(ValueError, match=r'x: values must lie in \[0, 1\]'):
        ImageData(x, torch.zeros(8, dtype=torch.long))
    data = ImageData(x / 2, torch.zeros(8, dtype=torch.long))
    data.x.mul_(2)   # changed after the constructor checked it: fit checks again
    with pytest.raises(ValueError, match=r'train:.*\[0, 1\]'):
        fit(LeNet(), data, progress=False)


def test_wrong_shape_for_model(small):
    with pytest.raises(ValueError, match=r'train: images of shape \(1, 28, 28\) do not fit the model, which expects \(3, 32, 32\)'):
        fit(create_model('resnet20', in_channels=3, image_size=32), small, progress=False)


def test_nan_loss_names_step_and_keeps_last_good_checkpoint(small, tmp_path):
    def objective(model, batch, state):
        loss, logs = CrossEntropy()(model, batch, state)
        return (loss * float('nan') if state.step == 5 else loss), logs
    with pytest.raises(TrainingDivergedError, match='at step 5 \\(epoch 2'):
        fit(LeNet(), small, epochs=3, batch_size=64, objective=objective, checkpoint_dir=tmp_path, progress=False)
    states, meta = load_checkpoint(tmp_path)
    assert meta['epoch'] == 0 and len(meta['history']) == 1
    assert all(torch.isfinite(v).all() for v in states['model'].values())


def test_bad_lr_and_epochs(small):
    with pytest.raises(ValueError, match='lr: must be > 0'):
        fit(LeNet(), small, lr=0, progress=False)
    with pytest.raises(ValueError, match='epochs: must be >= 1'):
        fit(LeNet(), small, epochs=0, progress=False)
    with pytest.raises(ValueError, match="optimizer: unknown value 'rmsprop'"):
        fit(LeNet(), small, optimizer='rmsprop', progress=False)
