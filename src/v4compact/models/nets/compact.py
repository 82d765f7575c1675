"""``CompactModel``: the compact model of one V4 neuron (SYSTEM.md §4).

Core + readout: the five-layer :class:`~v4compact.models.nets.core.CompactCore` followed by the
"Beta" :class:`~v4compact.models.nets.readouts.DenseReadout` (the ``(28, 28, K4)`` map flattened
in channels-last order, dense to one output). Outputs are in z-scored units (SYSTEM.md §9).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..arch import DEFAULT_BN_EPS, READOUT_SIZE
from .core import CompactCore, EncoderModel
from .readouts import DenseReadout
from .weights import ModelWeights


class CompactModel(EncoderModel):
    """One neuron's compact model.

    Args:
        num_filters: filters of layers 0-4, e.g. ``[50, 39, 3, 6, 3]``.
        bn_eps: batch-norm epsilon (from the file's config; Keras default 1e-3).
        relu: ReLU after each batch norm (True for every released compact model).
        model_id: zoo id, e.g. ``"compact/201025/10"``.
        neuron_id: ``"session/neuron"`` of the output, e.g. ``"201025/10"``.

    Attributes:
        core: :class:`~v4compact.models.nets.core.CompactCore`.
        readout: :class:`~v4compact.models.nets.readouts.DenseReadout` ``28*28*K4 -> 1``;
            ``readout.weight`` is ``(1, 28*28*K4)`` in channels-last flatten order.
    """

    def __init__(self, num_filters: Sequence[int], bn_eps: float = DEFAULT_BN_EPS,
                 relu: bool = True, model_id: str = "", neuron_id: str = "") -> None:
        core = CompactCore(num_filters, bn_eps, relu)
        super().__init__(core, DenseReadout(core.num_filters[-1], 1, READOUT_SIZE))
        self.model_id = model_id
        self.neuron_ids = [neuron_id or model_id or "neuron"]
        self.eval()

    @classmethod
    def from_weights(cls, weights: ModelWeights, model_id: str = "",
                     neuron_id: str = "") -> CompactModel:
        """Build a model from a file read by
        :func:`~v4compact.models.formats.keras_io.read_model_file`."""
        if weights.kind != "compact":
            from ...errors import ModelFormatError

            raise ModelFormatError(
                f"{weights.source}: a {weights.kind} model, not a compact one; load it with "
                "load_shared_model"
            )
        model = cls(weights.num_filters, weights.bn_eps, weights.relu, model_id, neuron_id)
        model.load_arrays(weights.state_dict)
        return model

    @classmethod
    def student(cls, num_filters: Sequence[int] | None = None, seed: int | None = None,
                model_id: str = "", neuron_id: str = "") -> CompactModel:
        """A freshly initialised (Keras defaults) model in training mode, e.g. a student to
        distill: 100 filters per layer unless ``num_filters`` is given (SYSTEM.md §9)."""
        from ..arch import STUDENT_NUM_FILTERS

        model = cls(num_filters or STUDENT_NUM_FILTERS, model_id=model_id, neuron_id=neuron_id)
        return model.reset_parameters(seed).train()

    def readout_map(self) -> np.ndarray:
        """The readout weights as a float32 ``(28, 28, K4)`` spatial map per layer-4 filter."""
        return self.readout.spatial_map()

    def readout_bias(self) -> float:
        """The readout's bias (z-scored units)."""
        return float(self.readout.bias.detach().cpu()[0])
