"""Silence one filter of a model (the neuron page's "switch it off").

The library's models have no ablation switch, so this module adds the smallest one: a
private copy of the model (the cached model other requests use is never modified) with a
forward hook that multiplies one block's output by a channel mask. The copy is an ordinary
model: its own ``predict`` gives the ablated predictions, and :func:`v4compact.evaluate`
scores it exactly as it scores the full model.
"""

from __future__ import annotations

import copy

import torch

from ..errors import InvalidInputError

#: Layers whose filters can be switched off (their post-ReLU output channels).
ABLATABLE_LAYERS = ("layer0", "layer1", "layer2", "layer3", "layer4")


def check_filter(model, layer: str, filter_index: int) -> int:
    """Validate a ``(layer, filter)`` pair of a five-layer model; returns the layer number."""
    if layer not in ABLATABLE_LAYERS:
        raise InvalidInputError(
            f"unknown layer {str(layer)[:30]!r}; choose one of {', '.join(ABLATABLE_LAYERS)}"
        )
    k = ABLATABLE_LAYERS.index(layer)
    count = int(model.num_filters[k])
    if not 0 <= int(filter_index) < count:
        raise InvalidInputError(
            f"{layer} has filters 0 to {count - 1}, not {filter_index}; pick one of those"
        )
    return k


def silenced_copy(model, layer: str, filter_index: int):
    """A copy of ``model`` whose filter ``filter_index`` of ``layer`` always outputs zero.

    Args:
        model: a compact (or shared) model; ``model.blocks()`` gives its five blocks.
        layer: ``"layer0"`` ... ``"layer4"``; the filter's post-ReLU map is zeroed.
        filter_index: the filter (output channel) of that layer.

    Returns:
        A deep copy of ``model`` (same ``model_id`` and ``neuron_ids``) with the filter
        silenced; ``model`` itself is unchanged.

    Raises:
        InvalidInputError: an unknown layer or a filter index out of range.
    """
    k = check_filter(model, layer, filter_index)
    silenced = copy.deepcopy(model)
    mask = torch.ones(int(model.num_filters[k]), dtype=torch.float32)
    mask[int(filter_index)] = 0.0

    def zero_channel(module, inputs, output):
        return output * mask.to(device=output.device, dtype=output.dtype).view(1, -1, 1, 1)

    silenced.blocks()[k].register_forward_hook(zero_channel)
    return silenced

