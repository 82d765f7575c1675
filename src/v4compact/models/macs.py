"""Exact multiply-accumulate counts of the compact architecture (SYSTEM.md §4).

The counts are per image and follow from the filter counts alone, so they can be computed
for one model, for a whole population, or for a hypothetical architecture without loading
any weights. Bias additions, batch norm and ReLU are not counted (they are not MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Spatial size (rows = columns) of the output of each of the five layers.
LAYER_SIZES: tuple[int, ...] = (112, 56, 28, 28, 28)
#: Input channels (RGB) and kernel side of every convolution.
IN_CHANNELS = 3
KERNEL = 5

#: Names of the counted stages, in the order they run.
STAGES: tuple[str, ...] = (
    "layer0",
    "layer1.depthwise",
    "layer1.pointwise",
    "layer2.depthwise",
    "layer2.pointwise",
    "layer3.depthwise",
    "layer3.pointwise",
    "layer4.depthwise",
    "layer4.pointwise",
    "readout",
)


def compact_macs(num_filters: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates per image of one compact model, stage by stage.

    Args:
        num_filters: the five filter counts ``[K0, K1, K2, K3, K4]`` (e.g. ``[50, 39, 3, 6, 3]``).

    Returns:
        ``{stage: MACs}`` for every name in :data:`STAGES` (Python ints, per image).

    Raises:
        InvalidInputError: if ``num_filters`` is not five positive integers.
    """
    from ..errors import InvalidInputError

    counts = [int(k) for k in num_filters]
    if len(counts) != 5 or min(counts) < 1:
        raise InvalidInputError(
            f"num_filters must be five positive integers, got {list(num_filters)}"
        )
    taps = KERNEL * KERNEL
    out = {"layer0": LAYER_SIZES[0] ** 2 * taps * IN_CHANNELS * counts[0]}
    for layer in range(1, 5):
        pixels = LAYER_SIZES[layer] ** 2
        out[f"layer{layer}.depthwise"] = pixels * taps * counts[layer - 1]
        out[f"layer{layer}.pointwise"] = pixels * counts[layer - 1] * counts[layer]
    out["readout"] = LAYER_SIZES[4] ** 2 * counts[4]
    return out


def total_macs(num_filters: Sequence[int]) -> int:
    """Total multiply-accumulates per image of one compact model (sum of :func:`compact_macs`)."""
    return sum(compact_macs(num_filters).values())
