"""Image augmentations for distillation, seeded per image so that runs resume exactly.

Two kinds, both applied in the data loader's workers to uint8 ``(112, 112, 3)`` images:

- :class:`Augmentation`: random horizontal flips and translations (reflected borders).
- :class:`FunctionMatching`: the augmentation of "function matching" (Beyer et al.,
  *Knowledge distillation: a good teacher is patient and consistent*, CVPR 2022): every
  training image is a random resized crop (area 25-100%, aspect ratio 3/4-4/3, bicubic),
  flipped left-right with probability 1/2, then mixed with a second crop of another
  training image of the same shard (mixup: ``lam * a + (1 - lam) * b`` with ``lam`` drawn
  uniformly; or cutmix: a rectangle of ``b`` pasted into ``a``), optionally with a small
  brightness / contrast / saturation jitter. The mixed image is rounded to uint8, and the
  teacher is run on exactly that image (a fresh label, never a mix of labels), so teacher
  and student always see the same pixels.

Every draw depends only on ``(seed, pass, shard, index)``: a resumed or a distributed run
sees the same images as an uninterrupted single process, and a pass draws new ones.
Neither augmentation is part of upstream's recipe (SYSTEM.md §9: no augmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..images import IMAGE_SIZE

__all__ = ["MIX_MODES", "Augmentation", "FunctionMatching", "MixDraw"]

#: How :class:`FunctionMatching` mixes two images.
MIX_MODES = ("mixup", "cutmix", "both", "none")


def _rng(seed: int, pass_index: int, shard_index: int, index: int,
         stream: int = 1) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream) + int(pass_index), int(shard_index),
                                  int(index)])


@dataclass(frozen=True)
class Augmentation:
    """Random horizontal flips and translations (reflected borders), seeded per image.

    Attributes:
        flip: flip left-right with probability 1/2.
        max_shift: shift by up to this many pixels along each axis.
        seed: base seed.
    """

    flip: bool = True
    max_shift: int = 8
    seed: int = 0

    def __call__(self, image: np.ndarray, pass_index: int, shard_index: int,
                 index: int) -> np.ndarray:
        """uint8 ``(H, W, 3)`` -> augmented uint8 ``(H, W, 3)``."""
        rng = _rng(self.seed, pass_index, shard_index, index)
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        if self.max_shift > 0:
            dy, dx = rng.integers(-self.max_shift, self.max_shift + 1, size=2)
            pad = self.max_shift
            padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
            height, width = image.shape[:2]
            image = padded[pad + dy:pad + dy + height, pad + dx:pad + dx + width]
        return np.ascontiguousarray(image)

    def augment(self, read: Callable[[int], np.ndarray], pool: np.ndarray, pass_index: int,
                shard_index: int, index: int) -> np.ndarray:
        """Image ``index`` of a shard (``read(i)`` decodes image i), augmented."""
        return self(read(index), pass_index, shard_index, index)


@dataclass(frozen=True)
class MixDraw:
    """The random choices :class:`FunctionMatching` made for one image (for checks).

    Attributes:
        partner: index (within the shard) of the image mixed in, or ``None``.
        mode: ``"mixup"``, ``"cutmix"`` or ``"none"``.
        lam: weight of the image itself (mixup), or the share of its area kept (cutmix).
        crops: per image (itself, partner) the crop box ``(left, top, right, bottom)`` in
            pixels and whether it is flipped.
        box: the pasted rectangle of cutmix ``(top, left, height, width)``, else ``None``.
        jitter: brightness, contrast and saturation factors (1: none).
    """

    partner: int | None
    mode: str
    lam: float
    crops: tuple
    box: tuple | None
    jitter: tuple[float, float, float]


@dataclass(frozen=True)
class FunctionMatching:
    """Function-matching augmentation (module docstring): crops, flips, mixup / cutmix.

    Attributes:
        mix: ``"mixup"``, ``"cutmix"``, ``"both"`` (each with probability 1/2) or ``"none"``.
        crop_scale: range of the crop's area as a fraction of the image.
        crop_ratio: range of the crop's aspect ratio (width / height).
        flip: flip each crop left-right with probability 1/2.
        color_jitter: ``j``: brightness, contrast and saturation each scaled by a factor
            drawn uniformly in ``[1 - j, 1 + j]`` (0: off). Values up to ~0.2 stay within
            the range natural photographs span.
        seed: base seed.
    """

    mix: str = "mixup"
    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        from ..errors import InvalidInputError

        if self.mix not in MIX_MODES:
            raise InvalidInputError(f"unknown mix {self.mix!r}; choose one of "
                                    f"{', '.join(MIX_MODES)}")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise InvalidInputError(f"crop_scale must satisfy 0 < low <= high <= 1, got "
                                    f"{self.crop_scale}")
        if not 0 <= self.color_jitter < 1:
            raise InvalidInputError(f"color_jitter must be in [0, 1), got {self.color_jitter}")

    def draw(self, pool: np.ndarray, pass_index: int, shard_index: int, index: int,
             size: int = IMAGE_SIZE) -> MixDraw:
        """The random choices for image ``index`` of a shard whose training images are
        ``pool`` (the partner is drawn from them)."""
        rng = _rng(self.seed, pass_index, shard_index, index, stream=1_000_003)
        mode = self.mix
        if mode == "both":
            mode = "mixup" if rng.random() < 0.5 else "cutmix"
        partner = None
        if mode != "none" and len(pool) > 1:
            partner = int(pool[rng.integers(len(pool))])
            while partner == index:
                partner = int(pool[rng.integers(len(pool))])
        else:
            mode = "none"
        crops = tuple(self._crop(rng, size) for _ in range(1 if partner is None else 2))
        lam, box = 1.0, None
        if mode == "mixup":
            lam = float(rng.random())
        elif mode == "cutmix":
            lam = float(rng.random())
            height = int(round(size * np.sqrt(1 - lam)))
            width = height
            top, left = (int(v) for v in rng.integers(0, size - height + 1, size=2))
            box = (top, left, height, width)
            lam = 1 - height * width / size**2
        jitter = (1.0, 1.0, 1.0)
        if self.color_jitter > 0:
            jitter = tuple(float(v) for v in
                           rng.uniform(1 - self.color_jitter, 1 + self.color_jitter, 3))
        return MixDraw(partner, mode, lam, crops, box, jitter)

    def _crop(self, rng: np.random.Generator, size: int) -> tuple:
        area = size * size * rng.uniform(*self.crop_scale)
        ratio = np.exp(rng.uniform(np.log(self.crop_ratio[0]), np.log(self.crop_ratio[1])))
        width = int(min(size, max(8, round(np.sqrt(area * ratio)))))
        height = int(min(size, max(8, round(np.sqrt(area / ratio)))))
        left = int(rng.integers(0, size - width + 1))
        top = int(rng.integers(0, size - height + 1))
        flipped = bool(self.flip and rng.random() < 0.5)
        return (left, top, left + width, top + height), flipped

    def augment(self, read: Callable[[int], np.ndarray], pool: np.ndarray, pass_index: int,
                shard_index: int, index: int) -> np.ndarray:
        """Image ``index`` of a shard, cropped, flipped and mixed with a partner from
        ``pool`` (``read(i)`` decodes image i): uint8 ``(112, 112, 3)``."""
        draw = self.draw(pool, pass_index, shard_index, index)
        return self.apply(draw, read(index), None if draw.partner is None
                          else read(draw.partner))

    def apply(self, draw: MixDraw, image: np.ndarray,
              partner: np.ndarray | None = None) -> np.ndarray:
        """Apply the choices of :meth:`draw` to ``image`` (and its partner)."""
        first = _crop_resize(image, *draw.crops[0]).astype(np.float32)
        if draw.mode == "mixup":
            second = _crop_resize(partner, *draw.crops[1]).astype(np.float32)
            mixed = draw.lam * first + (1 - draw.lam) * second
        elif draw.mode == "cutmix":
            second = _crop_resize(partner, *draw.crops[1]).astype(np.float32)
            top, left, height, width = draw.box
            mixed = first.copy()
            mixed[top:top + height, left:left + width] = \
                second[top:top + height, left:left + width]
        else:
            mixed = first
        if draw.jitter != (1.0, 1.0, 1.0):
            mixed = _jitter(mixed, *draw.jitter)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _crop_resize(image: np.ndarray, box: tuple, flipped: bool) -> np.ndarray:
    """Crop ``box`` of a uint8 image and resize it to the image's size (PIL bicubic, as the
    one image path resizes)."""
    from PIL import Image

    size = image.shape[0]
    out = np.asarray(Image.fromarray(np.ascontiguousarray(image))
                     .resize((size, size), Image.Resampling.BICUBIC, box=box))
    return out[:, ::-1] if flipped else out


def _jitter(image: np.ndarray, brightness: float, contrast: float,
            saturation: float) -> np.ndarray:
    """Scale brightness, contrast (around the mean grey) and saturation (around each
    pixel's grey) of a float ``(H, W, 3)`` image on the 0-255 scale."""
    image = image * brightness
    grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    image = (image - grey.mean()) * contrast + grey.mean()
    grey = (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return (image - grey) * saturation + grey
