"""In-silico experiments on the models: natural vs gaudy vs grayscale images, and tuning
curves for parametric stimuli (dots, bars, gratings, colour patches). Each experiment returns
an :class:`~v4compact.experiments.table.ExperimentResult` with a table and a figure.
"""

from __future__ import annotations

from .gaudy import gaudy_experiment
from .stimuli import bar, color_patch, dot, grating, make_stimuli
from .table import ExperimentResult, Table
from .tuning import tuning_curve

__all__ = [
    "ExperimentResult",
    "Table",
    "bar",
    "color_patch",
    "dot",
    "gaudy_experiment",
    "grating",
    "make_stimuli",
    "tuning_curve",
]
