"""The task-driven trunks: ResNet50 and VGG19 cut at a layer, with their published weights.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import DataNotFoundError, InvalidInputError, ModelFormatError

__all__ = [
    "ARCHITECTURES",
    "DNN_INPUT_SIZE",
    "KERAS_RESNET_BN_EPS",
    "TORCH_BN_EPS",
    "PretrainedWeights",
    "ResNet50Trunk",
    "VGG19Trunk",
    "build_trunk",
    "keras_to_trunk_state_dict",
    "read_keras_h5_weights",
]

#: Side of the task-driven DNNs' input (pixels): images are resized 112 -> 224.
DNN_INPUT_SIZE = 224

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


def build_trunk(arch: str, layer: str, weights) -> tuple[nn.Module, str, str]:
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
