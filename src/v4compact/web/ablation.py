"""Silence one filter of a model and predict again (the neuron page's "switch it off").

The library's models have no ablation switch, so this module adds the smallest one: a
forward hook that multiplies one block's output by a channel mask, on a private copy of the
model (the cached model other requests use is never modified), removed after the call.
Everything else is the model's own ``predict``.
"""

from __future__ import annotations

import copy

import numpy as np
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
    k = int(layer[-1])
    count = int(model.num_filters[k])
    if not 0 <= int(filter_index) < count:
        raise InvalidInputError(
            f"{layer} has filters 0 to {count - 1}, not {filter_index}; pick one of those"
        )
    return k


def predict_ablated(
    model,
    images: np.ndarray,
    layer: str,
    filter_index: int,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predict with one filter's output set to zero.

    Args:
        model: a compact (or shared) model with blocks ``layer0`` ... ``layer4``.
        images: ``uint8`` ``(N, 112, 112, 3)`` images (anything ``model.predict`` takes).
        layer: ``"layer0"`` ... ``"layer4"``; the filter's post-ReLU map is zeroed.
        filter_index: the filter (output channel) of that layer.
        batch_size: images per forward pass.
        device: torch device (default: the model's).

    Returns:
        float32 ``(N,)`` for a one-output model, else ``(N, num_outputs)``, like
        ``model.predict``.

    Raises:
        InvalidInputError: an unknown layer or a filter index out of range.
    """
    k = check_filter(model, layer, filter_index)
    silenced = copy.deepcopy(model)
    block = silenced.get_submodule(f"layer{k}")
    mask = torch.ones(int(model.num_filters[k]), dtype=torch.float32)
    mask[int(filter_index)] = 0.0

    def zero_channel(module, inputs, output):
        return output * mask.to(device=output.device, dtype=output.dtype).view(1, -1, 1, 1)

    handle = block.register_forward_hook(zero_channel)
    try:
        return silenced.predict(images, batch_size=batch_size, device=device)
    finally:
        handle.remove()
