"""Keras weight lists -> the networks' state dict, with a shape check of every array.

Every reader of :mod:`.keras_io` gathers a file's arrays by layer role (``conv0``,
``sep1``..``sep4``, ``bn0``..``bn4``, ``dense`` or ``mixing`` + ``spatial_pool``) in Keras'
layout; :func:`weights_from_keras` transposes them into the names and layout of the
table in :mod:`.keras_io` and checks each shape against the architecture
(:func:`v4compact.models.arch.state_dict_shapes`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ModelFormatError
from ..arch import NUM_LAYERS, state_dict_shapes
from ..nets.weights import ModelWeights

__all__ = ["NUM_VARS", "check_state_dict", "keras_to_state_dict", "weights_from_keras"]

#: Variables per layer role in Keras' weight lists.
NUM_VARS = {"conv": 2, "sep": 3, "bn": 4, "dense": 2, "mixing": 2, "spatial_pool": 2}


def weights_from_keras(keras_weights: dict[str, list[np.ndarray]], arch: dict, path: Path,
            fmt: str) -> ModelWeights:
    """Keras weight lists by role + the architecture read from the file -> checked
    :class:`~v4compact.models.nets.weights.ModelWeights` (``arch``: ``kind``, ``relu``,
    ``bn_eps``, optionally ``filters``).

    Raises:
        ModelFormatError: arrays of the wrong rank or shape, or filters that disagree with
            the file's config.
    """
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
    check_state_dict(sd, kind, num_filters, num_outputs, path)
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


def check_state_dict(sd: dict[str, np.ndarray], kind: str, num_filters: list[int],
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
