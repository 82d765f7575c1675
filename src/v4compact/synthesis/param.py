"""Image parameterisations: each returns ``(params, image_fn)``.

``params`` is the list of leaf tensors the optimizer changes; ``image_fn()`` returns the
current images as a float tensor ``(N, 3, H, W)`` in pixel units 0-255 (not yet
re-centred; :func:`~v4compact.synthesis.render.render` subtracts the corpus mean).

* :func:`pixel` — the images themselves, started from noise uniform in [128, 178] as
  upstream. ``image_fn.pixels`` is the leaf tensor, so projections (clip, blur,
  grayscale) can be applied to it in place.
* :func:`fourier` — a 2-D Fourier spectrum scaled by ``1/f**decay_power`` with
  decorrelated colour and a sigmoid into 0-255 (lucid/lucent's "fft + decorrelate").

Random starts come from per-image seeds when given, so an image's start does not depend on
which other images share its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE

__all__ = ["COLOR_CORRELATION_SQRT", "fourier", "pixel"]

ImageFn = Callable[[], torch.Tensor]

#: Square root of the RGB colour covariance of natural images (the ImageNet estimate that
#: lucid and lucent use for colour decorrelation), columns scaled to unit max norm below.
COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float32
)


def _noise(shape: Sequence[int], num_images: int, seed: int, image_seeds, fill) -> torch.Tensor:
    """Draw ``(num_images, *shape)`` noise on the CPU with ``fill(tensor, generator)``."""
    out = torch.empty((num_images, *shape), dtype=torch.float32)
    if image_seeds is None:
        gen = torch.Generator().manual_seed(int(seed))
        fill(out, gen)
        return out
    if len(image_seeds) != num_images:
        raise InvalidInputError(
            f"got {len(image_seeds)} image seeds for {num_images} images; give one per image"
        )
    for i, s in enumerate(image_seeds):
        fill(out[i], torch.Generator().manual_seed(int(s)))
    return out


def pixel(
    num_images: int,
    seed: int = 0,
    *,
    image_seeds: Sequence[int] | None = None,
    low: float = 128.0,
    high: float = 178.0,
    size: int = IMAGE_SIZE,
    init: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """Pixel parameterisation (upstream): each pixel uniform in ``[low, high]``.

    Args:
        num_images: batch size N.
        seed: seed of the noise when ``image_seeds`` is not given.
        image_seeds: one seed per image (overrides ``seed``).
        low, high: range of the uniform start, pixel units (upstream 128, 178).
        size: image side in pixels.
        init: explicit start ``(N, 3, size, size)`` float pixels 0-255 (overrides noise).
        device: where the parameters live.

    Returns:
        ``([pixels], image_fn)``; ``pixels`` is float32 ``(N, 3, size, size)`` with
        ``requires_grad``; ``image_fn()`` returns it (and ``image_fn.pixels`` is it).
    """
    if num_images < 1:
        raise InvalidInputError(f"need at least one image, got num_images={num_images}")
    if not 0 <= low <= high <= 255:
        raise InvalidInputError(f"noise range must satisfy 0 <= low <= high <= 255, got "
                                f"[{low}, {high}]")
    if init is not None:
        start = torch.as_tensor(init, dtype=torch.float32).detach().clone()
        if start.shape != (num_images, 3, size, size):
            raise InvalidInputError(
                f"init must have shape {(num_images, 3, size, size)}, got {tuple(start.shape)}"
            )
    else:
        start = _noise((3, size, size), num_images, seed, image_seeds,
                       lambda t, g: t.uniform_(low, high, generator=g))
    pixels = start.to(device).requires_grad_(True)

    def image_fn() -> torch.Tensor:
        return pixels

    image_fn.pixels = pixels  # type: ignore[attr-defined]
    return [pixels], image_fn


def fourier(
    num_images: int,
    seed: int = 0,
    *,
    image_seeds: Sequence[int] | None = None,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    size: int = IMAGE_SIZE,
    device: str | torch.device = "cpu",
) -> tuple[list[torch.Tensor], ImageFn]:
    """Fourier-spectrum parameterisation with decorrelated colour.

    The spectrum of each colour channel is a learnable complex array, multiplied by
    ``1 / max(f, 1/size) ** decay_power`` (natural images' 1/f amplitude), inverse-FFT'd,
    mixed by :data:`COLOR_CORRELATION_SQRT` and squashed by a sigmoid into 0-255. Gradient
    steps on the spectrum favour low frequencies, giving smoother images than pixels.

    Args:
        num_images: batch size N.
        seed: seed of the start when ``image_seeds`` is not given.
        image_seeds: one seed per image.
        sd: standard deviation of the random start of the spectrum.
        decay_power: exponent of the 1/f scaling (0 = white).
        decorrelate: mix colours with the natural-image colour correlation.
        size: image side in pixels.
        device: where the parameters live.

    Returns:
        ``([spectrum], image_fn)``; ``spectrum`` is float32 ``(N, 3, size, size//2+1, 2)``;
        ``image_fn()`` gives ``(N, 3, size, size)`` pixels in (0, 255).
    """
    if num_images < 1:
        raise InvalidInputError(f"need at least one image, got num_images={num_images}")
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    # 1/f amplitudes; with the unitary ("ortho") inverse FFT a unit spectrum entry gives a
    # pixel amplitude of 1/size, so the start (sd 0.01) is a faint grey image.
    scale = (1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power).to(device)
    start = _noise((3, size, size // 2 + 1, 2), num_images, seed, image_seeds,
                   lambda t, g: t.normal_(0.0, sd, generator=g))
    spectrum = start.to(device).requires_grad_(True)
    colors = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()
    colors = colors.to(device)

    def image_fn() -> torch.Tensor:
        spec = torch.view_as_complex(spectrum) * scale
        img = torch.fft.irfftn(spec, s=(size, size), dim=(-2, -1), norm="ortho") / 4.0
        if decorrelate:
            img = torch.einsum("nchw,dc->ndhw", img, colors)
        return torch.sigmoid(img) * 255.0

    return [spectrum], image_fn
