"""A model's weights in memory: its architecture and a state dict in the networks' layout.

The file readers (:mod:`v4compact.models.formats.keras_io`) return it, and
:meth:`CompactModel.from_weights <v4compact.models.nets.compact.CompactModel.from_weights>` /
its ``SharedCompactModel`` twin build a network from it, so the networks never import a
file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ModelWeights"]


@dataclass
class ModelWeights:
    """A model file read into memory: its architecture and a PyTorch-layout state dict.

    Attributes:
        kind: ``"compact"`` (one output, dense readout) or ``"shared"`` (factorized head).
        num_filters: filters of layers 0-4.
        num_outputs: 1 for a compact model, the neurons of a shared model.
        relu: whether each batch norm is followed by a ReLU.
        bn_eps: batch-norm epsilon.
        state_dict: name -> float32 numpy array, names as in the table of
            :mod:`v4compact.models.formats.keras_io`.
        source: the file read.
        format: one of :data:`v4compact.models.formats.keras_io.FORMATS`.
    """

    kind: str
    num_filters: list[int]
    num_outputs: int
    relu: bool
    bn_eps: float
    state_dict: dict[str, np.ndarray] = field(repr=False)
    source: Path | None = None
    format: str = ""
