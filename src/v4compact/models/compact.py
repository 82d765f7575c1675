"""``CompactModel``: the compact model of one V4 neuron (SYSTEM.md §4).

The five-layer core (:mod:`~v4compact.models.core`) followed by the "Beta" readout: the
``(28, 28, K4)`` map flattened in channels-last ``(H, W, C)`` order — as Keras' ``Flatten``
does — and a dense layer to one output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import FiveLayerModel
from .keras_io import READOUT_SIZE, ModelWeights


class CompactModel(FiveLayerModel):
    """One neuron's compact model.

    Args:
        num_filters: filters of layers 0-4, e.g. ``[50, 39, 3, 6, 3]``.
        bn_eps: batch-norm epsilon (from the file's config; Keras default 1e-3).
        relu: ReLU after each batch norm (True for every released compact model).
        model_id: registry id, e.g. ``"compact/201025/10"``.
        neuron_id: ``"session/neuron"`` of the output, e.g. ``"201025/10"``.

    Attributes:
        readout: :class:`torch.nn.Linear` ``28*28*K4 -> 1``; ``readout.weight`` is
            ``(1, 28*28*K4)`` in channels-last flatten order.
    """

    def __init__(self, num_filters: list[int], bn_eps: float = 1e-3, relu: bool = True,
                 model_id: str = "", neuron_id: str = "") -> None:
        super().__init__(num_filters, bn_eps, relu)
        self.readout = nn.Linear(READOUT_SIZE * READOUT_SIZE * self.num_filters[4], 1)
        self.model_id = model_id
        self.neuron_ids = [neuron_id or model_id or "neuron"]
        self.eval()

    @classmethod
    def from_weights(cls, weights: ModelWeights, model_id: str = "",
                     neuron_id: str = "") -> CompactModel:
        """Build a model from a file read by :func:`~v4compact.models.keras_io.read_model_file`."""
        if weights.kind != "compact":
            from ..errors import ModelFormatError

            raise ModelFormatError(
                f"{weights.source}: a {weights.kind} model, not a compact one; load it with "
                "load_shared_model"
            )
        model = cls(weights.num_filters, weights.bn_eps, weights.relu, model_id, neuron_id)
        model.load_weights(weights)
        return model

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K4, 28, 28)`` -> ``(N, 1)``: channels-last flatten, then the dense readout."""
        flat = features.permute(0, 2, 3, 1).reshape(features.shape[0], -1)
        return F.linear(flat, self.readout.weight, self.readout.bias)

    def readout_map(self) -> np.ndarray:
        """The readout weights as a float32 ``(28, 28, K4)`` spatial map per layer-4 filter."""
        w = self.readout.weight.detach().float().cpu().numpy()
        return w.reshape(READOUT_SIZE, READOUT_SIZE, self.num_filters[4])

    def readout_bias(self) -> float:
        """The readout's bias (response units)."""
        return float(self.readout.bias.detach().cpu()[0])
