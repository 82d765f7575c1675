"""Metrics of the field, as pure NaN-aware numpy functions with per-neuron outputs.

Shape convention (every function): neurons first. Repeat-averaged responses and
predictions are ``(neurons, images)``; single-repeat responses are
``(neurons, images, repeats)`` with trailing NaN for images shown fewer times. One neuron
may be given without the neuron axis (``(images,)``, ``(images, repeats)``) and then gives
a float. Model outputs ``(images, neurons)`` must be transposed (``.T``) first.

- :func:`raw_r2` — squared Pearson correlation (not noise-corrected).
- :func:`r2_er` — unbiased noise-corrected R^2 (Pospisil & Bair 2021), the paper's metric.
- :func:`split_half_r2` — R^2 over a Spearman-Brown split-half ceiling (Brain-Score style).
- :func:`snr` — unbiased signal-to-noise ratio (SYSTEM.md §2).
- :func:`bootstrap_ci` — confidence intervals over images for any of them.
- :mod:`v4compact.metrics.simulate` — synthetic neurons with a known true R^2.
"""

from .bootstrap import bootstrap_ci
from .correlation import pearson_r, raw_r2
from .noise import r2_er, snr, split_half_r2, split_half_reliability

__all__ = [
    "bootstrap_ci",
    "pearson_r",
    "r2_er",
    "raw_r2",
    "snr",
    "split_half_r2",
    "split_half_reliability",
]
