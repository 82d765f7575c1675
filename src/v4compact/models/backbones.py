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

Why the trunks are written here and not taken from torchvision: torchvision's wheels are
built against one exact torch release each, and no CPU wheel of torchvision matches the
project's CPU torch pin (the PyPI wheel fails at import with "operator torchvision::nms does
not exist"; the matching pair is a 5.5 GB CUDA build). A dependency that cannot be installed
beside the package is not an honest dependency. Besides, Keras' ResNet50 is not a torchvision
ResNet: it is "v1" (the stride of a stage's first block on its first 1x1 convolution and its
shortcut) while torchvision's is "v1.5" (the stride on the 3x3), and its convolutions carry
biases. So :class:`ResNet50Trunk` and :class:`VGG19Trunk` are small modules with
torchvision's state-dict names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``,
``features.0`` ...), built in either layout: a torchvision ``.pth`` (or torchvision's own
download, through torch's hub cache) loads by name, and Keras' weights load into the v1
layout with each convolution bias folded into the following batch norm's moving mean
(``bn(conv(x) + b)`` equals ``bn'(conv(x))`` with ``running_mean' = running_mean - b``, exact).
Keras' ResNet50 batch norms use epsilon 1.001e-5, torchvision's 1e-5.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataNotFoundError, InvalidInputError, ModelFormatError, UnknownModelError
from ..images import IMAGE_MEAN, IMAGE_SIZE
from .inputs import as_image_batch

__all__ = [
    "ARCHITECTURES",
    "CAFFE_BGR_MEAN",
    "DNN_INPUT_SIZE",
    "PREPROCESSINGS",
    "TORCHVISION_MEAN",
    "TORCHVISION_STD",
    "Backbone",
    "ResNet50Trunk",
    "VGG19Trunk",
    "keras_to_trunk_state_dict",
    "load_backbone",
    "read_keras_h5_weights",
    "resize_bicubic",
    "resize_bicubic_tensor",
]

#: Side of the task-driven DNNs' input (pixels): images are resized 112 -> 224.
DNN_INPUT_SIZE = 224
#: ImageNet mean pixel in BGR order, subtracted by Keras' "caffe" preprocessing (pixel units).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
#: torchvision's ImageNet normalisation, RGB order, applied to pixels / 255.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
#: Preprocessing recipes a backbone can use (see the module docstring).
PREPROCESSINGS = ("caffe", "torchvision", "recentred")
#: Batch-norm epsilon of Keras' ResNet50 (torchvision's is PyTorch's default, 1e-5).
KERAS_RESNET_BN_EPS = 1.001e-5
TORCH_BN_EPS = 1e-5

_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_TORCH_URL = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class PretrainedWeights:
    """A published weights file of a task-driven DNN.

    Attributes:
        file_name: the file's name, as its publisher's cache stores it.
        url: where it is downloaded from.
        layout: ``"keras"`` (legacy h5, v1 layout) or ``"torchvision"`` (state dict).
        md5: Keras' published MD5 of the file (checked after a download), or ``""``.
    """

    file_name: str
    url: str
    layout: str
    md5: str = ""


#: Each architecture's default layer, and its published ImageNet weights by source.
ARCHITECTURES: dict[str, dict] = {
    "resnet50": {
        "layer": "conv4_block4_out",
        "weights": {
            "keras": PretrainedWeights(
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_URL + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "keras", "4d473c1dd8becc155b73f8504c6f6626"),
            "torchvision": PretrainedWeights(
                "resnet50-0676ba61.pth", _TORCH_URL + "resnet50-0676ba61.pth", "torchvision"),
        },
    },
    "vgg19": {
        "layer": "block4_pool",
        "weights": {
            "keras": PretrainedWeights(
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                _KERAS_URL + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "keras", "253f8cb515780f3b799900260a226db6"),
            "torchvision": PretrainedWeights(
                "vgg19-dcbb9e9d.pth", _TORCH_URL + "vgg19-dcbb9e9d.pth", "torchvision"),
        },
    },
}

# ----------------------------------------------------------------------------- trunks

# (bottleneck width, blocks) of ResNet50's four stages conv2..conv5 (torchvision layer1..4)
_RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
_RESNET_EXPANSION = 4


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, then the shortcut added and a ReLU).

    State-dict names as torchvision's ``Bottleneck``: ``conv1..3``, ``bn1..3``,
    ``downsample.0`` (1x1 convolution) and ``downsample.1`` (batch norm). Convolutions have
    no bias (a Keras bias is folded into the batch norm, see the module docstring).

    Args:
        in_channels: input channels.
        width: channels inside the block; the output has ``4 * width``.
        stride: 1, or 2 in a stage's first block.
        layout: ``"keras"`` puts the stride on ``conv1`` (v1), ``"torchvision"`` on ``conv2``.
        bn_eps: batch-norm epsilon.
    """

    def __init__(self, in_channels: int, width: int, stride: int, layout: str,
                 bn_eps: float) -> None:
        super().__init__()
        out_channels = width * _RESNET_EXPANSION
        first, second = (stride, 1) if layout == "keras" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=first, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=bn_eps)
        self.conv2 = nn.Conv2d(width, width, 3, stride=second, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=bn_eps)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels, eps=bn_eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, Cin, H, W)`` -> ``(N, 4 * width, H / stride, W / stride)``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


_RESNET_LAYER = re.compile(r"conv([2-5])_block([1-9])_out")


class ResNet50Trunk(nn.Module):
    """ResNet50 from the input up to a block output, in Keras' or torchvision's layout.

    Keras' stem (zero padding 3, 7x7 stride-2 "valid" convolution; zero padding 1, 3x3
    stride-2 max pool) equals torchvision's ``padding=3`` convolution and ``padding=1`` max
    pool: the pool follows a ReLU, so padding with zeros or with -inf gives the same maxima.

    Args:
        layout: ``"keras"`` (v1: stride on the first 1x1 convolution, batch-norm epsilon
            1.001e-5) or ``"torchvision"`` (v1.5: stride on the 3x3, epsilon 1e-5).
        layer: Keras name of the last block output kept, ``"conv<S>_block<B>_out"``
            (``"conv4_block4_out"``: torchvision's ``layer3[3]``).

    Input ``(N, 3, 224, 224)`` preprocessed images; output ``(N, C, H, W)``, e.g.
    ``(N, 1024, 14, 14)`` at ``conv4_block4_out``.
    """

    def __init__(self, layout: str = "keras", layer: str = "conv4_block4_out") -> None:
        super().__init__()
        if layout not in ("keras", "torchvision"):
            raise InvalidInputError(f"unknown ResNet50 layout {layout!r}; 'keras' or 'torchvision'")
        match = _RESNET_LAYER.fullmatch(layer)
        stage, blocks = (int(match[1]), int(match[2])) if match else (0, 0)
        if not match or blocks > _RESNET50_STAGES[stage - 2][1]:
            raise InvalidInputError(
                f"ResNet50 has no layer {layer!r}; use conv<S>_block<B>_out, e.g. "
                "conv4_block4_out (S = 2-5, B up to 3, 4, 6, 3)"
            )
        self.layout, self.layer = layout, layer
        eps = KERAS_RESNET_BN_EPS if layout == "keras" else TORCH_BN_EPS
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=eps)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, (width, num_blocks) in enumerate(_RESNET50_STAGES[:stage - 1]):
            keep = blocks if index == stage - 2 else num_blocks
            stride = 1 if index == 0 else 2
            modules = []
            for b in range(keep):
                modules.append(Bottleneck(channels, width, stride if b == 0 else 1, layout, eps))
                channels = width * _RESNET_EXPANSION
            self.add_module(f"layer{index + 1}", nn.Sequential(*modules))
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``(N, 3, S, S)`` -> ``(N, C, S / 16, S / 16)`` at ``conv4_*``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name, module in self.named_children():
            if name.startswith("layer"):
                x = module(x)
        return x


# torchvision's VGG19 "features": 16 convolutions (3x3, padding 1, bias) each followed by a
# ReLU, and a 2x2 max pool after each of the five blocks
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
_VGG_LAYER = re.compile(r"block([1-5])_(pool|conv([1-4]))")


def _vgg19_layer_indices() -> dict[str, int]:
    """Keras layer name -> index of the last torchvision ``features`` module it covers."""
    names, index = {}, 0
    for b, (_, convs) in enumerate(_VGG19_BLOCKS, start=1):
        for c in range(1, convs + 1):
            names[f"block{b}_conv{c}"] = index + 1  # the conv, then its ReLU (Keras fuses it)
            index += 2
        names[f"block{b}_pool"] = index
        index += 1
    return names


class VGG19Trunk(nn.Module):
    """VGG19's convolutional part up to a layer, with torchvision's names (``features.<i>``).

    Keras' and torchvision's VGG19 are the same network (3x3 "same" convolutions with bias,
    ReLU, 2x2 max pools); only the weight layout differs.

    Args:
        layer: Keras layer name, ``"block<b>_conv<c>"`` (post-ReLU) or ``"block<b>_pool"``.

    Input ``(N, 3, 224, 224)`` preprocessed images; output e.g. ``(N, 512, 14, 14)`` at
    ``block4_pool``.
    """

    def __init__(self, layer: str = "block4_pool") -> None:
        super().__init__()
        last = _vgg19_layer_indices().get(layer)
        if last is None:
            raise InvalidInputError(
                f"VGG19 has no layer {layer!r}; use block<b>_conv<c> or block<b>_pool, e.g. "
                "block4_pool"
            )
        self.layer = layer
        modules: list[nn.Module] = []
        channels = 3
        for width, convs in _VGG19_BLOCKS:
            for _ in range(convs):
                modules += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules[:last + 1])
        self.out_channels = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``(N, 3, S, S)`` -> ``(N, C, H, W)``."""
        return self.features(x)


# ----------------------------------------------------------------------------- weights


def read_keras_h5_weights(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read a Keras legacy HDF5 weights file (``model.save_weights`` of Keras 2, or Keras 3's
    legacy h5 writer, or the files ``keras.applications`` downloads).

    The file holds one group per layer with a ``weight_names`` attribute (``"conv1_conv/
    kernel:0"`` in Keras 2, ``"conv1_conv/kernel"`` in Keras 3); a full-model file has them
    under ``model_weights``.

    Returns:
        ``{layer name: {variable: float32 array}}`` with variables named ``kernel``, ``bias``,
        ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``; layers without weights are
        left out.

    Raises:
        DataNotFoundError: no such file.
        ModelFormatError: not a Keras weights file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"Keras weights file {path} not found")
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            if "layer_names" not in root.attrs:
                raise ModelFormatError(
                    f"{path.name} has no layer_names attribute: not a Keras legacy h5 weights "
                    "file (a Keras 3 .weights.h5 file is another format)"
                )
            for raw in root.attrs["layer_names"]:
                layer = raw.decode() if isinstance(raw, bytes) else str(raw)
                group = root[layer]
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                if names:
                    out[layer] = {n.rsplit("/", 1)[-1].removesuffix(":0"):
                                  np.asarray(group[n], dtype=np.float32) for n in names}
    except OSError as err:
        raise ModelFormatError(f"{path.name} is not a readable HDF5 file ({err})") from None
    return out


def _keras_resnet_names(trunk: ResNet50Trunk) -> dict[str, str]:
    """torchvision module prefix -> Keras layer name, for every conv / batch norm of ``trunk``."""
    names = {"conv1": "conv1_conv", "bn1": "conv1_bn"}
    for stage in range(1, 5):
        blocks = getattr(trunk, f"layer{stage}", None)
        for b in range(len(blocks) if blocks is not None else 0):
            keras = f"conv{stage + 1}_block{b + 1}"
            prefix = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                names[f"{prefix}.conv{i}"] = f"{keras}_{i}_conv"
                names[f"{prefix}.bn{i}"] = f"{keras}_{i}_bn"
            if blocks[b].downsample is not None:
                names[f"{prefix}.downsample.0"] = f"{keras}_0_conv"
                names[f"{prefix}.downsample.1"] = f"{keras}_0_bn"
    return names


def _keras_vgg_names(trunk: VGG19Trunk) -> dict[str, str]:
    conv_index = {name: index - 1 for name, index in _vgg19_layer_indices().items()
                  if "conv" in name}
    return {f"features.{index}": name for name, index in conv_index.items()
            if index < len(trunk.features)}


def _kernel(array: np.ndarray) -> np.ndarray:
    # Keras conv kernel (kh, kw, Cin, Cout) -> torch (Cout, Cin, kh, kw)
    return np.ascontiguousarray(array.transpose(3, 2, 0, 1))


def keras_to_trunk_state_dict(keras: dict[str, dict[str, np.ndarray]], trunk: nn.Module,
                              source: str = "Keras weights") -> dict[str, torch.Tensor]:
    """Convert Keras weights (as :func:`read_keras_h5_weights` returns) to ``trunk``'s names.

    ResNet convolution biases are folded into the following batch norm's moving mean.
    Every array is shape-checked against the trunk.

    Args:
        keras: ``{layer: {variable: array}}``.
        trunk: a :class:`ResNet50Trunk` in the Keras layout, or a :class:`VGG19Trunk`.
        source: the file's name, for error messages.

    Returns:
        A complete state dict for ``trunk`` (float32 tensors).

    Raises:
        ModelFormatError: a layer is missing or has the wrong shape.
    """
    if isinstance(trunk, ResNet50Trunk) and trunk.layout != "keras":
        raise InvalidInputError("Keras weights need the Keras (v1) layout of ResNet50Trunk")
    names = _keras_resnet_names(trunk) if isinstance(trunk, ResNet50Trunk) \
        else _keras_vgg_names(trunk)
    state: dict[str, np.ndarray] = {}

    def variables(layer: str, wanted: tuple[str, ...]) -> list[np.ndarray]:
        if layer not in keras or any(v not in keras[layer] for v in wanted):
            have = sorted(keras.get(layer, {}))
            raise ModelFormatError(
                f"{source}: layer {layer!r} with {list(wanted)} not found (has {have}); not "
                f"Keras weights of this network"
            )
        return [keras[layer][v] for v in wanted]

    conv_biases: dict[str, np.ndarray] = {}
    for prefix, layer in names.items():
        if "bn" in prefix or prefix.endswith("downsample.1"):
            continue
        kernel, bias = variables(layer, ("kernel", "bias"))
        state[f"{prefix}.weight"] = _kernel(kernel)
        if isinstance(trunk, VGG19Trunk):
            state[f"{prefix}.bias"] = bias
        else:
            conv_biases[prefix] = bias
    for prefix, layer in names.items():
        if not ("bn" in prefix or prefix.endswith("downsample.1")):
            continue
        gamma, beta, mean, var = variables(layer, ("gamma", "beta", "moving_mean",
                                                   "moving_variance"))
        conv = prefix.replace("bn", "conv").replace("downsample.1", "downsample.0")
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = gamma, beta
        state[f"{prefix}.running_mean"] = (mean.astype(np.float64)
                                           - conv_biases[conv]).astype(np.float32)
        state[f"{prefix}.running_var"] = var
    return _checked_state(state, trunk, source)


def _checked_state(state: dict[str, np.ndarray | torch.Tensor], trunk: nn.Module,
                   source: str) -> dict[str, torch.Tensor]:
    """Keep ``trunk``'s entries of ``state``; check every name and shape."""
    out = {}
    for name, own in trunk.state_dict().items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.zeros_like(own)
            continue
        if name not in state:
            raise ModelFormatError(
                f"{source}: {name} missing; not weights of {type(trunk).__name__} "
                f"up to {trunk.layer}"
            )
        value = torch.as_tensor(np.asarray(state[name]) if isinstance(state[name], np.ndarray)
                                else state[name]).float()
        if tuple(value.shape) != tuple(own.shape):
            raise ModelFormatError(
                f"{source}: {name} has shape {tuple(value.shape)}, expected {tuple(own.shape)}"
            )
        out[name] = value
    return out


def _load_torch_state(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFormatError(f"{path.name} is not a PyTorch state dict ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                        dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelFormatError(f"{path.name} holds a {type(state).__name__}, not a state dict")
    return state


def _keras_cache_dir() -> Path:
    """Where ``keras.applications`` keeps downloaded weights (``$KERAS_HOME/models``)."""
    home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(home) / "models"


def _pretrained_file(arch: str, source: str) -> Path:
    """The published weights file of ``arch`` from ``source``: the publisher's cache, else a
    download into it; a one-line DataNotFoundError when neither works (offline)."""
    info: PretrainedWeights = ARCHITECTURES[arch]["weights"][source]
    folder = _keras_cache_dir() if info.layout == "keras" else \
        Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / info.file_name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # writes a temporary file and renames it when complete
        torch.hub.download_url_to_file(info.url, str(path), progress=False)
    except Exception as err:  # offline, proxy, HTTP error: all mean "get the file yourself"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataNotFoundError(
            f"{info.file_name} is not in {folder} and could not be downloaded ({reason}); "
            f"download {info.url} into {folder}, or pass its path as weights="
        ) from None
    if info.md5 and hashlib.md5(path.read_bytes()).hexdigest() != info.md5:
        path.unlink()
        raise ModelFormatError(
            f"{info.file_name}: the download does not match Keras' published MD5; try again"
        )
    return path


def _weights_file_layout(path: Path) -> str:
    suffix = path.name.lower()
    if suffix.endswith((".h5", ".hdf5")):
        return "keras"
    if suffix.endswith((".pth", ".pt")):
        return "torchvision"
    raise ModelFormatError(
        f"{path.name}: unknown weights file type; use a Keras .h5 or a torchvision .pth file"
    )


def _build_trunk(arch: str, layer: str, weights) -> tuple[nn.Module, str, str]:
    """``(trunk with weights, layout, weights id)`` of a task-driven DNN."""
    source = "keras" if weights is None else weights
    if isinstance(source, str) and source in ARCHITECTURES[arch]["weights"]:
        path = _pretrained_file(arch, source)
        layout = source
        weights_id = ARCHITECTURES[arch]["weights"][source].file_name
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            known = ", ".join(ARCHITECTURES[arch]["weights"])
            raise DataNotFoundError(
                f"weights {source!s} is neither a file nor one of {known}; pass a Keras .h5 or "
                "torchvision .pth file"
            )
        layout = _weights_file_layout(path)
        stat = path.stat()
        weights_id = f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    trunk = ResNet50Trunk(layout, layer) if arch == "resnet50" else VGG19Trunk(layer)
    if layout == "keras":
        state = keras_to_trunk_state_dict(read_keras_h5_weights(path), trunk, path.name)
    else:
        state = _checked_state(_load_torch_state(path), trunk, path.name)
    trunk.load_state_dict(state, strict=True)
    return trunk, layout, weights_id


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
        model: a :class:`~v4compact.models.base.V4Model`.
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
        trunk, layout, weights_id = _build_trunk(arch, layer or ARCHITECTURES[arch]["layer"],
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
    from .zoo import load_model

    model = load_model(name, device=device, data_dir=data_dir)
    backbone = Backbone(ModelStage(model, rest), text, preprocessing or "recentred",
                        IMAGE_SIZE, pool_to, key=f"{name}|{rest}")
    return backbone.to(device)
