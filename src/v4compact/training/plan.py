"""What a distillation will do before it starts: images, steps, an estimated time, warnings.

:func:`plan_distillation` counts the training and held-out images (the hold-out rule of
:meth:`~v4compact.training.distill.DistillConfig.holdout_count`), the optimizer steps and
the student-images, and times two training steps of the run's stack and one teacher call
on random images of the run's batch size on the run's device, so that the time estimate
reflects this machine. ``v4compact distill`` / ``make-compact`` print it before they start;
``--minutes`` picks the number of passes that fits a time budget
(:meth:`DistillPlan.passes_for`).

A student trained for a few hundred optimizer steps barely moves from its initial, almost
constant output (measured on 201025/10 and /40 with the ``small-corpus`` preset on one
session zip: 25 steps, held-out raw R^2 0.113 and 0.010 against the teacher's 0.517 and
0.564); the plan warns below :data:`MIN_STEPS`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..images import IMAGE_SIZE

__all__ = ["MIN_STEPS", "DistillPlan", "plan_distillation", "plan_run"]

#: Fewer optimizer steps than this get a warning (see the module docstring).
MIN_STEPS = 1000


@dataclass
class DistillPlan:
    """A distillation's size and estimated time.

    Attributes:
        students: students trained together (one per neuron).
        corpus_images: images in the corpus (after excluding held-out session halves).
        holdout_images: of them, held out for fidelity and pruning.
        train_images: of them, trained on.
        passes: passes over the training images.
        batch_size: global batch.
        steps_per_pass: optimizer steps of one pass (each shard is cut into its own batches).
        steps: optimizer steps (each student takes every step).
        student_images: images trained on times students.
        teacher_images: images the teacher labels (every augmented image; else each
            training image once, then from the cache).
        student_seconds_per_image: measured student step time per image (all students).
        teacher_seconds_per_image: measured teacher time per image.
        estimated_seconds: training time estimate (without fidelity evaluations).
        warnings: what looks wrong (small training set, few steps).
    """

    students: int
    corpus_images: int
    holdout_images: int
    train_images: int
    passes: int
    batch_size: int
    steps_per_pass: int
    augmented: bool
    steps: int = 0
    student_images: int = 0
    teacher_images: int = 0
    student_seconds_per_image: float | None = None
    teacher_seconds_per_image: float | None = None
    estimated_seconds: float | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._count()

    def _count(self) -> None:
        """Set the counts that follow from the passes, the estimate and the warnings."""
        self.steps = self.steps_per_pass * self.passes
        self.student_images = self.train_images * self.passes * self.students
        self.teacher_images = self.train_images * (self.passes if self.augmented else 1)
        self.estimated_seconds = self.seconds_for(self.passes)
        self.warnings = []
        if self.steps < MIN_STEPS:
            advice = ("give more --passes or --minutes" if self.augmented else
                      "use --preset patient (function matching: a fresh teacher label for "
                      "every augmented image) with more --passes or --minutes")
            self.warnings.append(
                f"{self.train_images:,} training images, {self.steps:,} optimizer steps: "
                f"students trained for fewer than {MIN_STEPS:,} steps stay close to constant "
                f"(25 steps gave held-out raw R^2 0.01-0.11 where the teacher has "
                f"0.52-0.56); {advice}")

    def with_passes(self, passes: int) -> DistillPlan:
        """The same plan (timings included) with ``passes`` passes."""
        return replace(self, passes=int(passes))

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return asdict(self)

    def seconds_for(self, passes: int) -> float | None:
        """Estimated training seconds of ``passes`` passes (``None`` without timings)."""
        if self.student_seconds_per_image is None:
            return None
        teacher = self.teacher_seconds_per_image or 0.0
        labelled = self.train_images * (passes if self.augmented else 1)
        return (self.train_images * passes * self.student_seconds_per_image
                + labelled * teacher)

    def passes_for(self, seconds: float) -> int:
        """The most passes whose estimated time fits ``seconds`` (at least 1)."""
        if self.student_seconds_per_image is None:
            return self.passes
        passes = 1
        while self.seconds_for(passes + 1) <= seconds:
            passes += 1
        return passes

    def warn(self) -> None:
        """Issue :attr:`warnings` as ``UserWarning``."""
        for text in self.warnings:
            warnings.warn(text, UserWarning, stacklevel=3)

    def describe(self) -> str:
        """One line for the terminal."""
        text = (f"plan: {self.students} student(s), {self.train_images:,} training images "
                f"(+{self.holdout_images:,} held out of {self.corpus_images:,}), "
                f"{self.passes} pass(es) x batch {self.batch_size} = {self.steps:,} steps, "
                f"{self.student_images:,} student-images, teacher on "
                f"{self.teacher_images:,} images")
        if self.estimated_seconds is not None:
            text += f"; estimated {_duration(self.estimated_seconds)} of training here"
        return text


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_distillation(config, corpus, students: int, *, teacher=None,
                      device=None, probe: bool = True) -> DistillPlan:
    """The plan of a distillation with ``config`` on ``corpus``.

    Args:
        config: the :class:`~v4compact.training.distill.DistillConfig`.
        corpus: the :class:`~v4compact.training.corpus.ImageCorpus` (its hold-out is drawn
            as the distillation draws it, so the steps are exact), or a number of images
            (taken as one shard).
        students: students (neurons).
        teacher: the :class:`~v4compact.training.teachers.Teacher`, timed on one batch
            (``None``: not timed).
        device: where the students train (timing).
        probe: time the students and the teacher (a few seconds); ``False``: counts only.

    Returns:
        The :class:`DistillPlan` (:meth:`DistillPlan.warn` issues its warnings).
    """
    from .corpus import steps_per_pass

    corpus_images = corpus if isinstance(corpus, int) else len(corpus)
    holdout = config.holdout_count(corpus_images)
    train = corpus_images - holdout
    if isinstance(corpus, int):
        per_pass = math.ceil(train / config.batch_size)
    else:
        per_pass = steps_per_pass(corpus.split_holdout(holdout, config.seed)[0],
                                  config.batch_size)
    timings = _probe(config, students, teacher, device) if probe and train else (None, None)
    return DistillPlan(students=students, corpus_images=corpus_images, holdout_images=holdout,
                       train_images=train, passes=config.passes,
                       batch_size=config.batch_size, steps_per_pass=per_pass,
                       augmented=bool(config.augment or config.function_matching),
                       student_seconds_per_image=timings[0],
                       teacher_seconds_per_image=timings[1])


#: Under a time budget, the distillation's share of it (the retraining gets the rest).
DISTILL_SHARE = 0.8
PLAN_FILE = "plan.json"


def plan_run(config, corpus, teacher, out, *, minutes: float | None = None,
             retrain_passes: int | None = None, resume: bool = False, device=None,
             announce=None, share: float = DISTILL_SHARE):
    """Plan a run folder's distillation (and retraining), optionally within a time budget.

    With ``minutes``, the distillation gets the most passes whose estimated time fits
    ``share`` of the budget (:data:`DISTILL_SHARE`), and the retraining (when
    ``retrain_passes`` is not given) a quarter of them, at least 1 (pruned students are
    smaller, so their passes cost less). The plan is written to ``out/plan.json``; on
    ``resume`` the saved passes are used again, so a resumed run trains exactly as planned.

    Args:
        config: the :class:`~v4compact.training.distill.DistillConfig`.
        corpus: the :class:`~v4compact.training.corpus.ImageCorpus`.
        teacher: the :class:`~v4compact.training.teachers.Teacher` (timed).
        out: the run folder.
        minutes: time budget of distillation + retraining (``None``: ``config.passes``).
        share: the distillation's share of the budget (1 for a distillation alone).
        retrain_passes: passes of the retraining (``None``: the budget's, else
            ``config.passes``).
        resume: read the passes of an earlier plan of ``out``.
        device: where the students train.
        announce: called with the plan's line (e.g. ``print``); ``None``: silent.

    Returns:
        ``(config, retrain_passes, plan)``.
    """
    import json
    from pathlib import Path

    from ..errors import InvalidInputError
    from ..files import atomic_write

    path = Path(out) / PLAN_FILE
    if minutes is not None and not minutes > 0:
        raise InvalidInputError(f"--minutes must be a positive number, got {minutes}")
    from .runtime import launched_by_torchrun

    several = launched_by_torchrun()
    if several and minutes is not None:
        raise InvalidInputError("--minutes times this process alone; under torchrun give "
                                "--passes (and --retrain-passes) instead")
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        config = replace(config, passes=int(saved["passes"])).check()
        retrain_passes = saved.get("retrain_passes", retrain_passes)
        plan = plan_distillation(config, corpus, len(teacher.neuron_ids), probe=False)
    else:
        plan = plan_distillation(config, corpus, len(teacher.neuron_ids),
                                 teacher=teacher, device=device, probe=not several)
        if minutes is not None:
            passes = plan.passes_for(60 * minutes * share)
            if retrain_passes is None:
                retrain_passes = max(1, passes // 4)
            config = replace(config, passes=passes).check()
            plan = plan.with_passes(passes)
        if not several or int(os.environ.get("RANK", "0")) == 0:
            Path(out).mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "w") as handle:
                json.dump({**plan.as_dict(), "minutes": minutes,
                           "retrain_passes": retrain_passes}, handle, indent=1)
    if announce is not None:
        announce(plan.describe())
    plan.warn()
    return config, retrain_passes, plan


def _probe(config, students: int, teacher, device) -> tuple[float, float | None]:
    """Seconds per image of a training step of ``students`` stacked students and of the
    teacher, on random images of the run's batch size (global random state untouched)."""
    from ..models.nets.stack import CompactStack
    from .distill import process_device
    from .kernels import CPU_KERNELS, apply_kernels, parse_kernels
    from .runtime import Runtime

    device = process_device(device)
    batch = max(1, min(config.batch_size, 64))
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, IMAGE_SIZE, IMAGE_SIZE, 3),
                                           dtype=np.uint8))
    with torch.random.fork_rng(devices=[]):
        stack = CompactStack.students(students, config.num_filters).to(device).train()
    chosen = parse_kernels(config.kernels) or (dict(CPU_KERNELS) if device.type == "cpu"
                                               else None)
    if chosen is not None:
        apply_kernels(stack, chosen)
    from .distill import _step

    parameters = list(stack.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    targets = np.zeros((batch, students), dtype=np.float32)
    runtime = Runtime(device=device)
    timings = []
    for _ in range(3):  # the first step warms up
        start = time.perf_counter()
        _step(stack, optimizer, parameters, images, targets, batch, device,
              config.mixed_precision, runtime)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - start)
    student = min(timings[1:]) / batch
    teacher_time = None
    if teacher is not None:
        teacher(images[:2].numpy())  # warm up (first calls load and tune)
        start = time.perf_counter()
        teacher(images.numpy())
        teacher_time = (time.perf_counter() - start) / batch
    return student, teacher_time
