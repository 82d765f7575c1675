"""The release's weights-only arrays: ``.npy`` (an object array of the Keras weights in
``model.get_weights()`` order, unpickled with numpy types only) and ``.pt`` (the state dict
of the upstream PyTorch port, float64, its batch-norm epsilon folded into the variances).
Both carry no activations nor epsilon: they are read as ReLU networks with the Keras default
epsilon 1e-3, which every released compact model uses.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ...errors import ModelFormatError
from ..arch import DEFAULT_BN_EPS, NUM_LAYERS
from ..nets.weights import ModelWeights
from .convert import NUM_VARS, check_state_dict, weights_from_keras

__all__ = ["PT_FOLDED_EPS", "read_npy", "read_pt"]

#: The upstream PyTorch port's ``layer1-4_bn.running_var`` hold Keras' moving variance + this.
PT_FOLDED_EPS = 1e-3


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
        count = NUM_VARS[role.rstrip("01234")]
        keras_weights[role] = arrays[pos:pos + count]
        pos += count
    arch = {"kind": kind, "relu": True, "bn_eps": DEFAULT_BN_EPS}
    return weights_from_keras(keras_weights, arch, path, "npy")


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
    check_state_dict(sd, "compact", num_filters, 1, path)
    return ModelWeights("compact", num_filters, 1, True, DEFAULT_BN_EPS, sd, path, "torch")
