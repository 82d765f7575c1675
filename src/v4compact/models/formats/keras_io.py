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

The architecture's facts come from :mod:`v4compact.models.arch`; the readers only read files
(:mod:`.keras_files`: ``.keras``, ``.weights.h5``, ``.h5``; :mod:`.port_files`:
``.npy``, ``.pt``; :mod:`.convert`: the conversion below). The result is a
:class:`~v4compact.models.nets.weights.ModelWeights`: the architecture (kind, filters per
layer, ReLU or not, epsilon) and a state dict in the layout of
:class:`~v4compact.models.nets.compact.CompactModel` or
:class:`~v4compact.models.nets.shared.SharedCompactModel`:

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

import os
from pathlib import Path

from ...errors import DataNotFoundError, ModelFormatError
from ..nets.weights import ModelWeights
from .keras_files import read_keras, read_legacy_h5, read_weights_h5
from .port_files import read_npy, read_pt

__all__ = ["FORMATS", "FORMAT_ALIASES", "ModelWeights", "detect_format", "read_keras",
           "read_legacy_h5", "read_model_file", "read_npy", "read_pt", "read_weights_h5"]

#: Format names (as in :data:`v4compact.data.paths.COMPACT_FORMATS`).
FORMATS = ("keras", "weights-h5", "npy", "torch", "h5")
#: Other accepted spellings of the format names.
FORMAT_ALIASES = {"pt": "torch", "weights_h5": "weights-h5", "weights.h5": "weights-h5"}


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
