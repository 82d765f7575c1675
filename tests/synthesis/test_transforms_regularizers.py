"""Transforms, regularisers and parameterisations on real session images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v4compact.errors import InvalidInputError
from v4compact.synthesis import param, transforms
from v4compact.synthesis.regularizers import (
    gaussian_blur,
    gaussian_kernel,
    limit_contrast,
    to_grayscale,
    total_variation,
)


@pytest.fixture(scope="module")
def images(heldout_images):
    """float32 (4, 3, 112, 112) pixels 0-255 of real session images."""
    return torch.from_numpy(heldout_images[:4].transpose(0, 3, 1, 2).astype(np.float32).copy())


def test_gaussian_blur_keeps_constants_and_smooths(images):
    k = gaussian_kernel(1.0)
    assert k.numel() == 9 and abs(float(k.sum()) - 1) < 1e-6
    flat = torch.full((1, 3, 20, 20), 77.0)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)
    blurred = gaussian_blur(images, 1.0)
    assert blurred.shape == images.shape
    tv = total_variation(1.0)

    class _Ctx:
        def __init__(self, x):
            self.images, self.num_images = x, len(x)

        def layer(self, name):
            return self.images

    assert torch.all(tv(_Ctx(blurred)) > tv(_Ctx(images)))  # smoother = higher score
    with pytest.raises(InvalidInputError):
        gaussian_kernel(0)


@pytest.mark.parametrize("shape", [(2, 3, 112, 112), (1, 2, 20, 31)])
def test_gaussian_blur_is_scipys_mirror_filter(shape):
    """The matrix-product blur equals scipy's separable Gaussian (sigma 1, truncate 4,
    mode "mirror" = torch's "reflect") on each channel, non-square images included (to the
    rounding of the float32 kernel, ~1e-7)."""
    from scipy.ndimage import gaussian_filter

    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.stack([[gaussian_filter(c, 1.0, mode="mirror", truncate=4.0) for c in img]
                         for img in x.numpy()])
    np.testing.assert_allclose(gaussian_blur(x, 1.0).numpy(), expected, rtol=0,
                               atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(gaussian_blur(x.float(), 1.0).numpy(), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    with pytest.raises(InvalidInputError, match="smaller sigma"):
        gaussian_blur(torch.zeros(1, 1, 5, 5), 2.0)


def test_grayscale_and_contrast(images):
    gray = to_grayscale(images)
    torch.testing.assert_close(gray[:, 0], gray[:, 2])
    limited = limit_contrast(images, 20.0)
    dev = limited - limited.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.all(dev.pow(2).mean(dim=(1, 2, 3)).sqrt() <= 20.0 + 1e-3)
    torch.testing.assert_close(limited.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)))


def test_transforms_are_seeded_and_keep_the_size(images):
    chain = transforms.compose([transforms.jitter(4), transforms.random_scale([0.9, 1.1]),
                                transforms.random_rotate([-10, 10])])
    a = chain(images, torch.Generator().manual_seed(3))
    b = chain(images, torch.Generator().manual_seed(3))
    assert a.shape == images.shape
    torch.testing.assert_close(a, b)
    same = transforms.compose([transforms.jitter(0), transforms.random_scale([1.0]),
                               transforms.random_rotate([0.0])])
    torch.testing.assert_close(same(images, torch.Generator()), images)
    rotated = transforms.random_rotate([90.0])(images, torch.Generator())
    torch.testing.assert_close(rotated, torch.rot90(images, 1, dims=(2, 3)), atol=1e-2,
                               rtol=0)
    with pytest.raises(InvalidInputError):
        transforms.random_scale([0.0])


def test_parameterisations_give_valid_seeded_images():
    params, image_fn = param.pixel(3, seed=5)
    img = image_fn()
    assert img.shape == (3, 3, 112, 112) and img.min() >= 128 and img.max() <= 178
    assert params[0] is img and params[0].requires_grad
    _, again = param.pixel(3, seed=5)
    torch.testing.assert_close(again(), img)
    _, alone = param.pixel(1, image_seeds=[42])
    _, batch = param.pixel(2, image_seeds=[1, 42])
    torch.testing.assert_close(alone()[0], batch()[1])
    spec, fourier_fn = param.fourier(2, seed=1)
    out = fourier_fn()
    low, high = float(out.detach().min()), float(out.detach().max())
    assert out.shape == (2, 3, 112, 112) and 0 < low and high < 255
    out.sum().backward()
    assert spec[0].grad is not None and torch.isfinite(spec[0].grad).all()
    with pytest.raises(InvalidInputError):
        param.pixel(0)
    with pytest.raises(InvalidInputError):
        param.pixel(2, image_seeds=[1])
