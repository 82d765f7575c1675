"""Backbones: task-driven feature extractors cut at a named layer (SYSTEM.md §6).

A backbone turns images into feature maps. :func:`load_backbone` builds one from a spec:

=========================================  ==================================================
spec                                       what
=========================================  ==================================================
``"resnet50"``                             ResNet50 up to Keras' ``conv4_block4_out`` (after
                                           the 4th bottleneck of torchvision's ``layer3``):
                                           ``(1024, 14, 14)`` for a 224x224 input; Keras'
                                           ImageNet weights, as upstream's ensemble used
``"resnet50:torchvision"``                 the same cut with torchvision's ImageNet weights
``"resnet50:PATH"``                        weights from a file: a Keras ``.h5`` weights file
                                           or a torchvision ``.pth`` state dict
``"vgg19"``, ``"vgg19:..."``               VGG19 up to ``block4_pool``: ``(512, 14, 14)``
``"<model id>:<layer>"``                   the core of a compact or shared compact model cut
                                           at a layer, e.g.
                                           ``"shared/from_ensemble_model/200:layer3"``:
                                           trained weights present on every machine that has
                                           the data, no download
a ``torch.nn.Module``                      any module mapping preprocessed images to maps
=========================================  ==================================================

Every backbone is a :class:`Backbone` (an ``nn.Module``):
:meth:`Backbone.features` takes uint8 images ``(N, 112, 112, 3)`` and returns channels-last
float32 numpy features ``(N, H, W, C)``; :meth:`Backbone.forward` runs on already
preprocessed tensors (what a training loop or the feature cache feeds it).

Preprocessing (:data:`PREPROCESSINGS`) is chosen by the weights: the Keras ImageNet weights
take upstream's recipe ("caffe": 112 -> 224 bicubic resize, RGB -> BGR, the ImageNet BGR
means subtracted, no scaling); torchvision's weights take its own ("torchvision": the same
resize, pixels / 255 normalised by the ImageNet RGB mean and s.d.); model cores take the
compact models' input ("recentred": 112x112, the corpus mean subtracted). Pass
``preprocessing=`` to override. The resize is Pillow's bicubic on uint8 images, which is
what upstream's ``ImageClass.resize_images`` does.

The networks themselves (:class:`ResNet50Trunk`, :class:`VGG19Trunk`) and their published
weights are :mod:`.trunks`'.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InvalidInputError, UnknownModelError
from ...images import IMAGE_MEAN, IMAGE_SIZE
from ..inputs import as_image_batch
from .trunks import (
    ARCHITECTURES,
    DNN_INPUT_SIZE,
    ResNet50Trunk,
    VGG19Trunk,
    build_trunk,
    keras_to_trunk_state_dict,
    read_keras_h5_weights,
)

__all__ = [
    "ARCHITECTURES",
    "CAFFE_BGR_MEAN",
    "DNN_INPUT_SIZE",
    "PREPROCESSINGS",
    "TORCHVISION_MEAN",
    "TORCHVISION_STD",
    "Backbone",
    "ModelStage",
    "ResNet50Trunk",
    "VGG19Trunk",
    "keras_to_trunk_state_dict",
    "load_backbone",
    "read_keras_h5_weights",
    "resize_bicubic",
    "resize_bicubic_tensor",
]

#: ImageNet mean pixel in BGR order, subtracted by Keras' "caffe" preprocessing (pixel units).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: torchvision's ImageNet normalisation, RGB order, applied to pixels / 255.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
#: Preprocessing recipes a backbone can use (see the module docstring).
PREPROCESSINGS = ("caffe", "torchvision", "recentred")


# ----------------------------------------------------------------------------- preprocessing


def _bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's bicubic resampling (a = -0.5) as a ``(out_size, in_size)`` float64 matrix.

    The coefficients are those of Pillow's ``precompute_coeffs``: output pixel ``i`` is
    centred at ``(i + 0.5) * in / out`` in input coordinates, the kernel is widened by the
    scale when shrinking, taps outside the image are dropped and the rest renormalised.
    """
    def cubic(x: np.ndarray) -> np.ndarray:
        a, x = -0.5, np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_size)
        taps = cubic((np.arange(lo, hi) - centre + 0.5) / filter_scale)
        weights[i, lo:hi] = taps / taps.sum()
    return weights


