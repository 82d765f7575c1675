"""A compact network reduced to what the neuron page draws (kernels and the readout map)."""

from __future__ import annotations

import numpy as np


def describe_network(model, neuron_id: str) -> dict:
    """Kernels of every layer and the readout map of a compact model, as plain lists.

    Layer 0's filters are RGB ``5x5x3`` kernels. A separable layer's filter ``f`` is drawn
    as its effective ``5x5`` spatial kernel: the depthwise kernels of the incoming maps
    weighted by the filter's pointwise (1x1) weights, ``sum_c w[c, f] * depthwise[:, :, c]``
    (the raw pointwise matrix is included too).

    Args:
        model: a :class:`~v4compact.models.nets.compact.CompactModel`.
        neuron_id: ``"session/index"``, echoed back.

    Returns:
        A dict matching :class:`v4compact.web.schemas.Network`.
    """
    layers = []
    for i in range(5):
        weights = model.layer_weights(i)
        if i == 0:
            kernels = np.transpose(weights["kernel"], (3, 0, 1, 2))  # (K, 5, 5, 3)
            pointwise = None
            kind = "conv"
        else:
            depthwise = weights["depthwise_kernel"][:, :, :, 0]  # (5, 5, C)
            mixing = weights["pointwise_kernel"][0, 0]  # (C, K)
            kernels = np.einsum("hwc,ck->khw", depthwise, mixing)[..., None]  # (K, 5, 5, 1)
            pointwise = mixing.T.round(5).tolist()
            kind = "separable"
        layers.append(
            {
                "name": f"layer{i}",
                "kind": kind,
                "num_filters": int(kernels.shape[0]),
                "kernels": kernels.round(5).tolist(),
                "kernel_range": float(np.abs(kernels).max() or 1.0),
                "pointwise": pointwise,
            }
        )
    readout = model.readout_map()  # (28, 28, K4)
    return {
        "neuron_id": neuron_id,
        "num_filters": [int(n) for n in model.num_filters],
        "num_parameters": int(model.num_parameters),
        "layers": layers,
        "readout_map": np.abs(readout).sum(axis=2).round(6).tolist(),
        "readout_channel_weight": np.sqrt((readout**2).sum(axis=(0, 1))).round(6).tolist(),
    }
