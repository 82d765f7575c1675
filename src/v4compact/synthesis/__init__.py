"""Preferred-stimulus synthesis: composable objectives, parameterisations, transforms,
regularisers, presets (the upstream recipe and improved ones) and the batched render loop.

Typical use::

    from v4compact.synthesis import synthesize
    result = synthesize(model, neurons=["201025/2"], seeds=9, steps=100)
    result.images          # uint8 (9, 112, 112, 3)
    result.target_responses
"""

from __future__ import annotations

from .objectives import Objective, RenderContext, channel, diversity, maximize, minimize, neuron
from .presets import PRESETS, Preset, get_preset, list_presets
from .render import SynthesisResult, render, synthesize

__all__ = [
    "PRESETS",
    "Objective",
    "Preset",
    "RenderContext",
    "SynthesisResult",
    "channel",
    "diversity",
    "get_preset",
    "list_presets",
    "maximize",
    "minimize",
    "neuron",
    "render",
    "synthesize",
]
