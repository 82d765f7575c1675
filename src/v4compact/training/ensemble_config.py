"""The settings of an ensemble training run (:class:`EnsembleTrainingConfig`), its two
presets (:data:`PRESETS`: ``upstream`` and ``modern``) and the study's fixed choices (the
validation session, the WE animal's synthesized images, the validation folds). The
recipes are described in :mod:`v4compact.training.ensemble`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..features.cache import FEATURE_CACHE_DTYPE
from ..models.teachers.ensemble import MEMBER_INPUT_SHAPE, MEMBER_SEED_BASE

__all__ = ["DEFAULT_BACKBONE", "PRESETS", "READOUT_RESET_SCALE", "VALIDATION_FOLDS",
           "VALIDATION_FOLD_SEED", "VALIDATION_SESSION", "WE_EXCLUDED_IMAGES",
           "EnsembleTrainingConfig", "Preset"]

#: The validation session of the study (hyper-parameters, early stopping).
VALIDATION_SESSION = 210224
#: The backbone of local runs: a trained core present wherever the data is.
DEFAULT_BACKBONE = "shared/from_ensemble_model/200:layer3"
#: Images 601-900 (0-based 600-899) of the WE animal's sessions were synthesized: not used.
WE_EXCLUDED_IMAGES = range(600, 900)
#: Validation: folds, and the seed of upstream's shuffle of the validation images.
VALIDATION_FOLDS = 8
VALIDATION_FOLD_SEED = 314159
#: Upstream's readout reset scales the permuted initial readout weights by this.
READOUT_RESET_SCALE = 0.001


@dataclass(frozen=True)
class Preset:
    """A training recipe (see the module docstring for the two defined).

    Attributes:
        name: the preset's name.
        optimizer: ``"sgd"`` or ``"adamw"``.
        learning_rate: the initial learning rate.
        momentum: SGD momentum.
        weight_decay: AdamW's decoupled weight decay.
        lr_decay: ``"step"``: x ``lr_factor`` per epoch; ``"cosine"``: linear warm-up over
            ``warmup`` of all steps, then cosine to 0 at the last step.
        lr_factor: per-epoch factor of ``"step"``.
        warmup: share of the steps for the warm-up of ``"cosine"``.
        clip_value: per-element gradient clip (``None``: none).
        growing_passes: ``p`` passes per session in epoch ``p`` (else one).
        readout: ``"reset"`` (the member's padded readout, reset before each session, loss
            summed over neurons / outputs) or ``"per_session"`` (one readout per session,
            loss averaged over neurons).
        new_optimizer_each_epoch: restart the optimizer (momentum) at each epoch.
        batch_size: images per step.
    """

    name: str
    optimizer: str
    learning_rate: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: str = "step"
    lr_factor: float = 1.0
    warmup: float = 0.0
    clip_value: float | None = None
    growing_passes: bool = False
    readout: str = "reset"
    new_optimizer_each_epoch: bool = False
    batch_size: int = 64


#: The training presets by name.
PRESETS = {
    "upstream": Preset("upstream", "sgd", 2.0, momentum=0.75, lr_decay="step", lr_factor=0.85,
                       clip_value=0.5, growing_passes=True, readout="reset",
                       new_optimizer_each_epoch=True),
    "modern": Preset("modern", "adamw", 1e-3, weight_decay=1e-4, lr_decay="cosine",
                     warmup=0.05, readout="per_session"),
}


@dataclass
class EnsembleTrainingConfig:
    """Everything that decides a training run (saved in ``run.json``).

    Attributes:
        backbone: backbone spec (:func:`~v4compact.models.teachers.backbones.load_backbone`).
        sessions: training session ids (``None``: every training session whose images are
            in the data directory).
        validation: the validation session (early stopping).
        members: number of members (member ``k`` is seeded ``seed + k``).
        epochs: epochs (passes over the session list; see the preset for passes per session).
        preset: a name in :data:`PRESETS`.
        feature_size: backbone maps larger than this are average-pooled to it (14: the
            released members' input grid, so the embedding is 7x7).
        width, inner_width, num_blocks: member architecture (released: 512, 256, 4).
        max_images: use at most this many images per session (``None``: all; for tests and
            benchmarks).
        seed: seed of member 0 and of the session order (upstream: 31490).
        batch_size: images per step (``None``: the preset's).
        cache_dtype: storage type of the feature cache, ``"float16"`` or ``"float32"``.
    """

    backbone: str = DEFAULT_BACKBONE
    sessions: list[int] | None = None
    validation: int = VALIDATION_SESSION
    members: int = 25
    epochs: int = 5
    preset: str = "upstream"
    feature_size: int = MEMBER_INPUT_SHAPE[1]
    width: int = 512
    inner_width: int = 256
    num_blocks: int = 4
    max_images: int | None = None
    seed: int = MEMBER_SEED_BASE
    batch_size: int | None = None
    cache_dtype: str = FEATURE_CACHE_DTYPE

    def check(self) -> None:
        """Raise :class:`~v4compact.errors.InvalidInputError` on an impossible setting."""
        if self.preset not in PRESETS:
            raise InvalidInputError(
                f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name in ("members", "epochs", "width", "inner_width", "num_blocks", "feature_size"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be a positive integer, "
                                        f"got {getattr(self, name)!r}")
        from ..data.catalog import parse_session_id

        if self.sessions is not None and parse_session_id(self.validation) in map(
                parse_session_id, self.sessions):
            raise InvalidInputError(f"the validation session {self.validation} is among the "
                                    "training sessions; leave it out of --sessions")
        if self.max_images is not None and self.max_images < 2 * VALIDATION_FOLDS:
            raise InvalidInputError(f"max_images must be at least {2 * VALIDATION_FOLDS} "
                                    f"(validation folds), got {self.max_images}")

    @property
    def recipe(self) -> Preset:
        """The :class:`Preset`, with ``batch_size`` applied."""
        preset = PRESETS[self.preset]
        if self.batch_size:
            preset = dataclasses.replace(preset, batch_size=int(self.batch_size))
        return preset

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EnsembleTrainingConfig:
        """The inverse of :meth:`to_dict` (unknown keys are refused)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InvalidInputError(f"unknown training settings {sorted(unknown)}")
        return cls(**values)
