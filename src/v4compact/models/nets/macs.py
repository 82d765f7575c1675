"""Exact multiply-accumulate counts of the compact architecture (SYSTEM.md §4).

The counts are per image and follow from the filter counts alone, so they can be computed
for one model, for a whole population, or for a hypothetical architecture without loading
any weights. Bias additions, batch norm and ReLU are not counted (they are not MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..arch import IN_CHANNELS, KERNEL_SIZE, LAYER_SIZES, NUM_LAYERS, check_num_filters

#: Names of the counted stages, in the order they run.
STAGES: tuple[str, ...] = (
    "layer0",
    *(f"layer{k}.{part}" for k in range(1, NUM_LAYERS) for part in ("depthwise", "pointwise")),
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
    from ...errors import InvalidInputError

    try:
        counts = check_num_filters(num_filters)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"num_filters must be five positive integers, got {list(num_filters)}"
        ) from None
    taps = KERNEL_SIZE * KERNEL_SIZE
    out = {"layer0": LAYER_SIZES[0] ** 2 * taps * IN_CHANNELS * counts[0]}
    for layer in range(1, NUM_LAYERS):
        pixels = LAYER_SIZES[layer] ** 2
        out[f"layer{layer}.depthwise"] = pixels * taps * counts[layer - 1]
        out[f"layer{layer}.pointwise"] = pixels * counts[layer - 1] * counts[layer]
    out["readout"] = LAYER_SIZES[4] ** 2 * counts[4]
    return out


def total_macs(num_filters: Sequence[int]) -> int:
    """Total multiply-accumulates per image of one compact model (sum of :func:`compact_macs`)."""
    return sum(compact_macs(num_filters).values())
