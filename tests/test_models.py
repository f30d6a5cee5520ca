"""Every model has the embed/head split; any torchvision classifier can be wrapped."""
import pytest
import torch
import torchvision

from robust_nb.models import MODELS, PairedAutoEncoder, TorchvisionClassifier, create_model


@pytest.mark.parametrize('name', list(MODELS))
@pytest.mark.parametrize('shape', [(1, 28), (3, 32)])
def test_embed_head_split(name, shape):
    c, s = shape
    kw = dict(depth=10, width=1) if name == 'wrn' else {}
    m = create_model(name, in_channels=c, num_classes=7, image_size=s, **kw).eval()
    x = torch.rand(3, c, s, s)
    with torch.no_grad():
        z = m.embed(x)
        assert z.ndim == 2 and z.shape[0] == 3
        assert torch.equal(m(x), m.head(z))            # forward is head(embed(x)): the same computation
        assert m(x).shape == (3, 7)


def test_torchvision_resnet50():
    m = TorchvisionClassifier(torchvision.models.resnet50(num_classes=5)).eval()
    with torch.no_grad():
        x = torch.rand(2, 3, 64, 64)
        assert m.embed(x).shape == (2, 2048) and m(x).shape == (2, 5)


def test_torchvision_without_linear():
    with pytest.raises(ValueError, match='model: has no nn.Linear'):
        TorchvisionClassifier(torch.nn.Conv2d(3, 3, 1))


def test_autoencoder_size_check():
    with pytest.raises(ValueError, match='image_size: must be divisible by 4'):
        PairedAutoEncoder(image_size=30)
