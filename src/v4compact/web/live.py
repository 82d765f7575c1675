"""Live synthesis for the explorer: the library's ``render`` with progress and cancellation.

The web layer adds nothing to the algorithm: it wraps the objective in a pass-through
observer that (1) reports the image being optimised every few steps and (2) stops the run
when the job's cancel token fires. The score, the gradients, the preset and the provenance
are exactly those of :func:`v4compact.synthesis.render`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..images import to_uint8, uncenter
from ..synthesis import Objective, channel, minimize, neuron, render
from .jobs import CancelToken

#: Objectives the Synthesize page offers.
OBJECTIVES = ("maximize", "minimize", "filter")
#: Most steps a live request may ask for.
MAX_STEPS = 1000
#: Most neurons in one live request.
MAX_NEURONS = 4


@dataclass(frozen=True)
class LiveRequest:
    """A validated synthesis request from the Synthesize page.

    Attributes:
        neuron_ids: 1 to :data:`MAX_NEURONS` neuron ids ``"session/index"``.
        objective: one of :data:`OBJECTIVES`.
        preset: a synthesis preset name.
        seed: random seed of the start and of the transforms.
        steps: optimisation steps.
        layer: layer name for the ``"filter"`` objective.
        filter_index: filter (channel) index for the ``"filter"`` objective.
    """

    neuron_ids: tuple[str, ...]
    objective: str
    preset: str
    seed: int
    steps: int
    layer: str = "layer4"
    filter_index: int = 0


def monitored(
    objective: Objective,
    token: CancelToken,
    emit: Callable[[int, np.ndarray, np.ndarray], None],
    steps: int,
    every: int,
) -> Objective:
    """Wrap ``objective`` so each optimisation step checks ``token`` and reports progress.

    Args:
        objective: the objective actually optimised (returned values are passed through).
        token: stops the run (raises inside ``render``) once cancelled.
        emit: ``emit(step, images uint8 (N, 112, 112, 3), scores float32 (N,))``, called
            every ``every`` steps and after the last one.
        steps: the run's number of steps.
        every: reporting period in steps.

    Returns:
        An objective with the same description and targets (so provenance is unchanged).
    """
    counter = {"step": 0}

    def fn(context) -> torch.Tensor:
        token.check()
        score = objective(context)
        if torch.is_grad_enabled():  # one call per optimisation step (scoring runs no_grad)
            counter["step"] += 1
            step = counter["step"]
            if step % every == 0 or step == steps:
                pixels = context.images.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
                emit(step, to_uint8(uncenter(pixels)), score.detach().float().cpu().numpy())
        return score

    return Objective(fn, objective.description, objective.targets)


def build_objective(request: LiveRequest, model) -> Objective:
    """The library objective for a request (one image per neuron)."""
    if request.objective == "filter":
        return channel(request.layer, request.filter_index)
    target = neuron(list(request.neuron_ids))
    return minimize(target) if request.objective == "minimize" else target


def run_live(
    model,
    request: LiveRequest,
    token: CancelToken,
    emit: Callable[[int, np.ndarray, np.ndarray], None],
    device: str = "cpu",
):
    """Run one live synthesis (blocking; call it from a worker thread).

    Args:
        model: the compact model (one neuron) or a population model of the request's neurons.
        request: the validated request.
        token: cancel token checked every step.
        emit: progress callback (see :func:`monitored`).
        device: torch device.

    Returns:
        The library's :class:`~v4compact.synthesis.SynthesisResult`.

    Raises:
        JobCancelledError: the token fired (client gone or time limit).
    """
    objective = build_objective(request, model)
    every = max(1, request.steps // 25)
    return render(
        model,
        monitored(objective, token, emit, request.steps, every),
        num_images=len(request.neuron_ids),
        preset=request.preset,
        steps=request.steps,
        seed=request.seed,
        device=device,
        progress=False,
    )
