"""Preferred-stimulus synthesis: composable objectives, parameterisations, transforms,
regularisers, presets (the upstream recipe and improved ones) and the batched render loop.

Typical use::

    from v4compact.synthesis import synthesize
    result = synthesize(model, neurons=["201025/2"], seeds=9, steps=100)
    result.images          # uint8 (9, 112, 112, 3)
    result.target_responses
"""

from __future__ import annotations

import importlib

# name -> submodule; imported on first access so that listing presets (the CLI's parser)
# does not import torch
_LAZY = {
    "Objective": "objectives",
    "RenderContext": "objectives",
    "channel": "objectives",
    "diversity": "objectives",
    "maximize": "objectives",
    "minimize": "objectives",
    "neuron": "objectives",
    "PRESETS": "presets",
    "Preset": "presets",
    "get_preset": "presets",
    "list_presets": "presets",
    "SynthesisResult": "render",
    "render": "render",
    "synthesize": "render",
}

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


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'v4compact.synthesis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
