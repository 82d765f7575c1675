"""The ensemble model (the compact models' teacher): members and their ensemble (SYSTEM.md §6).

An :class:`EnsembleMember` maps backbone features ``(N, C, 14, 14)`` to ``num_outputs``
responses:

- ``initial``: 1x1 convolution ``C -> 512``, batch norm, ReLU (Keras ``initial_conv_layer``,
  ``initial_bn``, ``initial_act``);
- ``downsample``: separable 3x3 stride-2 "same" convolution ``512 -> 512`` (depthwise
  without bias, pointwise with bias; no batch norm, no ReLU) -> ``(512, 7, 7)``
  (``initial_sepconv_layer``);
- ``blocks.0`` ... ``blocks.3``: residual blocks, each ``sep1`` (separable 3x3 -> 256, batch
  norm, ReLU), ``sep2`` (the same, 256 -> 256), ``project`` (1x1 convolution 256 -> 512,
  linear) added to the block's input, no ReLU after the add (``layer<i>_conv1`` ...
  ``layer<i>_add``). The last add is the **embedding** ``(512, 7, 7)``;
- ``readout``: a :class:`~v4compact.models.nets.readouts.FactorizedReadout` over the 7x7 grid:
  1x1 convolution ``512 -> 200`` (``mixing_stage``) and depthwise 7x7 "valid" convolution
  with bias (``spatial_pool_stage``).

Batch norm: epsilon 1e-3, PyTorch momentum 0.01 (Keras' 0.99); initialisation as Keras
(Glorot-uniform kernels, zero biases). 2,252,248 trainable parameters and 5,120 batch-norm
statistics at the released size.

:func:`load_ensemble_member` reads upstream's member files (Keras 3 ``.keras``, layer names
as in ``data_ensemble_model/ensemble_model_summary.txt``) through an explicit name map with
shape checks; :func:`load_ensemble` builds the :class:`Ensemble` (backbone + members,
prediction = mean over members) from the released members.

Outputs are in z-scored units: members are trained on responses z-scored per neuron.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...data import local, paths
from ...errors import DataNotFoundError, InvalidInputError, ModelFormatError
from ...images import IMAGE_MEAN
from ..arch import DEFAULT_BN_EPS
from ..families import ENSEMBLE, NUM_ENSEMBLE_MEMBERS, register_factory
from ..nets.base import V4Model
from ..nets.layers import ConvBlock, SeparableBlock, keras_init_
from ..nets.readouts import FactorizedReadout
from .backbones import Backbone, load_backbone, resize_bicubic_tensor

__all__ = [
    "MEMBER_INPUT_SHAPE",
    "MEMBER_NUM_PARAMETERS",
    "MEMBER_SEED_BASE",
    "Ensemble",
    "EnsembleMember",
    "load_ensemble",
    "load_ensemble_member",
    "read_member_file",
]

#: Backbone features a released member takes: ResNet50 ``conv4_block4_out``, (C, H, W).
MEMBER_INPUT_SHAPE = (1024, 14, 14)
#: Channels of the embedding (and of the residual stream).
MEMBER_WIDTH = 512
#: Channels inside each residual block.
MEMBER_INNER_WIDTH = 256
#: Residual blocks.
MEMBER_NUM_BLOCKS = 4
#: Readout outputs (padded: a session with N neurons uses the first N).
MEMBER_NUM_OUTPUTS = 200
#: Kernel side of the separable convolutions.
MEMBER_KERNEL_SIZE = 3
#: Trainable parameters of a member at the released size.
MEMBER_NUM_PARAMETERS = 2_252_248
#: Member k is seeded with this + k.
MEMBER_SEED_BASE = 31490


class ResidualBlock(nn.Module):
    """``x + project(sep2(sep1(x)))``, no ReLU after the add.

    Args:
        width: channels in and out.
        inner_width: channels inside.
        bn_eps: batch-norm epsilon.

    Attributes:
        sep1, sep2: :class:`~v4compact.models.nets.layers.SeparableBlock` 3x3 with batch norm and
            ReLU.
        project: 1x1 :class:`torch.nn.Conv2d` ``inner_width -> width`` with bias, linear.
    """

    def __init__(self, width: int, inner_width: int, bn_eps: float = DEFAULT_BN_EPS) -> None:
        super().__init__()
        self.sep1 = SeparableBlock(width, inner_width, MEMBER_KERNEL_SIZE, 1, bn_eps)
        self.sep2 = SeparableBlock(inner_width, inner_width, MEMBER_KERNEL_SIZE, 1, bn_eps)
        self.project = nn.Conv2d(inner_width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, width, H, W)`` -> same shape."""
        return x + self.project(self.sep2(self.sep1(x)))


