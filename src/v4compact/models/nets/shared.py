"""``SharedCompactModel``: one network predicting the 219 model neurons at once (SYSTEM.md §5).

Core + readout: the five-layer :class:`~v4compact.models.nets.core.CompactCore` (F filters in
layers 0-2, 100 in layers 3-4, both read from the file) and a
:class:`~v4compact.models.nets.readouts.FactorizedReadout` - a 1x1 channel mix per neuron
("mixing_stage") then a 28x28 "valid" depthwise spatial map per neuron
("spatial_pool_stage"), both with biases and no batch norm. The
"linear_from_ensemble_model" teacher's models have no ReLUs (``relu=False``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..arch import DEFAULT_BN_EPS, READOUT_SIZE
from .core import CompactCore, EncoderModel
from .readouts import FactorizedReadout
from .weights import ModelWeights


class SharedCompactModel(EncoderModel):
    """A shared compact model.

    Args:
        num_filters: filters of layers 0-4, e.g. ``[10, 10, 10, 100, 100]``.
        num_outputs: neurons predicted (219 for the released models).
        bn_eps: batch-norm epsilon.
        relu: ReLU after each batch norm (False for the linear teacher).
        model_id: zoo id, e.g. ``"shared/from_ensemble_model/10"``.
        neuron_ids: ``"session/neuron"`` of each output column.

    Attributes:
        core: :class:`~v4compact.models.nets.core.CompactCore`.
        readout: :class:`~v4compact.models.nets.readouts.FactorizedReadout`: ``readout.mixing``
            (weight ``(num_outputs, K4, 1, 1)``) and ``readout.spatial`` (weight
            ``(num_outputs, 1, 28, 28)``).
    """

    def __init__(self, num_filters: Sequence[int], num_outputs: int = 219,
                 bn_eps: float = DEFAULT_BN_EPS, relu: bool = True, model_id: str = "",
                 neuron_ids: list[str] | None = None) -> None:
        core = CompactCore(num_filters, bn_eps, relu)
        super().__init__(core, FactorizedReadout(core.num_filters[-1], num_outputs,
                                                 READOUT_SIZE))
        self.model_id = model_id
        if neuron_ids is not None and len(neuron_ids) != num_outputs:
            raise ValueError(f"{len(neuron_ids)} neuron ids for {num_outputs} outputs")
        self.neuron_ids = list(neuron_ids) if neuron_ids is not None else [
            f"output{i}" for i in range(num_outputs)]
        self.eval()

    @classmethod
    def from_weights(cls, weights: ModelWeights, model_id: str = "",
                     neuron_ids: list[str] | None = None) -> SharedCompactModel:
        """Build a model from a file read by
        :func:`~v4compact.models.formats.keras_io.read_model_file`."""
        if weights.kind != "shared":
            from ...errors import ModelFormatError

            raise ModelFormatError(
                f"{weights.source}: a {weights.kind} model, not a shared one; load it with "
                "load_compact_model"
            )
        model = cls(weights.num_filters, weights.num_outputs, weights.bn_eps, weights.relu,
                    model_id, neuron_ids)
        model.load_arrays(weights.state_dict)
        return model

    def readout_map(self) -> np.ndarray:
        """Spatial readout maps, float32 ``(28, 28, num_outputs)`` (one per neuron)."""
        return self.readout.spatial_map()

    def mixing_weights(self) -> np.ndarray:
        """Channel mix of each neuron, float32 ``(K4, num_outputs)``."""
        return self.readout.feature_weights()
