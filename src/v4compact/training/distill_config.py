"""The settings of a distillation run (:class:`DistillConfig`) and its presets
(:data:`PRESETS`: the SYSTEM.md §9 recipe ``upstream``, ``patient`` function matching,
``small-corpus`` ...); the recipes are described in :mod:`v4compact.training.distill`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import InvalidInputError
from ..models.arch import STUDENT_NUM_FILTERS, check_num_filters
from .augment import Augmentation, FunctionMatching
from .kernels import parse_kernels

__all__ = ["LR_SCHEDULES", "PRESETS", "DistillConfig"]

@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation (or retraining) pass; :data:`PRESETS` names sets of them.

    Attributes:
        preset: the name of the preset these settings started from.
        num_filters: filters per layer of each student (100 each upstream).
        batch_size: global batch (all processes together).
        learning_rate, betas, adam_eps: Adam's settings (SYSTEM.md §9).
        smoothing_sigma: Gaussian smoothing after each shard (0: none).
        passes: passes over the corpus (1 upstream, where the corpus has 12M images).
        holdout_images: corpus images set aside for fidelity and pruning statistics;
            ``None``: :data:`~v4compact.training.corpus.HOLDOUT_RULE` (a tenth of the
            corpus, 200 at least where that is at most a fifth of it, 5,000 at most).
        augment: random flips and shifts (:class:`~v4compact.training.augment.Augmentation`);
            the teacher then runs on every augmented image (no cache).
        function_matching: the augmentation of function matching
            (:class:`~v4compact.training.augment.FunctionMatching`: random resized crops,
            flips, mixup / cutmix between training images, a fresh teacher response for
            every augmented image); replaces ``augment``.
        mix: how function matching mixes two images (``mixup``, ``cutmix``, ``both``,
            ``none``).
        color_jitter: function matching's brightness / contrast / saturation jitter (0: off).
        lr_schedule: ``"constant"`` (upstream) or ``"cosine"`` (linear warm-up over
            ``warmup_fraction`` of the steps, then a cosine decay to 0 at the last step).
        warmup_fraction: share of the optimizer steps spent warming up (cosine schedule).
        smooth_every_images: smooth after a shard once at least this many images were
            trained on since the last smoothing, and after the last shard (0: after every
            shard, as upstream with its 500,000-image shards).
        seed: seeds the students (student k: ``seed + k``), the shuffles and the hold-out.
        num_workers: image-decoding processes of the data loader.
        eval_every: measure fidelity after every this many shards (and after the last).
        mixed_precision: bfloat16 autocast on CUDA.
        kernels: how the stack computes (:mod:`~v4compact.training.kernels`): ``"auto"``
            (time every choice at the start of a CUDA run and keep the fastest; the
            default on the CPU) or ``POINTWISE/FORMAT``, e.g. ``"matmul/channels_last"``.
        exclude_heldout: leave out the held-out halves of test sessions' zips.
    """

    preset: str = "upstream"
    num_filters: tuple[int, ...] = STUDENT_NUM_FILTERS
    batch_size: int = 64
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-7
    smoothing_sigma: float = 0.5
    passes: int = 1
    holdout_images: int | None = 5000
    augment: bool = False
    function_matching: bool = False
    mix: str = "mixup"
    color_jitter: float = 0.0
    lr_schedule: str = "constant"
    warmup_fraction: float = 0.0
    smooth_every_images: int = 0
    seed: int = 0
    num_workers: int = 2
    eval_every: int = 1
    mixed_precision: bool = False
    exclude_heldout: bool = True
    kernels: str = "auto"

    def check(self) -> DistillConfig:
        """Validate; returns self. Raises InvalidInputError naming the bad setting."""
        check_num_filters(self.num_filters)
        parse_kernels(self.kernels)
        for name in ("batch_size", "passes", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got "
                                        f"{getattr(self, name)!r}")
        if self.learning_rate <= 0 or self.smoothing_sigma < 0 or self.num_workers < 0 \
                or (self.holdout_images is not None and self.holdout_images < 0) \
                or self.smooth_every_images < 0:
            raise InvalidInputError("learning_rate must be > 0 and smoothing_sigma, "
                                    "holdout_images, num_workers, smooth_every_images >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(f"unknown lr_schedule {self.lr_schedule!r}; choose one "
                                    f"of {', '.join(LR_SCHEDULES)}")
        if not 0 <= self.warmup_fraction < 1:
            raise InvalidInputError(f"warmup_fraction must be in [0, 1), got "
                                    f"{self.warmup_fraction}")
        if self.function_matching and self.augment:
            raise InvalidInputError("augment and function_matching are two augmentations; "
                                    "choose one")
        self.augmentation()  # checks mix and color_jitter
        return self

    def holdout_count(self, num_images: int) -> int:
        """Corpus images held out of a corpus of ``num_images`` (``holdout_images``, else
        :data:`~v4compact.training.corpus.HOLDOUT_RULE`)."""
        from .corpus import HOLDOUT_RULE

        if self.holdout_images is None:
            return HOLDOUT_RULE.count(num_images)
        return int(self.holdout_images)

    def augmentation(self) -> Augmentation | FunctionMatching | None:
        """The data loader's augmentation for these settings (``None``: none)."""
        if self.function_matching:
            return FunctionMatching(mix=self.mix, color_jitter=self.color_jitter,
                                    seed=self.seed)
        return Augmentation(seed=self.seed) if self.augment else None

    def lr_at(self, step: int, total_steps: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        warmup = int(round(self.warmup_fraction * total_steps))
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return self.learning_rate * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DistillConfig:
        """Settings from :meth:`to_dict` (lists back to tuples)."""
        values = dict(values)
        for name in ("num_filters", "betas"):
            if name in values:
                values[name] = tuple(values[name])
        unknown = set(values) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InvalidInputError(f"unknown distillation settings {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def preset_named(cls, name: str, **overrides) -> DistillConfig:
        """A preset of :data:`PRESETS` with some settings replaced."""
        if name not in PRESETS:
            raise InvalidInputError(f"unknown preset {name!r}; choose one of "
                                    f"{', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides).check()


#: Learning-rate schedules of :meth:`DistillConfig.lr_at`.
LR_SCHEDULES = ("constant", "cosine")

#: ``upstream``: SYSTEM.md §9 as published (one pass over a 12M-image corpus).
#: ``small-corpus``: the same recipe for corpora of thousands of images (the release's
#: session zips): several passes, the hold-out rule, smoothing after every shard.
#: ``patient``: function matching (Beyer et al. 2022) for corpora of any size: the teacher
#: labels every augmented (cropped, flipped, mixed-up) image afresh, many passes, batch 32,
#: Adam with a 10x larger peak rate, 5% warm-up then cosine decay, smoothing as often per
#: image as upstream (every 500,000 training images, and after the last shard).
PRESETS: dict[str, DistillConfig] = {
    "upstream": DistillConfig(),
    "small-corpus": DistillConfig(preset="small-corpus", passes=8, holdout_images=None),
    "patient": DistillConfig(preset="patient", passes=20, holdout_images=None, batch_size=32,
                             learning_rate=1e-3, function_matching=True, mix="mixup",
                             lr_schedule="cosine", warmup_fraction=0.05,
                             smooth_every_images=500_000),
}
