"""The Keras forms of the release's models: ``.keras`` (Keras 3 zip: ``config.json`` +
``model.weights.h5``, read in memory with h5py), ``.weights.h5`` (Keras 3 weights only) and
the legacy Keras 2 ``.h5``, each read into :class:`~v4compact.models.nets.weights.ModelWeights`
through an explicit map from the file's names to the layer roles of :mod:`.convert`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ...errors import ModelFormatError
from ..arch import DEFAULT_BN_EPS, KERNEL_SIZE, LAYER_STRIDES, NUM_LAYERS, READOUT_SIZE
from ..nets.weights import ModelWeights
from .convert import NUM_VARS, weights_from_keras

__all__ = ["read_keras", "read_legacy_h5", "read_weights_h5"]

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
    return weights_from_keras(keras_weights, arch, path, "keras")


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
    return weights_from_keras(keras_weights, arch, path, "weights-h5")


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
        count = NUM_VARS[role.rstrip("01234")]
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
    return weights_from_keras(keras_weights, arch, path, "h5")
