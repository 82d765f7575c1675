"""Write a compact model as a Keras 3 ``.keras`` file, without TensorFlow or Keras.

A ``.keras`` file is a zip of three members (the layout Keras 3's ``model.save`` writes and
``keras.models.load_model`` reads):

- ``config.json``: a ``Functional`` model - ``InputLayer`` (None, 112, 112, 3), then per
  layer ``Conv2D`` / ``SeparableConv2D`` (5x5, TensorFlow "same" padding, strides
  1, 2, 2, 1, 1), ``BatchNormalization`` (the model's epsilon, Keras momentum 0.99) and
  ``Activation("relu")``, then ``Flatten`` ("embeddings") and ``Dense(1)`` ("Beta") - the
  layer names of the released compact models;
- ``model.weights.h5``: each layer's variables under ``layers/<auto name>/vars/<i>``
  (``conv2d``, ``batch_normalization_1``, ``separable_conv2d_3``, ``dense`` ...: Keras
  names the groups after the layer class, numbered in order), in Keras layouts
  (:meth:`~v4compact.models.nets.core.EncoderModel.layer_weights`);
- ``metadata.json``: the Keras format version the file follows, the date, and under
  ``"v4compact"`` whatever the caller passes (the provenance of a made model). Keras
  ignores the extra key.

The file is read back by :func:`v4compact.models.formats.keras_io.read_keras` (and so by
:func:`v4compact.load_compact_model` with a path) and opened by Keras 3
(``scripts/check_keras_written.py`` checks the outputs against Keras under tensorflow-cpu).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError
from ..arch import BN_MOMENTUM, IMAGE_SIZE, IN_CHANNELS, KERNEL_SIZE, LAYER_STRIDES, NUM_LAYERS

__all__ = ["KERAS_FORMAT_VERSION", "read_keras_metadata", "write_keras"]

#: The Keras version whose ``.keras`` layout the writer follows (that of the released files).
KERAS_FORMAT_VERSION = "3.1.1"
#: Key of the caller's metadata inside ``metadata.json``.
METADATA_KEY = "v4compact"


def write_keras(model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write a compact model to a Keras 3 ``.keras`` file.

    Args:
        model: an unfused :class:`~v4compact.models.nets.compact.CompactModel` (batch norm
            present: ``model.fuse()`` results cannot be written).
        path: the file to write (``.keras`` is appended when the name lacks it); its folder
            is created.
        metadata: JSON-serialisable provenance stored in ``metadata.json`` under
            ``"v4compact"`` (e.g. teacher, corpus, preset, seeds, fidelity).

    Returns:
        The path written.

    Raises:
        InvalidInputError: not an unfused compact model, or metadata that is not JSON.
    """
    if len(getattr(model, "neuron_ids", [])) != 1 or not hasattr(model, "layer_weights") \
            or not getattr(getattr(model, "core", None), "batch_norm", False):
        raise InvalidInputError(
            f"write_keras needs an unfused CompactModel, got {type(model).__name__}; pass the "
            "model itself, not model.fuse()"
        )
    path = Path(path)
    if path.suffix != ".keras":
        path = path.with_name(path.name + ".keras")
    try:
        meta = json.dumps({
            "keras_version": KERAS_FORMAT_VERSION,
            "date_saved": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d@%H:%M:%S"),
            METADATA_KEY: metadata or {},
        })
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"metadata for {path.name} is not JSON-serialisable ({err})") \
            from None
    config = _config(model.num_filters, model.bn_eps, model.relu)
    weights = _weights_h5(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", meta)
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)
    os.replace(temporary, path)
    return path


def read_keras_metadata(path: str | os.PathLike) -> dict:
    """The ``"v4compact"`` entry of a ``.keras`` file's ``metadata.json`` (``{}`` if none).

    Raises:
        ModelFormatError: not a readable zip.
    """
    from ...errors import ModelFormatError

    try:
        with zipfile.ZipFile(path) as archive:
            if "metadata.json" not in archive.namelist():
                return {}
            meta = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"{Path(path).name}: unreadable .keras metadata ({err})") \
            from None
    entry = meta.get(METADATA_KEY, {}) if isinstance(meta, dict) else {}
    return entry if isinstance(entry, dict) else {}


# -- config.json -------------------------------------------------------------------------------
def _initializer(name: str) -> dict:
    config = {"seed": None} if name == "GlorotUniform" else {}
    return {"module": "keras.initializers", "class_name": name, "config": config,
            "registered_name": None}


def _tensor(shape: list, source: str) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": [source, 0, 0]}}


def _layer(class_name: str, config: dict, input_shape: list | None, source: str | None) -> dict:
    entry = {"module": "keras.layers", "class_name": class_name, "config": config,
             "registered_name": None}
    if input_shape is not None:
        entry["build_config"] = {"input_shape": input_shape}
    entry["name"] = config["name"]
    entry["inbound_nodes"] = [] if source is None else [
        {"args": [_tensor(input_shape, source)], "kwargs": {}}]
    return entry