def resize_bicubic_tensor(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable bicubic resize with Pillow's filter (Pillow's float-image result).

    Args:
        pixels: float ``(N, C, H, W)`` tensor.
        size: side of the output (pixels).

    Returns:
        ``(N, C, size, size)``, same dtype and device.
    """
    height, width = pixels.shape[-2:]
    if (height, width) == (size, size):
        return pixels
    rows = torch.as_tensor(_bicubic_weights(height, size), dtype=pixels.dtype,
                           device=pixels.device)
    cols = torch.as_tensor(_bicubic_weights(width, size), dtype=pixels.dtype,
                           device=pixels.device)
    return rows @ pixels @ cols.T


def resize_bicubic(images: np.ndarray, size: int) -> np.ndarray:
    """Resize images with Pillow's bicubic filter: upstream's 112 -> 224 resize.

    Args:
        images: ``(N, H, W, 3)`` uint8 or float pixels 0-255.
        size: side of the output (pixels).

    Returns:
        ``(N, size, size, 3)``: uint8 images are resized by Pillow itself (rounded to uint8
        after each pass, exactly as upstream's ``Image.resize``); float images by
        :func:`resize_bicubic_tensor` (float32, not rounded).
    """
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    if images.dtype != np.uint8:
        tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        return resize_bicubic_tensor(tensor.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1) \
            .numpy()
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image, mode="RGB").resize((size, size),
                                                                      Image.BICUBIC))
    return out


# ----------------------------------------------------------------------------- backbone


class Backbone(nn.Module):
    """A feature extractor: images -> feature maps at one layer of a network.

    Args:
        trunk: module mapping preprocessed ``(N, 3, S, S)`` tensors to ``(N, C, H, W)``.
        spec: the spec it was built from (e.g. ``"resnet50"``), for display.
        preprocessing: one of :data:`PREPROCESSINGS`.
        input_size: side ``S`` of the trunk's input (224 for the task-driven DNNs, 112 for
            model cores); 112x112 images are resized to it (Pillow bicubic).
        pool_to: average-pool the maps to ``pool_to x pool_to`` (``None``: keep them).
        key: identity of the weights for the feature cache (``""``: not cacheable).

    Attributes:
        trunk, spec, preprocessing, input_size, pool_to, key: as given.
    """

    def __init__(self, trunk: nn.Module, spec: str, preprocessing: str,
                 input_size: int = DNN_INPUT_SIZE, pool_to: int | None = None,
                 key: str = "") -> None:
        super().__init__()
        if preprocessing not in PREPROCESSINGS:
            raise InvalidInputError(
                f"unknown preprocessing {preprocessing!r}; choose one of "
                f"{', '.join(PREPROCESSINGS)}"
            )
        if pool_to is not None and int(pool_to) < 1:
            raise InvalidInputError(f"pool_to must be a positive size, got {pool_to!r}")
        self.trunk = trunk
        self.spec = spec
        self.preprocessing = preprocessing
        self.input_size = int(input_size)
        self.pool_to = None if pool_to is None else int(pool_to)
        self.key = key
        self._output_shape: tuple[int, int, int] | None = None
        self.eval()

    @property
    def cache_key(self) -> str:
        """Everything that decides the features: weights, preprocessing, input size, pooling
        (``""`` when the weights have no stable identity, e.g. a user's module)."""
        if not self.key:
            return ""
        return (f"{self.key}|{self.preprocessing}|{self.input_size}|"
                f"pool{self.pool_to if self.pool_to else 'none'}")

    @property
    def device(self) -> torch.device:
        """The device holding the parameters."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``(N, 3, input_size, input_size)`` -> maps ``(N, C, H, W)``."""
        maps = self.trunk(x)
        if self.pool_to is not None:
            maps = F.adaptive_avg_pool2d(maps, self.pool_to)
        return maps

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float pixels 0-255 ``(N, 3, S, S)`` (RGB) -> the trunk's input (differentiable).

        "caffe": RGB -> BGR, :data:`CAFFE_BGR_MEAN` subtracted; "torchvision": pixels / 255
        normalised by :data:`TORCHVISION_MEAN` / :data:`TORCHVISION_STD`; "recentred": the
        compact models' :data:`~v4compact.images.IMAGE_MEAN` subtracted.
        """
        def channel(values) -> torch.Tensor:
            return torch.as_tensor(values, dtype=pixels.dtype, device=pixels.device) \
                .reshape(1, 3, 1, 1)

        if self.preprocessing == "caffe":
            return pixels.flip(1) - channel(CAFFE_BGR_MEAN)
        if self.preprocessing == "torchvision":
            return (pixels / 255.0 - channel(TORCHVISION_MEAN)) / channel(TORCHVISION_STD)
        return pixels - channel(IMAGE_MEAN)

    def preprocess(self, images, device: torch.device | str | None = None) -> torch.Tensor:
        """Images -> the trunk's input.

        Args:
            images: uint8 or float pixels 0-255 ``(N, 112, 112, 3)`` or anything
                :func:`~v4compact.models.inputs.as_image_batch` accepts.
            device: where to put the tensor (default: the backbone's device).

        Returns:
            float32 ``(N, 3, input_size, input_size)``: resized with :func:`resize_bicubic`
            (uint8 images exactly as upstream), then :meth:`normalise`.
        """
        pixels = resize_bicubic(as_image_batch(images), self.input_size)
        tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
        return self.normalise(tensor.to(device or self.device).permute(0, 3, 1, 2))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the maps for a 112x112 image (found by one dry run)."""
        if self._output_shape is None:
            with torch.inference_mode():
                dry = torch.zeros(1, 3, self.input_size, self.input_size, device=self.device)
                was_training = self.training
                self.eval()
                self._output_shape = tuple(self.forward(dry).shape[1:])
                self.train(was_training)
        return self._output_shape

    def features(self, images, batch_size: int = 32, device: torch.device | str | None = None,
                 progress: bool = False,
                 out: np.ndarray | None = None,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Feature maps of images, channels-last.

        Args:
            images: uint8 or float pixels 0-255 ``(N, 112, 112, 3)`` (or anything
                :func:`~v4compact.models.inputs.as_image_batch` accepts, or a lazy
                ``session.images``).
            batch_size: images per forward pass.
            device: run there (the backbone is moved to it); default: where it is.
            progress: show a tqdm progress bar.
            out: write into this array ``(N, H, W, C)`` (e.g. a memmap) instead of a new one.
            on_batch: called with the number of images done after each batch.

        Returns:
            float32 ``(N, H, W, C)`` (or ``out``).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if device is not None:
            self.to(device)
        batch_source = images if _is_lazy_batch(images) else as_image_batch(images)
        num = len(batch_source)
        channels, height, width = self.output_shape
        result = out if out is not None else np.empty((num, height, width, channels),
                                                      dtype=np.float32)
        if result.shape != (num, height, width, channels):
            raise InvalidInputError(
                f"out has shape {result.shape}, expected {(num, height, width, channels)}"
            )
        starts = range(0, num, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=self.spec or "features", unit="batch")
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in starts:
                    chunk = np.asarray(batch_source[start:start + batch_size])
                    maps = self.forward(self.preprocess(chunk))
                    result[start:start + len(chunk)] = maps.permute(0, 2, 3, 1).float().cpu() \
                        .numpy()
                    if on_batch is not None:
                        on_batch(start + len(chunk))
        finally:
            self.train(was_training)
        return result

    def extra_repr(self) -> str:
        return (f"spec={self.spec!r}, preprocessing={self.preprocessing!r}, "
                f"input_size={self.input_size}, pool_to={self.pool_to}")


def _is_lazy_batch(images) -> bool:
    """A lazy image sequence (e.g. ``session.images``) read batch by batch, not at once."""
    eager = (np.ndarray, str, os.PathLike, list, tuple)
    return (not isinstance(images, eager) and not hasattr(images, "detach")
            and hasattr(images, "__len__") and hasattr(images, "__getitem__"))


class ModelStage(nn.Module):
    """A compact or shared model's core up to a layer: ``model.forward_to(x, layer)``.

    Args:
        model: a :class:`~v4compact.models.nets.base.V4Model`.
        layer: one of its :attr:`layer_names` except ``"output"``.
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        names = [n for n in model.layer_names if n != "output"]
        if layer not in names:
            raise InvalidInputError(
                f"model {model.model_id or type(model).__name__} has no feature layer "
                f"{layer!r}; choose one of {', '.join(names)}"
            )
        self.model = model
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred ``(N, 3, 112, 112)`` -> ``(N, C, H, W)``."""
        return self.model.forward_to(x, self.layer)


def load_backbone(spec, weights=None, *, layer: str | None = None,
                  preprocessing: str | None = None, pool_to: int | None = None,
                  input_size: int | None = None, device: torch.device | str = "cpu",
                  data_dir: str | os.PathLike | None = None) -> Backbone:
    """Build a backbone from a spec (see the module docstring for the forms).

    Args:
        spec: ``"resnet50"``, ``"resnet50:torchvision"``, ``"resnet50:PATH"``, ``"vgg19"``...,
            ``"<model id>:<layer>"`` (e.g. ``"shared/from_ensemble_model/200:layer3"``), a
            :class:`Backbone` (returned as is) or any ``torch.nn.Module``.
        weights: for ResNet50 / VGG19: ``"keras"`` (default: Keras' ImageNet weights, as
            upstream), ``"torchvision"``, or a path to a Keras ``.h5`` / torchvision ``.pth``
            file; the same as the part after ``:`` in ``spec``.
        layer: ResNet50 / VGG19 layer in Keras' names (default ``conv4_block4_out`` /
            ``block4_pool``).
        preprocessing: one of :data:`PREPROCESSINGS`; default: the weights' own ("caffe" for
            Keras weights, "torchvision" for torchvision's, "recentred" for model cores and
            user modules).
        pool_to: average-pool the maps to this side (e.g. 7); ``None`` keeps them.
        input_size: the trunk's input side for a user module (default 112).
        device: torch device for the parameters.
        data_dir: data directory for model-core specs.

    Returns:
        A :class:`Backbone` in eval mode.

    Raises:
        UnknownModelError: a spec of none of the forms.
        DataNotFoundError: weights that are neither cached, downloadable nor a file.
        ModelFormatError: a weights file of the wrong network.
    """
    if isinstance(spec, Backbone):
        return spec
    if isinstance(spec, nn.Module):
        backbone = Backbone(spec, type(spec).__name__, preprocessing or "recentred",
                            input_size or IMAGE_SIZE, pool_to)
        return backbone.to(device)
    text = str(spec).strip()
    name, sep, rest = text.partition(":")
    if name.lower() in ARCHITECTURES:
        arch = name.lower()
        if sep and weights is not None and str(weights) != rest:
            raise InvalidInputError(
                f"backbone {text!r} names its weights and weights={weights!r} another; give one"
            )
        chosen = rest if sep else weights
        trunk, layout, weights_id = build_trunk(arch, layer or ARCHITECTURES[arch]["layer"],
                                                 chosen)
        key = f"{arch}|{trunk.layer}|{layout}|{weights_id}"
        backbone = Backbone(trunk, text, preprocessing or ("caffe" if layout == "keras"
                                                           else "torchvision"),
                            DNN_INPUT_SIZE, pool_to, key)
        return backbone.to(device)
    if not sep:
        raise UnknownModelError(
            f"unknown backbone {text!r}; use resnet50, vgg19 (optionally :torchvision or "
            ":PATH) or <model id>:<layer>, e.g. shared/from_ensemble_model/200:layer3"
        )
    from ..zoo import load_model

    model = load_model(name, device=device, data_dir=data_dir)
    backbone = Backbone(ModelStage(model, rest), text, preprocessing or "recentred",
                        IMAGE_SIZE, pool_to, key=f"{name}|{rest}")
    return backbone.to(device)
