"""``SharedCompactModel``: one network predicting the 219 model neurons at once (SYSTEM.md §5).

The five-layer core with F filters in layers 0-2 and 100 in layers 3-4 (both read from the
file), then a factorized readout: ``mixing`` (1x1 convolution K4 -> 219, "mixing_stage": one
channel mix per neuron) and ``spatial_pool`` (28x28 "valid" depthwise convolution,
"spatial_pool_stage": one spatial map per neuron), both with biases and no batch norm.
The "linear_from_ensemble_model" teacher's models have no ReLUs (``relu=False``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import FiveLayerModel
from .keras_io import READOUT_SIZE, ModelWeights


class SharedCompactModel(FiveLayerModel):
    """A shared compact model.

    Args:
        num_filters: filters of layers 0-4, e.g. ``[10, 10, 10, 100, 100]``.
        num_outputs: neurons predicted (219 for the released models).
        bn_eps: batch-norm epsilon.
        relu: ReLU after each batch norm (False for the linear teacher).
        model_id: registry id, e.g. ``"shared/from_ensemble_model/10"``.
        neuron_ids: ``"session/neuron"`` of each output column.

    Attributes:
        mixing: :class:`torch.nn.Conv2d` 1x1, ``K4 -> num_outputs``, weight
            ``(num_outputs, K4, 1, 1)``.
        spatial_pool: depthwise :class:`torch.nn.Conv2d` 28x28, weight
            ``(num_outputs, 1, 28, 28)``.
    """

    def __init__(self, num_filters: list[int], num_outputs: int = 219, bn_eps: float = 1e-3,
                 relu: bool = True, model_id: str = "",
                 neuron_ids: list[str] | None = None) -> None:
        super().__init__(num_filters, bn_eps, relu)
        self.mixing = nn.Conv2d(self.num_filters[4], num_outputs, 1)
        self.spatial_pool = nn.Conv2d(num_outputs, num_outputs, READOUT_SIZE, groups=num_outputs)
        self.model_id = model_id
        if neuron_ids is not None and len(neuron_ids) != num_outputs:
            raise ValueError(f"{len(neuron_ids)} neuron ids for {num_outputs} outputs")
        self.neuron_ids = list(neuron_ids) if neuron_ids is not None else [
            f"output{i}" for i in range(num_outputs)]
        self.eval()

    @classmethod
    def from_weights(cls, weights: ModelWeights, model_id: str = "",
                     neuron_ids: list[str] | None = None) -> SharedCompactModel:
        """Build a model from a file read by :func:`~v4compact.models.keras_io.read_model_file`."""
        if weights.kind != "shared":
            from ..errors import ModelFormatError

            raise ModelFormatError(
                f"{weights.source}: a {weights.kind} model, not a shared one; load it with "
                "load_compact_model"
            )
        model = cls(weights.num_filters, weights.num_outputs, weights.bn_eps, weights.relu,
                    model_id, neuron_ids)
        model.load_weights(weights)
        return model

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K4, 28, 28)`` -> ``(N, num_outputs)``: channel mix, then spatial pooling."""
        mixed = self.mixing(features)
        pooled = F.conv2d(mixed, self.spatial_pool.weight, self.spatial_pool.bias,
                          groups=self.spatial_pool.groups)
        return pooled.flatten(1)

    def readout_map(self) -> np.ndarray:
        """Spatial readout maps, float32 ``(28, 28, num_outputs)`` (one per neuron)."""
        w = self.spatial_pool.weight.detach().float().cpu().numpy()  # (n, 1, 28, 28)
        return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))

    def mixing_weights(self) -> np.ndarray:
        """Channel mix of each neuron, float32 ``(K4, num_outputs)``."""
        w = self.mixing.weight.detach().float().cpu().numpy()  # (n, K4, 1, 1)
        return np.ascontiguousarray(w[:, :, 0, 0].T)
