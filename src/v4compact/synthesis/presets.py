"""Named synthesis recipes (hyper-parameter sets) for :func:`~v4compact.synthesis.render.render`.

* ``"upstream"`` — the recipe of the original study, exactly (SYSTEM.md §11, figure 2a):
  pixel images started from noise uniform in [128, 178]; at each step the gradient of the
  objective with respect to the image is divided by its RMS (+1e-5), blurred with a
  Gaussian of sigma 1 and added with a step of 10 pixel units; the image is clipped to
  0-255; every 50 steps the image itself is blurred (sigma 1); the best image seen is kept.
* ``"fourier"`` — an improved recipe in the lucent tradition: Fourier / decorrelated-colour
  parameterisation, Adam (learning rate 0.05), seeded jitter / scale / rotation each step
  (robust to small shifts, fewer high-frequency artefacts), best image tracked on the
  untransformed image.
* ``"upstream_robust"`` — the upstream update rule plus the same transforms and a light
  total-variation penalty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import InvalidInputError

__all__ = ["PRESETS", "Preset", "get_preset", "list_presets"]


@dataclass(frozen=True)
class Preset:
    """A synthesis recipe.

    Attributes:
        name: preset name (recorded in provenance).
        param: ``"pixel"`` or ``"fourier"``.
        optimizer: ``"normalized_gradient"`` (upstream: step along grad / RMS) or ``"adam"``.
        step_size: pixel units per step for ``normalized_gradient``; learning rate for Adam.
        steps: default number of steps.
        grad_blur_sigma: Gaussian blur of the gradient (pixels); 0 = none.
        image_blur_sigma: Gaussian blur of the image every ``image_blur_every`` steps.
        image_blur_every: period of the image blur in steps; 0 = never.
        init_low: low end of the uniform pixel start (pixel units).
        init_high: high end of the uniform pixel start.
        jitter: random shift (pixels) per step; 0 = none.
        scales: random zoom factors per step; empty = none.
        angles: random rotations (degrees) per step; empty = none.
        total_variation: weight of the total-variation penalty; 0 = none.
        max_contrast: RMS contrast limit in pixel units; None = none.
        grayscale: constrain the images to gray.
        eval_every: with transforms, how often (steps) the untransformed image is scored for
            best-so-far tracking.
    """

    name: str
    param: str = "pixel"
    optimizer: str = "normalized_gradient"
    step_size: float = 10.0
    steps: int = 1000
    grad_blur_sigma: float = 1.0
    image_blur_sigma: float = 1.0
    image_blur_every: int = 50
    init_low: float = 128.0
    init_high: float = 178.0
    jitter: int = 0
    scales: tuple[float, ...] = field(default_factory=tuple)
    angles: tuple[float, ...] = field(default_factory=tuple)
    total_variation: float = 0.0
    max_contrast: float | None = None
    grayscale: bool = False
    eval_every: int = 10

    def replace(self, **changes) -> Preset:
        """A copy with some fields changed (unknown names raise InvalidInputError)."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise InvalidInputError(
                f"unknown preset setting(s) {', '.join(bad)}; valid: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain dict of all fields (for provenance JSON)."""
        return dataclasses.asdict(self)

    @property
    def has_transforms(self) -> bool:
        """True when the recipe applies random transforms each step."""
        return bool(self.jitter or self.scales or self.angles)


PRESETS: dict[str, Preset] = {
    "upstream": Preset(name="upstream"),
    "fourier": Preset(
        name="fourier",
        param="fourier",
        optimizer="adam",
        step_size=0.05,
        steps=500,
        grad_blur_sigma=0.0,
        image_blur_sigma=0.0,
        image_blur_every=0,
        jitter=4,
        scales=(0.95, 0.975, 1.0, 1.025, 1.05),
        angles=(-5.0, -2.5, 0.0, 2.5, 5.0),
    ),
    "upstream_robust": Preset(
        name="upstream_robust",
        jitter=2,
        scales=(0.975, 1.0, 1.025),
        angles=(-2.5, 0.0, 2.5),
        total_variation=0.01,
    ),
}


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(PRESETS)


def get_preset(preset: str | Preset, **overrides) -> Preset:
    """A preset by name (or as given), with fields overridden.

    Raises:
        InvalidInputError: an unknown preset name or setting.
    """
    if isinstance(preset, Preset):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise InvalidInputError(
            f"unknown synthesis preset {preset!r}; choose one of {', '.join(list_presets())}"
        )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**overrides) if overrides else base