def _conv_config(name: str, filters: int, stride: int, separable: bool) -> dict:
    config = {"name": name, "trainable": True, "dtype": "float32"}
    if separable:
        config["depth_multiplier"] = 1
    config.update(filters=filters, kernel_size=[KERNEL_SIZE, KERNEL_SIZE],
                  strides=[stride, stride], padding="same", data_format="channels_last",
                  dilation_rate=[1, 1])
    if not separable:
        config["groups"] = 1
    config.update(activation="linear", use_bias=True)
    if separable:
        config.update(depthwise_initializer=_initializer("GlorotUniform"),
                      pointwise_initializer=_initializer("GlorotUniform"),
                      bias_initializer=_initializer("Zeros"), depthwise_regularizer=None,
                      pointwise_regularizer=None, bias_regularizer=None,
                      activity_regularizer=None, depthwise_constraint=None,
                      pointwise_constraint=None, bias_constraint=None)
    else:
        config.update(kernel_initializer=_initializer("GlorotUniform"),
                      bias_initializer=_initializer("Zeros"), kernel_regularizer=None,
                      bias_regularizer=None, activity_regularizer=None,
                      kernel_constraint=None, bias_constraint=None)
    return config


def _bn_config(name: str, eps: float) -> dict:
    return {"name": name, "trainable": True, "dtype": "float32", "axis": -1,
            "momentum": 1.0 - BN_MOMENTUM, "epsilon": float(eps), "center": True,
            "scale": True, "beta_initializer": _initializer("Zeros"),
            "gamma_initializer": _initializer("Ones"),
            "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"), "beta_regularizer": None,
            "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None,
            "synchronized": False}


def _config(num_filters: list[int], eps: float, relu: bool) -> dict:
    """The ``Functional`` config of a compact model with these filters (layer names as in
    the release: ``layer<k>_conv``, ``layer<k>_bn``, ``layer<k>_act``, ``embeddings``,
    ``Beta``)."""
    layers = [_layer("InputLayer", {"batch_shape": [None, IMAGE_SIZE, IMAGE_SIZE, IN_CHANNELS],
                                    "dtype": "float32", "sparse": False,
                                    "name": "image_input"}, None, None)]
    shape, source = [None, IMAGE_SIZE, IMAGE_SIZE, IN_CHANNELS], "image_input"
    for k in range(NUM_LAYERS):
        conv = _conv_config(f"layer{k}_conv", num_filters[k], LAYER_STRIDES[k], k > 0)
        layers.append(_layer("SeparableConv2D" if k else "Conv2D", conv, shape, source))
        side = -(-shape[1] // LAYER_STRIDES[k])
        shape, source = [None, side, side, num_filters[k]], f"layer{k}_conv"
        layers.append(_layer("BatchNormalization", _bn_config(f"layer{k}_bn", eps), shape,
                             source))
        source = f"layer{k}_bn"
        if relu:
            layers.append(_layer("Activation", {"name": f"layer{k}_act", "trainable": True,
                                                "dtype": "float32", "activation": "relu"},
                                 shape, source))
            source = f"layer{k}_act"
    layers.append(_layer("Flatten", {"name": "embeddings", "trainable": True,
                                     "dtype": "float32", "data_format": "channels_last"},
                         shape, source))
    flat = [None, shape[1] * shape[2] * shape[3]]
    layers.append(_layer("Dense", {
        "name": "Beta", "trainable": True, "dtype": "float32", "units": 1,
        "activation": "linear", "use_bias": True,
        "kernel_initializer": _initializer("GlorotUniform"),
        "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
        "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
        flat, "embeddings"))
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "compact_model", "trainable": True, "layers": layers,
                       "input_layers": [["image_input", 0, 0]],
                       "output_layers": [["Beta", 0, 0]]},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


# -- model.weights.h5 --------------------------------------------------------------------------
def _weights_h5(model) -> bytes:
    """The variables of every layer in Keras' group layout, as HDF5 bytes."""
    import h5py

    groups: list[tuple[str, list[np.ndarray]]] = [("input_layer", [])]
    for k in range(NUM_LAYERS):
        w = model.layer_weights(k)
        suffix = "" if k == 0 else f"_{k}"
        if k == 0:
            groups.append(("conv2d", [w["kernel"], w["bias"]]))
        else:
            sep = "" if k == 1 else f"_{k - 1}"
            groups.append((f"separable_conv2d{sep}",
                           [w["depthwise_kernel"], w["pointwise_kernel"], w["bias"]]))
        groups.append((f"batch_normalization{suffix}",
                       [w["bn_gamma"], w["bn_beta"], w["bn_moving_mean"],
                        w["bn_moving_variance"]]))
        if model.relu:
            groups.append((f"activation{suffix}", []))
    kernel = np.asarray(model.readout_map(), dtype=np.float32).reshape(-1, 1)
    groups.append(("flatten", []))
    groups.append(("dense", [kernel, np.array([model.readout_bias()], dtype=np.float32)]))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for name, arrays in groups:
            variables = h5.create_group(f"layers/{name}/vars")
            for index, array in enumerate(arrays):
                variables.create_dataset(str(index), data=np.asarray(array, dtype=np.float32))
        h5.create_group("vars")
    return buffer.getvalue()