class EnsembleMember(nn.Module):
    """One member of the ensemble model (see the module docstring for the layers).

    Args:
        in_channels: channels of the backbone features (1024 for ResNet50).
        input_size: side of the backbone features (14); the embedding has
            ``ceil(input_size / 2)``, which the spatial readout covers.
        num_outputs: readout outputs (200).
        width, inner_width, num_blocks: the residual stream's channels (512), the channels
            inside a block (256) and the number of blocks (4).
        bn_eps: batch-norm epsilon (Keras default 1e-3).
        seed: initialise as Keras does with this seed (``None``: torch's global generator).

    Attributes:
        initial: :class:`~v4compact.models.nets.layers.ConvBlock` 1x1 with batch norm and ReLU.
        downsample: :class:`~v4compact.models.nets.layers.SeparableBlock` 3x3 stride 2 without
            batch norm or ReLU.
        blocks: :class:`torch.nn.Sequential` of :class:`ResidualBlock`.
        readout: :class:`~v4compact.models.nets.readouts.FactorizedReadout` over the embedding.
    """

    def __init__(self, in_channels: int = MEMBER_INPUT_SHAPE[0],
                 input_size: int = MEMBER_INPUT_SHAPE[1], num_outputs: int = MEMBER_NUM_OUTPUTS,
                 width: int = MEMBER_WIDTH, inner_width: int = MEMBER_INNER_WIDTH,
                 num_blocks: int = MEMBER_NUM_BLOCKS, bn_eps: float = DEFAULT_BN_EPS,
                 seed: int | None = None) -> None:
        super().__init__()
        self.input_shape = (int(in_channels), int(input_size), int(input_size))
        self.embedding_size = -(-int(input_size) // 2)
        self.initial = ConvBlock(in_channels, width, 1, 1, bn_eps)
        self.downsample = SeparableBlock(width, width, MEMBER_KERNEL_SIZE, 2, bn_eps, relu=False,
                                         batch_norm=False)
        self.blocks = nn.Sequential(*(ResidualBlock(width, inner_width, bn_eps)
                                      for _ in range(num_blocks)))
        self.readout = FactorizedReadout(width, num_outputs, size=self.embedding_size)
        self.reset_parameters(seed)

    @property
    def num_outputs(self) -> int:
        """Readout outputs."""
        return self.readout.num_outputs

    @property
    def num_parameters(self) -> int:
        """Trainable parameters (batch-norm moving statistics not counted)."""
        return sum(p.numel() for p in self.parameters())

    def reset_parameters(self, seed: int | None = None) -> EnsembleMember:
        """Keras' default initialisation (Glorot-uniform kernels, zero biases, identity BN)."""
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        keras_init_(self, generator)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(N, C, 14, 14)`` -> embedding ``(N, 512, 7, 7)``."""
        self._check_input(x)
        return self.blocks(self.downsample(self.initial(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(N, C, 14, 14)`` -> outputs ``(N, num_outputs)`` (z-scored
        units once trained)."""
        return self.readout(self.embed(x))

    def regularizer(self) -> torch.Tensor:
        """The readout's L2 penalties (zero unless set, as upstream)."""
        return self.readout.regularizer()

    def _check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise InvalidInputError(
                f"an ensemble member built for features {self.input_shape} (C, H, W) got "
                f"{tuple(x.shape[1:])}; pass channels-first backbone features"
            )

    def _run(self, features: np.ndarray, fn, batch_size: int) -> np.ndarray:
        feats = np.asarray(features)
        if feats.ndim != 4 or feats.shape[-1] != self.input_shape[0]:
            raise InvalidInputError(
                f"features must be channels-last (N, H, W, {self.input_shape[0]}), got "
                f"{feats.shape}"
            )
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        chunks = []
        try:
            with torch.inference_mode():
                for start in range(0, len(feats), batch_size):
                    x = torch.from_numpy(np.ascontiguousarray(feats[start:start + batch_size],
                                                              dtype=np.float32))
                    y = fn(x.permute(0, 3, 1, 2).to(device))
                    chunks.append((y.permute(0, 2, 3, 1) if y.ndim == 4 else y).cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(chunks)

    def embeddings(self, features: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embeddings of channels-last numpy features, in eval mode.

        Args:
            features: float ``(N, 14, 14, C)`` backbone features (e.g.
                :meth:`~v4compact.models.teachers.backbones.Backbone.features`).
            batch_size: feature maps per forward pass.

        Returns:
            float32 ``(N, 7, 7, 512)``.
        """
        return self._run(features, self.embed, batch_size)

    def predict(self, features: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Outputs for channels-last numpy features: float32 ``(N, num_outputs)``."""
        return self._run(features, self.forward, batch_size)


# ----------------------------------------------------------------------------- .keras reader

# Variables of each Keras layer class, in the order Keras 3 stores them (vars/0, vars/1 ...).
_KERAS_VARS = {
    "Conv2D": ("kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "DepthwiseConv2D": ("kernel", "bias"),
}


def _snake_case(class_name: str) -> str:
    """Keras' ``to_snake_case`` (``SeparableConv2D`` -> ``separable_conv2d``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _member_name_map(num_blocks: int) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (class, our module prefix) of every layer with weights."""
    names = {
        "initial_conv_layer": ("Conv2D", "initial.conv"),
        "initial_bn": ("BatchNormalization", "initial.bn"),
        "initial_sepconv_layer": ("SeparableConv2D", "downsample"),
        "mixing_stage": ("Conv2D", "readout.mixing"),
        "spatial_pool_stage": ("DepthwiseConv2D", "readout.spatial"),
    }
    for i in range(1, num_blocks + 1):
        block = f"blocks.{i - 1}"
        names[f"layer{i}_conv1"] = ("SeparableConv2D", f"{block}.sep1")
        names[f"layer{i}_bn1"] = ("BatchNormalization", f"{block}.sep1.bn")
        names[f"layer{i}_conv2"] = ("SeparableConv2D", f"{block}.sep2")
        names[f"layer{i}_bn2"] = ("BatchNormalization", f"{block}.sep2.bn")
        names[f"layer{i}_conv3"] = ("Conv2D", f"{block}.project")
    return names


def _to_state(cls: str, prefix: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One Keras layer's variables -> our state-dict entries (Keras kernel layouts
    ``(kh, kw, Cin, Cout)`` / depthwise ``(kh, kw, C, 1)`` -> PyTorch's)."""
    def conv(kernel: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))

    def depthwise(kernel: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))

    if cls == "Conv2D":
        return {f"{prefix}.weight": conv(arrays[0]), f"{prefix}.bias": arrays[1]}
    if cls == "SeparableConv2D":
        return {f"{prefix}.depthwise.weight": depthwise(arrays[0]),
                f"{prefix}.pointwise.weight": conv(arrays[1]),
                f"{prefix}.pointwise.bias": arrays[2]}
    if cls == "DepthwiseConv2D":
        return {f"{prefix}.weight": depthwise(arrays[0]), f"{prefix}.bias": arrays[1]}
    gamma, beta, mean, var = arrays
    return {f"{prefix}.weight": gamma, f"{prefix}.bias": beta,
            f"{prefix}.running_mean": mean, f"{prefix}.running_var": var}


def read_member_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read an upstream ensemble-member ``.keras`` file in memory (no TensorFlow).

    Returns:
        ``(architecture, state_dict)``: the keyword arguments of :class:`EnsembleMember`
        read from ``config.json`` (``in_channels``, ``input_size``, ``num_outputs``,
        ``width``, ``inner_width``, ``num_blocks``, ``bn_eps``) and float32 arrays under our
        names (not yet shape-checked; :func:`load_ensemble_member` does that).

    Raises:
        DataNotFoundError: no such file.
        ModelFormatError: not an ensemble member saved by Keras 3.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"ensemble member file {path} not found")
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
            blob = zf.read("model.weights.h5")
    except KeyError:
        raise ModelFormatError(
            f"{path.name} lacks config.json or model.weights.h5: not a Keras 3 .keras file"
        ) from None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, json.JSONDecodeError) as err:
        raise ModelFormatError(
            f"{path.name} is not a complete .keras file ({err}); fetch it again"
        ) from None
    try:
        layers = [(lay["class_name"], lay["config"]["name"], lay["config"])
                  for lay in config["config"]["layers"]]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{path.name}: config.json has no layer list") from None
    by_name = {name: (cls, cfg) for cls, name, cfg in layers}
    num_blocks = sum(1 for name in by_name if re.fullmatch(r"layer\d+_add", name))
    name_map = _member_name_map(num_blocks)
    missing = [name for name in name_map if name not in by_name]
    if num_blocks == 0 or missing or "feature_input" not in by_name:
        raise ModelFormatError(
            f"{path.name}: not an ensemble member (layers {missing[:3] or ['layer1_add']} "
            "missing); expected the layers of ensemble_model_summary.txt"
        )
    for name, (cls, _) in name_map.items():
        if by_name[name][0] != cls:
            raise ModelFormatError(
                f"{path.name}: layer {name!r} is a {by_name[name][0]}, expected a {cls}"
            )
    shape = by_name["feature_input"][1].get("batch_shape") or by_name["feature_input"][1].get(
        "batch_input_shape")
    eps = {float(cfg.get("epsilon", DEFAULT_BN_EPS)) for cls, _, cfg in layers
           if cls == "BatchNormalization"}
    if not shape or len(shape) != 4 or len(eps) != 1:
        raise ModelFormatError(f"{path.name}: input shape {shape} or batch-norm epsilons {eps} "
                               "are not those of an ensemble member")
    arch = {"in_channels": int(shape[3]), "input_size": int(shape[1]),
            "num_outputs": int(by_name["mixing_stage"][1]["filters"]),
            "width": int(by_name["initial_conv_layer"][1]["filters"]),
            "inner_width": int(by_name["layer1_conv1"][1]["filters"]),
            "num_blocks": num_blocks, "bn_eps": eps.pop()}
    # Keras 3 stores a layer's variables under layers/<snake-case class name>[_<n>], numbered
    # by class in the order of the config's layer list - not under the layer's own name.
    counts: dict[str, int] = {}
    stored = {}
    for cls, name, _ in layers:
        base = _snake_case(cls)
        stored[name] = base if base not in counts else f"{base}_{counts[base]}"
        counts[base] = counts.get(base, 0) + 1
    state: dict[str, np.ndarray] = {}
    try:
        with h5py.File(io.BytesIO(blob), "r") as h5:
            for name, (cls, prefix) in name_map.items():
                group = h5.get(f"layers/{stored[name]}/vars")
                count = len(_KERAS_VARS[cls])
                if group is None or len(group) != count:
                    raise ModelFormatError(
                        f"{path.name}: layer {name!r} has no {count} stored variables under "
                        f"layers/{stored[name]}; the file does not match its config"
                    )
                arrays = [np.asarray(group[str(i)], dtype=np.float32) for i in range(count)]
                state.update(_to_state(cls, prefix, arrays))
    except OSError as err:
        raise ModelFormatError(f"{path.name}: model.weights.h5 is unreadable ({err})") from None
    return arch, state


def load_ensemble_member(path: str | os.PathLike,
                         device: torch.device | str = "cpu") -> EnsembleMember:
    """Load an upstream ensemble member (``ensemble_model_member<k>.keras``) into PyTorch.

    Args:
        path: the ``.keras`` file.
        device: torch device for the parameters.

    Returns:
        An :class:`EnsembleMember` in eval mode; its input shape is the file's
        (``(1024, 14, 14)`` for the released members).

    Raises:
        DataNotFoundError: no such file.
        ModelFormatError: not a member file, or an array of the wrong shape.
    """
    arch, arrays = read_member_file(path)
    member = EnsembleMember(**arch)
    own = member.state_dict()
    for name, value in arrays.items():
        if name not in own or tuple(own[name].shape) != value.shape:
            want = tuple(own[name].shape) if name in own else None
            raise ModelFormatError(
                f"{Path(path).name}: {name} has shape {value.shape}, expected {want} for the "
                "architecture in its config; the file is inconsistent, fetch it again"
            )
    state = {name: torch.from_numpy(value) for name, value in arrays.items()}
    for name, tensor in own.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(tensor)
    member.load_state_dict(state, strict=True)
    return member.to(device).eval()


# ----------------------------------------------------------------------------- ensemble


class Ensemble(V4Model):
    """A backbone and its members; the prediction is the mean over members.

    Takes what every model of the package takes - re-centred float ``(N, 3, 112, 112)``
    images - and undoes the re-centring, resizes (Pillow's bicubic filter, differentiable)
    and preprocesses as the backbone's weights expect.

    Args:
        backbone: the feature extractor (ResNet50 ``conv4_block4_out`` for the released
            members).
        members: members taking the backbone's features.
        model_id: zoo id (``"ensemble"``, ``"ensemble/member<k>"``) or ``""``.

    Attributes:
        backbone: :class:`~v4compact.models.teachers.backbones.Backbone`.
        members: :class:`torch.nn.ModuleList` of :class:`EnsembleMember`.
        neuron_ids: ``"output<i>"`` per readout output: the members' padded readout columns,
            which belong to the last session they were trained on; fit a mapping on
            :meth:`embeddings` to predict other neurons.
    """

    def __init__(self, backbone: Backbone, members: list[EnsembleMember],
                 model_id: str = "") -> None:
        super().__init__()
        if not members:
            raise InvalidInputError("an ensemble needs at least one member")
        outputs = {m.num_outputs for m in members}
        if len(outputs) != 1:
            raise InvalidInputError(f"members have different numbers of outputs {outputs}")
        self.backbone = backbone
        self.members = nn.ModuleList(members)
        self.model_id = model_id
        self.neuron_ids = [f"output{i}" for i in range(outputs.pop())]
        self.eval()

    @property
    def layer_names(self) -> list[str]:
        """``["features", "embedding", "output"]``; ``"embedding"`` is the members' mean."""
        return ["features", "embedding", "output"]

    @property
    def num_filters(self) -> list[int]:
        """Not a five-layer compact model: raises InvalidInputError."""
        raise InvalidInputError("the ensemble model has no compact filter counts")

    def backbone_input(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred ``(N, 3, 112, 112)`` -> the backbone's preprocessed input (differentiable)."""
        mean = torch.as_tensor(IMAGE_MEAN, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
        pixels = resize_bicubic_tensor(x + mean, self.backbone.input_size)
        return self.backbone.normalise(pixels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred ``(N, 3, 112, 112)`` -> mean member outputs ``(N, num_outputs)``."""
        features = self.backbone(self.backbone_input(x))
        return torch.stack([m(features) for m in self.members]).mean(0)

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """``"features"`` (backbone maps), ``"embedding"`` (mean member embedding) or
        ``"output"``."""
        self.check_layer(layer)
        if layer == "output":
            return self.forward(x)
        features = self.backbone(self.backbone_input(x))
        if layer == "features":
            return features
        return torch.stack([m.embed(features) for m in self.members]).mean(0)

    def embeddings(self, images, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Each member's embedding of images (for a mapping to neurons, one per member).

        Args:
            images: uint8 images ``(N, 112, 112, 3)`` (anything the backbone accepts).
            batch_size: images per forward pass.
            progress: show a progress bar for the backbone.

        Returns:
            float32 ``(members, N, 7, 7, 512)``, channels-last.
        """
        features = self.backbone.features(images, batch_size=batch_size, progress=progress)
        return np.stack([m.embeddings(features, batch_size) for m in self.members])


def load_ensemble(members=None, backbone="resnet50", device: torch.device | str = "cpu",
                  data_dir: str | os.PathLike | None = None) -> Ensemble:
    """The released ensemble model: ResNet50 features and the trained members.

    Args:
        members: member indices (0-24) or ``None`` for all 25.
        backbone: backbone spec or :class:`~v4compact.models.teachers.backbones.Backbone` the
            members were trained on (upstream: ``"resnet50"`` with Keras' ImageNet weights).
        device: torch device.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        An :class:`Ensemble` in eval mode.

    Raises:
        DataNotFoundError: a member file is missing (the message names the fetch command),
            or the backbone's weights cannot be found.
    """
    indices = range(NUM_ENSEMBLE_MEMBERS) if members is None else [int(k) for k in members]
    model_id = ENSEMBLE.format_id(indices[0] if len(indices) == 1 else None)
    # a missing file names the group that brings all the members asked for
    group = ENSEMBLE.fetch_group_of(model_id)
    files = [local.require(paths.ensemble_member(k), data_dir, group) for k in indices]
    loaded = [load_ensemble_member(f, device) for f in files]
    return Ensemble(load_backbone(backbone, device=device), loaded, model_id).to(device)


@register_factory("ensemble")
def load_ensemble_model(member: int | None = None, device: torch.device | str = "cpu",
                        data_dir: str | os.PathLike | None = None) -> Ensemble:
    """Zoo factory of ``ensemble`` / ``ensemble/member<k>``: :func:`load_ensemble`."""
    return load_ensemble(None if member is None else [member], device=device,
                         data_dir=data_dir)

