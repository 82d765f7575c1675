"""A model's weights in memory: its architecture and a state dict in the networks' layout.

The file readers (:mod:`v4compact.models.formats.keras_io`) return it, and
:meth:`CompactModel.from_weights <v4compact.models.nets.compact.CompactModel.from_weights>` /
its ``SharedCompactModel`` twin build a network from it, so the networks never import a
file format. :func:`load_weights_only` reads a file the package saved with ``torch.save``
(training checkpoints, a trained run's members) without running any code in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import CorruptDataError

__all__ = ["ModelWeights", "load_weights_only"]


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


def load_weights_only(path: str | os.PathLike, map_location="cpu", *, kind: str, fix: str):
    """A file written by ``torch.save``, read with ``weights_only=True`` (no code runs).

    Args:
        path: the file.
        map_location: where tensors go (a torch device or its name).
        kind: what the file is, for the message (``"checkpoint"``, ``"member file"``).
        fix: what to do when it cannot be read, for the message.

    Raises:
        CorruptDataError: ``"<kind> <path> is unreadable (<error type>); <fix>"``.
    """
    import torch  # here, so that the file readers returning ModelWeights stay torch-free

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError / UnpicklingError / EOFError
        raise CorruptDataError(
            f"{kind} {path} is unreadable ({type(err).__name__}); {fix}") from None
