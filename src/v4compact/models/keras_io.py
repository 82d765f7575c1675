"""Read the released model files into PyTorch state dicts, without TensorFlow.

Five formats are supported, each through an explicit map from the file's names to ours,
with a shape check of every array:

=================  ===========================================================================
``.keras``         Keras 3 zip: ``config.json`` (architecture) + ``model.weights.h5``
                   (read in memory with h5py, never extracted to disk).
``.weights.h5``    Keras 3 weights only (same HDF5 layout); filter counts from the shapes,
                   checked against ``nums_filters`` when given.
``.npy``           object array of the Keras weights in ``model.get_weights()`` order.
``.pt``            state dict of the upstream PyTorch port (float64, converted to float32).
``.h5``            legacy Keras 2 model: ``model_config`` attribute + ``model_weights`` group.
=================  ===========================================================================

Weights-only formats (``.weights.h5``, ``.npy``, ``.pt``) carry no activations nor batch-norm
epsilon: they are read as ReLU networks with the Keras default epsilon 1e-3, which is what
every released compact model uses.

The architecture's facts come from :mod:`.arch`; this module only reads files. The result
is a :class:`ModelWeights`: the architecture (kind, filters per layer, ReLU or
not, epsilon) and a state dict in the layout of :class:`~v4compact.models.compact.CompactModel`
or :class:`~v4compact.models.shared.SharedCompactModel`:

=====================================  ==========================================  ============
Keras (layer role / variable)          PyTorch name                                transpose
=====================================  ==========================================  ============
layer0 Conv2D kernel (5,5,3,K)         ``core.layer0.conv.weight`` (K,3,5,5)       (3,2,0,1)
layer0 Conv2D bias (K,)                ``core.layer0.conv.bias``                   -
SeparableConv2D depthwise (5,5,C,1)    ``core.layerK.depthwise.weight`` (C,1,5,5)  (2,3,0,1)
SeparableConv2D pointwise (1,1,C,K)    ``core.layerK.pointwise.weight`` (K,C,1,1)  (3,2,0,1)
SeparableConv2D bias (K,)              ``core.layerK.pointwise.bias``              -
BatchNorm gamma/beta/mean/variance     ``core.layerK.bn.weight/bias/running_*``    -
Dense "Beta" kernel (28*28*K4, 1)      ``readout.weight`` (1, 28*28*K4)            (1,0)
Conv2D "mixing_stage" (1,1,100,219)    ``readout.mixing.weight`` (219,100,1,1)     (3,2,0,1)
DepthwiseConv2D "spatial_pool_stage"   ``readout.spatial.weight`` (219,1,28,28)    (2,3,0,1)
=====================================  ==========================================  ============
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, ModelFormatError
from .arch import (
    DEFAULT_BN_EPS,
    KERNEL_SIZE,
    LAYER_STRIDES,
    NUM_LAYERS,
    READOUT_SIZE,
    state_dict_shapes,
)

#: The upstream PyTorch port's ``layer1-4_bn.running_var`` hold Keras' moving variance + this.
PT_FOLDED_EPS = 1e-3

#: Format names (as in :data:`v4compact.data.paths.COMPACT_FORMATS`).
FORMATS = ("keras", "weights-h5", "npy", "torch", "h5")
#: Other accepted spellings of the format names.
FORMAT_ALIASES = {"pt": "torch", "weights_h5": "weights-h5", "weights.h5": "weights-h5"}

# Keras 3 stores each layer's variables under layers/<auto name>/vars/<i>; the auto names
# follow the class and the order of the layers. A .keras file's config gives that order; a
# weights-only file has none, so it is read with the order of the released models.
_KERAS3_PATHS_CORE = {
    "conv0": "conv2d",
    "bn0": "batch_normalization",
    **{f"sep{k}": "separable_conv2d" + ("" if k == 1 else f"_{k - 1}")
       for k in range(1, NUM_LAYERS)},
    **{f"bn{k}": f"batch_normalization_{k}" for k in range(1, NUM_LAYERS)},
}
_KERAS3_PATHS = {
    "compact": {**_KERAS3_PATHS_CORE, "dense": "dense"},
    "shared": {**_KERAS3_PATHS_CORE, "mixing": "conv2d_1", "spatial_pool": "depthwise_conv2d"},
}
# Keras 3 weight-group name of each layer class (snake case of the class name).
_KERAS3_CLASS_NAMES = {
    "InputLayer": "input_layer",
    "Conv2D": "conv2d",
    "SeparableConv2D": "separable_conv2d",
    "DepthwiseConv2D": "depthwise_conv2d",
    "BatchNormalization": "batch_normalization",
    "Activation": "activation",
    "ReLU": "re_lu",
    "Flatten": "flatten",
    "Dense": "dense",
}
# Keras 2 variable names (suffixes after "<layer>_1/"), in the order of the weight list.
_KERAS2_VARS = {
    "Conv2D": ("kernel:0", "bias:0"),
    "SeparableConv2D": ("depthwise_kernel:0", "pointwise_kernel:0", "bias:0"),
    "BatchNormalization": ("gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"),
    "Dense": ("kernel:0", "bias:0"),
    "DepthwiseConv2D": ("depthwise_kernel:0", "bias:0"),
}
_NUM_VARS = {"conv": 2, "sep": 3, "bn": 4, "dense": 2, "mixing": 2, "spatial_pool": 2}


@dataclass
class ModelWeights:
    """A model file read into memory: its architecture and a PyTorch-layout state dict.

    Attributes:
        kind: ``"compact"`` (one output, dense readout) or ``"shared"`` (factorized head).
        num_filters: filters of layers 0-4.
        num_outputs: 1 for a compact model, the neurons of a shared model.
        relu: whether each batch norm is followed by a ReLU.
        bn_eps: batch-norm epsilon.
        state_dict: name -> float32 numpy array, names as in the table of this module.
        source: the file read.
        format: one of :data:`FORMATS`.
    """

    kind: str
    num_filters: list[int]
    num_outputs: int
    relu: bool
    bn_eps: float
    state_dict: dict[str, np.ndarray] = field(repr=False)
    source: Path | None = None
    format: str = ""


def detect_format(path: str | os.PathLike) -> str:
    """The format of a model file from its name: one of :data:`FORMATS`."""
    name = Path(path).name.lower()
    if name.endswith(".keras"):
        return "keras"
    if name.endswith(".weights.h5"):
        return "weights-h5"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith((".pt", ".pth")):
        return "torch"
    raise ModelFormatError(
        f"{Path(path).name}: unknown model file type; use a .keras, .weights.h5, .npy, .pt or "
        ".h5 file of the release"
    )


def read_model_file(path: str | os.PathLike, format: str | None = None,
                    num_filters: list[int] | None = None) -> ModelWeights:
    """Read a released model file of any supported format.

    Args:
        path: the file.
        format: one of :data:`FORMATS`; guessed from the file name when None.
        num_filters: expected filters per layer (e.g. from ``nums_filters/*.npy``); a file
            whose weights disagree raises :class:`ModelFormatError`.

    Returns:
        The architecture and float32 state dict.

    Raises:
        DataNotFoundError: the file does not exist.
        ModelFormatError: the file is not a model of that format, or does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"model file {path} not found")
    fmt = FORMAT_ALIASES.get(format, format) if format else detect_format(path)
    readers = {"keras": read_keras, "weights-h5": read_weights_h5, "npy": read_npy,
               "torch": read_pt, "h5": read_legacy_h5}
    if fmt not in readers:
        raise ModelFormatError(f"unknown model format {fmt!r}; choose one of {', '.join(FORMATS)}")
    weights = readers[fmt](path)
    if num_filters is not None and list(map(int, num_filters)) != weights.num_filters:
        raise ModelFormatError(
            f"{path.name}: the weights have {weights.num_filters} filters per layer but "
            f"nums_filters says {list(map(int, num_filters))}; re-fetch the model files"
        )
    return weights


# ---------------------------------------------------------------------------- .keras


def read_keras(path: str | os.PathLike) -> ModelWeights:
    """Read a Keras 3 ``.keras`` zip (``config.json`` + ``model.weights.h5``) in memory."""
    import h5py

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFormatError(
                    f"{path.name} is a zip without config.json and model.weights.h5, not a "
                    "Keras 3 model; pass a .keras file saved by Keras 3"
                )
            config = json.loads(zf.read("config.json"))
            blob = zf.read("model.weights.h5")
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
        raise ModelFormatError(
            f"{path.name} is not a complete .keras zip ({err}); the file is truncated or not a "
            "model: fetch it again"
        ) from None
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path.name}: config.json is not valid JSON ({err})") from None
    layers = _config_layers(config, path)
    arch = _parse_keras_config(layers, path)
    auto_names = _keras3_auto_names(layers, path)
    h5_paths = {role: auto_names[name] for role, name in arch["roles"].items()}
    try:
        with h5py.File(io.BytesIO(blob), "r") as h5:
            keras_weights = _read_keras3_vars(h5, h5_paths, path)
    except OSError as err:
        raise ModelFormatError(f"{path.name}: model.weights.h5 is unreadable ({err})") from None
    return _finish(keras_weights, arch, path, "keras")


def read_weights_h5(path: str | os.PathLike) -> ModelWeights:
    """Read a Keras 3 weights-only ``.weights.h5`` file (architecture from the shapes)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if "layers" not in h5:
                raise ModelFormatError(
                    f"{path.name} has no 'layers' group: not a Keras 3 .weights.h5 file"
                )
            kind = "shared" if "depthwise_conv2d" in h5["layers"] else "compact"
            keras_weights = _read_keras3_vars(h5, _KERAS3_PATHS[kind], path)
    except OSError as err:
        raise ModelFormatError(f"{path.name} is not a readable HDF5 file ({err})") from None
    arch = {"kind": kind, "relu": True, "bn_eps": DEFAULT_BN_EPS}
    return _finish(keras_weights, arch, path, "weights-h5")


def _keras3_auto_names(layers: list[tuple[str, str, dict]], path: Path) -> dict[str, str]:
    """Config layer name -> the name Keras 3 stores its variables under (``conv2d_1`` ...).

    Keras 3 names each layer's weight group after its class in snake case, numbered in
    order of appearance (``conv2d``, ``conv2d_1``, ...), not after the layer's own name.
    """
    counts: dict[str, int] = {}
    out = {}
    for cls, name, _ in layers:
        base = _KERAS3_CLASS_NAMES.get(cls)
        if base is None:
            raise ModelFormatError(
                f"{path.name}: layer {name!r} of class {cls} is not part of a compact model"
            )
        n = counts.get(base, 0)
        counts[base] = n + 1
        out[name] = base if n == 0 else f"{base}_{n}"
    return out


def _read_keras3_vars(h5, h5_paths: dict[str, str], path: Path) -> dict[str, list[np.ndarray]]:
    out = {}
    for role, name in h5_paths.items():
        group = h5.get(f"layers/{name}/vars")
        if group is None:
            raise ModelFormatError(
                f"{path.name}: weights of layer {name!r} missing; not a released compact model"
            )
        count = _NUM_VARS[role.rstrip("01234")]
        try:
            out[role] = [np.asarray(group[str(i)], dtype=np.float32) for i in range(count)]
        except KeyError:
            raise ModelFormatError(
                f"{path.name}: layer {name!r} has {len(group)} variables, expected {count}"
            ) from None
    return out


def _config_layers(config: dict, path: Path) -> list[tuple[str, str, dict]]:
    try:
        layers = config["config"]["layers"]
        return [(lay["class_name"], lay["config"].get("name", lay.get("name", "")), lay["config"])
                for lay in layers]
    except (KeyError, TypeError):
        raise ModelFormatError(
            f"{path.name}: the model config has no layer list; not a Keras functional model"
        ) from None


def _parse_keras_config(layers: list[tuple[str, str, dict]], path: Path) -> dict:
    """Architecture from a Keras (2 or 3) layer list; also maps roles to layer names."""

    def fail(what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{path.name}: unsupported architecture ({what}); expected a released compact or "
            "shared compact model"
        )

    seq = [entry for entry in layers if entry[0] != "InputLayer"]
    roles: dict[str, str] = {}
    eps_values, relus, filters, pos = [], [], [], 0
    for k in range(NUM_LAYERS):
        want = "Conv2D" if k == 0 else "SeparableConv2D"
        if pos >= len(seq) or seq[pos][0] != want:
            raise fail(f"layer {k} is not a {want}")
        cls, name, cfg = seq[pos]
        if (list(cfg.get("kernel_size", [])) != [KERNEL_SIZE, KERNEL_SIZE]
                or list(cfg.get("strides", [])) != [LAYER_STRIDES[k]] * 2
                or cfg.get("padding") != "same" or not cfg.get("use_bias", True)
                or cfg.get("activation", "linear") != "linear"
                or cfg.get("depth_multiplier", 1) != 1
                or cfg.get("data_format", "channels_last") != "channels_last"):
            raise fail(f"{name}: kernel, stride, padding or activation differ")
        roles[f"conv{k}" if k == 0 else f"sep{k}"] = name
        filters.append(cfg.get("filters"))
        pos += 1
        if pos >= len(seq) or seq[pos][0] != "BatchNormalization":
            raise fail(f"no batch norm after layer {k}")
        cls, name, cfg = seq[pos]
        if not cfg.get("center", True) or not cfg.get("scale", True):
            raise fail(f"{name}: batch norm without center/scale")
        eps_values.append(float(cfg.get("epsilon", DEFAULT_BN_EPS)))
        roles[f"bn{k}"] = name
        pos += 1
        has_relu = pos < len(seq) and seq[pos][0] in ("Activation", "ReLU")
        if has_relu:
            if seq[pos][0] == "Activation" and seq[pos][2].get("activation") != "relu":
                raise fail(f"{seq[pos][1]}: activation {seq[pos][2].get('activation')!r}")
            pos += 1
        relus.append(has_relu)
    if len(set(relus)) != 1:
        raise fail("ReLU after some layers only")
    if len(set(eps_values)) != 1:
        raise fail(f"different batch-norm epsilons {eps_values}")
    head = [entry[0] for entry in seq[pos:]]
    if head == ["Flatten", "Dense"]:
        kind = "compact"
        roles["dense"] = seq[pos + 1][1]
    elif head == ["Conv2D", "DepthwiseConv2D", "Flatten"]:
        kind = "shared"
        roles["mixing"], roles["spatial_pool"] = seq[pos][1], seq[pos + 1][1]
        if list(seq[pos + 1][2].get("kernel_size", [])) != [READOUT_SIZE] * 2 or \
                seq[pos + 1][2].get("padding") != "valid":
            raise fail("spatial pool is not a 28x28 'valid' depthwise convolution")
    else:
        raise fail(f"head layers {head}")
    return {"kind": kind, "relu": relus[0], "bn_eps": eps_values[0], "roles": roles,
            "filters": filters}


# ---------------------------------------------------------------------------- .h5 (Keras 2)


def read_legacy_h5(path: str | os.PathLike) -> ModelWeights:
    """Read a legacy Keras 2 ``.h5`` model (``model_config`` attribute + ``model_weights``)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if "model_config" not in h5.attrs or "model_weights" not in h5:
                raise ModelFormatError(
                    f"{path.name} has no model_config/model_weights: not a Keras 2 model file "
                    "(a .weights.h5 file must be named *.weights.h5)"
                )
            raw = h5.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            arch = _parse_keras_config(_config_layers(config, path), path)
            classes = {name: cls for cls, name, _ in _config_layers(config, path)}
            keras_weights = {}
            for role, layer in arch["roles"].items():
                group = h5["model_weights"].get(layer)
                if group is None:
                    raise ModelFormatError(f"{path.name}: no weights for layer {layer!r}")
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                suffixes = _KERAS2_VARS[classes[layer]]
                if len(names) != len(suffixes) or not all(
                        n.endswith("/" + s) for n, s in zip(names, suffixes, strict=True)):
                    raise ModelFormatError(
                        f"{path.name}: layer {layer!r} holds {names}, expected {suffixes}"
                    )
                keras_weights[role] = [np.asarray(group[n], dtype=np.float32) for n in names]
    except OSError as err:
        raise ModelFormatError(f"{path.name} is not a readable HDF5 file ({err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFormatError(f"{path.name}: model_config is not valid JSON ({err})") from None
    return _finish(keras_weights, arch, path, "h5")


# ---------------------------------------------------------------------------- .npy


def read_npy(path: str | os.PathLike) -> ModelWeights:
    """Read the Keras weight list (``model.get_weights()`` order) saved as a ``.npy`` file."""
    path = Path(path)
    try:
        arrays = _load_npy_restricted(path)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFormatError(f"{path.name} is not a readable .npy weight list ({first})") \
            from None
    if arrays.dtype != object or arrays.ndim != 1:
        raise ModelFormatError(
            f"{path.name} holds one {arrays.dtype} array of shape {arrays.shape}, not a list of "
            "Keras weights"
        )
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    core = ["conv0", "bn0"] + [r for k in range(1, NUM_LAYERS) for r in (f"sep{k}", f"bn{k}")]
    if len(arrays) == 36:
        kind, roles = "compact", core + ["dense"]
    elif len(arrays) == 38:
        kind, roles = "shared", core + ["mixing", "spatial_pool"]
    else:
        raise ModelFormatError(
            f"{path.name} holds {len(arrays)} arrays; a compact model has 36, a shared one 38"
        )
    keras_weights, pos = {}, 0
    for role in roles:
        count = _NUM_VARS[role.rstrip("01234")]
        keras_weights[role] = arrays[pos:pos + count]
        pos += count
    arch = {"kind": kind, "relu": True, "bn_eps": DEFAULT_BN_EPS}
    return _finish(keras_weights, arch, path, "npy")


# numpy's pickled object arrays only need these globals; anything else in a .npy file is
# refused, so reading a weight list cannot run arbitrary code.
_NPY_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _NPY_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_npy_restricted(path: Path) -> np.ndarray:
    """``np.load`` for a ``.npy`` file, unpickling object arrays with numpy classes only."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        array = _NumpyOnlyUnpickler(fh).load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError("the pickled content does not match the .npy header")
    return array


# ---------------------------------------------------------------------------- .pt


def _pt_name_map() -> dict[str, str]:
    """Upstream PyTorch-port names -> ours (``num_batches_tracked`` is dropped)."""
    mapping = {"layers.layer0_conv.weight": "core.layer0.conv.weight",
               "layers.layer0_conv.bias": "core.layer0.conv.bias",
               "layers.Beta.weight": "readout.weight", "layers.Beta.bias": "readout.bias"}
    for k in range(NUM_LAYERS):
        for var in ("weight", "bias", "running_mean", "running_var"):
            mapping[f"layers.layer{k}_bn.{var}"] = f"core.layer{k}.bn.{var}"
        if k > 0:
            mapping[f"layers.layer{k}_conv_depth.weight"] = f"core.layer{k}.depthwise.weight"
            mapping[f"layers.layer{k}_conv_point.weight"] = f"core.layer{k}.pointwise.weight"
            mapping[f"layers.layer{k}_conv_point.bias"] = f"core.layer{k}.pointwise.bias"
    return mapping


def read_pt(path: str | os.PathLike) -> ModelWeights:
    """Read the upstream PyTorch port's state dict (``torch.load(weights_only=True)``).

    Its readout ``layers.Beta.weight`` ``(1, 28*28*K4)`` is already in channels-last
    flatten order (checked against the Keras files), so it maps to ``readout.weight`` as is.
    The moving variances of layers 1-4 are stored with the epsilon added; it is subtracted
    (see :data:`PT_FOLDED_EPS`). The port's float64 values are rounded to float32.
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFormatError(f"{path.name} is not a PyTorch state dict ({first})") from None
    if not isinstance(state, dict):
        raise ModelFormatError(f"{path.name} holds a {type(state).__name__}, not a state dict")
    mapping = _pt_name_map()
    unknown = sorted(k for k in state if k not in mapping and
                     not k.endswith("num_batches_tracked"))
    missing = sorted(k for k in mapping if k not in state)
    if unknown or missing:
        raise ModelFormatError(
            f"{path.name}: not the upstream compact-model state dict (unexpected keys "
            f"{unknown[:3]}, missing keys {missing[:3]})"
        )
    arrays = {ours: state[theirs].detach().cpu().numpy() for theirs, ours in mapping.items()}
    for k in range(1, NUM_LAYERS):
        # The port stores the separable layers' moving variance with the Keras epsilon
        # already added (var + 1e-3; found by comparing with the .keras files, exact in
        # float64); layer 0's is stored as is. Undo it so that eps = 1e-3 applies once.
        name = f"core.layer{k}.bn.running_var"
        if (arrays[name] < PT_FOLDED_EPS).any():
            raise ModelFormatError(
                f"{path.name}: {name} has values below {PT_FOLDED_EPS}; not the upstream "
                "port's layout (moving variance + epsilon)"
            )
        arrays[name] = arrays[name].astype(np.float64) - PT_FOLDED_EPS
    sd = {name: value.astype(np.float32) for name, value in arrays.items()}
    num_filters = [int(sd[f"core.layer{k}.bn.weight"].shape[0]) for k in range(NUM_LAYERS)]
    _check_state_dict(sd, "compact", num_filters, 1, path)
    return ModelWeights("compact", num_filters, 1, True, DEFAULT_BN_EPS, sd, path, "torch")


# ---------------------------------------------------------------------------- conversion


def _finish(keras_weights: dict[str, list[np.ndarray]], arch: dict, path: Path,
            fmt: str) -> ModelWeights:
    kind = arch["kind"]
    try:
        num_filters = [int(keras_weights["conv0"][0].shape[-1])] + [
            int(keras_weights[f"sep{k}"][1].shape[-1]) for k in range(1, NUM_LAYERS)]
        num_outputs = 1 if kind == "compact" else int(keras_weights["mixing"][0].shape[-1])
    except (IndexError, KeyError):
        raise ModelFormatError(f"{path.name}: kernel arrays have the wrong rank") from None
    if arch.get("filters") is not None and arch["filters"] != num_filters:
        raise ModelFormatError(
            f"{path.name}: the config says {arch['filters']} filters per layer but the weights "
            f"have {num_filters}; the file is inconsistent, fetch it again"
        )
    sd = keras_to_state_dict(keras_weights, kind)
    _check_state_dict(sd, kind, num_filters, num_outputs, path)
    return ModelWeights(kind, num_filters, num_outputs, arch["relu"], arch["bn_eps"], sd,
                        path, fmt)


def keras_to_state_dict(keras_weights: dict[str, list[np.ndarray]],
                        kind: str) -> dict[str, np.ndarray]:
    """Keras weight lists by role -> our state dict (see the module table; no checks)."""
    sd: dict[str, np.ndarray] = {}
    kernel, bias = keras_weights["conv0"]
    sd["core.layer0.conv.weight"] = _t(kernel, (3, 2, 0, 1))
    sd["core.layer0.conv.bias"] = bias
    for k in range(1, NUM_LAYERS):
        depthwise, pointwise, bias = keras_weights[f"sep{k}"]
        sd[f"core.layer{k}.depthwise.weight"] = _t(depthwise, (2, 3, 0, 1))
        sd[f"core.layer{k}.pointwise.weight"] = _t(pointwise, (3, 2, 0, 1))
        sd[f"core.layer{k}.pointwise.bias"] = bias
    for k in range(NUM_LAYERS):
        gamma, beta, mean, var = keras_weights[f"bn{k}"]
        sd[f"core.layer{k}.bn.weight"] = gamma
        sd[f"core.layer{k}.bn.bias"] = beta
        sd[f"core.layer{k}.bn.running_mean"] = mean
        sd[f"core.layer{k}.bn.running_var"] = var
    if kind == "compact":
        kernel, bias = keras_weights["dense"]
        sd["readout.weight"] = np.ascontiguousarray(kernel.T)
        sd["readout.bias"] = bias
    else:
        kernel, bias = keras_weights["mixing"]
        sd["readout.mixing.weight"] = _t(kernel, (3, 2, 0, 1))
        sd["readout.mixing.bias"] = bias
        kernel, bias = keras_weights["spatial_pool"]
        sd["readout.spatial.weight"] = _t(kernel, (2, 3, 0, 1))
        sd["readout.spatial.bias"] = bias
    return sd


def _check_state_dict(sd: dict[str, np.ndarray], kind: str, num_filters: list[int],
                      num_outputs: int, path: Path) -> None:
    for name, shape in state_dict_shapes(kind, num_filters, num_outputs).items():
        got = tuple(sd[name].shape) if name in sd else None
        if got != shape:
            raise ModelFormatError(
                f"{path.name}: {name} has shape {got}, expected {shape} for a {kind} model with "
                f"{num_filters} filters; the file does not match its architecture"
            )


def _t(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    if array.ndim != len(axes):
        raise ModelFormatError(f"a kernel of shape {array.shape} where rank {len(axes)} is needed")
    return np.ascontiguousarray(array.transpose(axes))

