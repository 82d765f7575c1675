"""The whole recipe in one call: make compact models of neurons from a teacher and images.

:func:`make_compact` = :func:`~v4compact.training.teachers.load_teacher` +
:func:`~v4compact.training.corpus.open_corpus` +
:func:`~v4compact.training.distill.distill` (SYSTEM.md §9) +
:func:`~v4compact.training.prune.prune_run` (SYSTEM.md §10: step 1, rebuild, step 2, the
``.keras`` files and the report). ``v4compact make-compact`` is this function.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .distill import PRESETS, DistillConfig, distill
from .prune import THRESHOLD, prune_run

__all__ = ["make_compact"]


def make_compact(teacher, neurons: Sequence | None, images, out: str | os.PathLike,
                 config: DistillConfig | None = None, *, threshold: float = THRESHOLD,
                 convention: str = "strict", retrain_passes: int | None = None,
                 max_images_per_shard: int | None = None, resume: bool = False,
                 device=None, data_dir=None, minutes: float | None = None,
                 announce=None) -> dict:
    """Distill, prune and retrain one compact model per neuron; write them as ``.keras``.

    Args:
        teacher: a teacher spec (``"shared/from_ensemble_model/200"``,
            ``"backbone:resnet50"``, ``"ensemble"``, a ``.onnx`` path ...), a
            :class:`~v4compact.training.teachers.Teacher` or a model object.
        neurons: the neurons (``"201025/10"`` ...; ``None``: every output of a model teacher).
        images: paths of the corpus (zips, tars, folders; see
            :func:`~v4compact.training.corpus.open_corpus`).
        out: the run folder; the made models are ``out/models/*.keras`` (z-scored units),
            the per-neuron report ``out/report.json`` / ``report.csv``.
        config: distillation settings (default: the ``upstream`` preset).
        threshold, convention: pruning settings (SYSTEM.md §10).
        retrain_passes: passes of the retraining (default: ``config.passes``).
        max_images_per_shard: use at most this many images of each shard (seeded subset).
        resume: continue a killed run (distillation and retraining both resume).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        data_dir: data directory.
        minutes: time budget of distillation and retraining together: the passes are
            chosen from a timing of this machine (:func:`~v4compact.training.plan.plan_run`).
        announce: called with the plan's line before training starts (e.g. ``print``).

    Returns:
        The report of :func:`~v4compact.training.prune.prune_run`.
    """
    from .corpus import open_corpus
    from .distill import process_device
    from .plan import plan_run
    from .teachers import load_teacher

    config = (config or PRESETS["upstream"]).check()
    teacher = load_teacher(teacher, neurons, device=process_device(device), data_dir=data_dir)
    corpus = open_corpus(images, config.exclude_heldout, data_dir, max_images_per_shard,
                         config.seed)
    config, retrain_passes, _ = plan_run(config, corpus, teacher, out, minutes=minutes,
                                         retrain_passes=retrain_passes, resume=resume,
                                         device=device, announce=announce)
    distill(teacher, corpus, out, config, resume=resume, device=device, data_dir=data_dir)
    return prune_run(out, teacher, threshold=threshold, convention=convention,
                     retrain_passes=retrain_passes, resume=resume, device=device,
                     data_dir=data_dir)
