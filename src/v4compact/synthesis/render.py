"""The synthesis loop: optimise a batch of images for an objective.

:func:`render` is the general engine (any objective, parameterisation, transforms and
preset); :func:`synthesize` is the common case — many neurons times many random starts of
one model, all in one batch, maximized or minimized.
"""

from __future__ import annotations

import datetime
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InvalidInputError
from ..models.inputs import to_model_input
from ..models.predict import inference_mode_of, model_device, predict
from ..models.zoo import Z_SCORED_UNITS
from . import param as param_lib
from . import transforms as transform_lib
from .objectives import Objective, RenderContext, diversity, neuron, resolve_columns
from .presets import Preset, get_preset
from .regularizers import (
    clip_range,
    gaussian_blur,
    limit_contrast,
    to_grayscale,
    total_variation,
)

__all__ = ["SynthesisResult", "render", "synthesize"]


@dataclass
class SynthesisResult:
    """What a synthesis run produced.

    Attributes:
        images: uint8 ``(N, 112, 112, 3)``, the best image of each batch slot.
        responses: float32 ``(N, num_outputs)``, the model's outputs for ``images``
            (evaluated on the saved uint8 images); None for a routed model, which
            evaluates only each image's target.
        target_responses: float32 ``(N,)``, each image's response at its target column
            (None when the objective has no neuron target).
        target_ids: neuron id (or column) each image targets, or None.
        scores: float32 ``(N,)``, best objective value per image (float images).
        history: float32 ``(steps, N)``, objective per step (on the transformed input when
            the preset uses transforms).
        snapshots: uint8 ``(S, N, 112, 112, 3)`` trajectory, or None.
        snapshot_steps: the step after which each snapshot was taken.
        start_index: random-start number of each image (0..seeds-1), or None.
        provenance: model id, objective, preset, seed, versions, device, time.
    """

    images: np.ndarray
    responses: np.ndarray | None
    target_responses: np.ndarray | None
    target_ids: list | None
    scores: np.ndarray
    history: np.ndarray
    snapshots: np.ndarray | None = None
    snapshot_steps: list[int] = field(default_factory=list)
    start_index: list[int] | None = None
    provenance: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One dict per image: index, target, start, target response, score."""
        out = []
        for i in range(len(self.images)):
            out.append({
                "index": i,
                "target": None if self.target_ids is None else self.target_ids[i],
                "start": None if self.start_index is None else self.start_index[i],
                "response": None if self.target_responses is None
                else float(self.target_responses[i]),
                "score": float(self.scores[i]),
            })
        return out

    def save(self, out_dir, prefix: str = "image") -> list:
        """Write PNGs, ``responses.csv``/``.json`` and ``provenance.json`` to ``out_dir``.

        Returns:
            The paths written.
        """
        from .io import save_result

        return save_result(self, out_dir, prefix=prefix)


def _to_uint8_nhwc(pixels: torch.Tensor) -> np.ndarray:
    arr = pixels.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _build_param(spec, preset: Preset, num_images, seed, image_seeds, device):
    if isinstance(spec, tuple):
        return spec
    kind = spec or preset.param
    if kind == "pixel":
        return param_lib.pixel(num_images, seed, image_seeds=image_seeds, low=preset.init_low,
                               high=preset.init_high, device=device)
    if kind == "fourier":
        return param_lib.fourier(num_images, seed, image_seeds=image_seeds, device=device)
    raise InvalidInputError(f"unknown parameterisation {kind!r}; use 'pixel', 'fourier' or a "
                            "(params, image_fn) tuple")


def _build_transforms(spec, preset: Preset):
    if spec is not None:
        if callable(spec):
            return spec
        return transform_lib.compose(list(spec)) if len(spec) else None
    parts = []
    if preset.jitter:
        parts.append(transform_lib.jitter(preset.jitter))
    if preset.scales:
        parts.append(transform_lib.random_scale(preset.scales))
    if preset.angles:
        parts.append(transform_lib.random_rotate(preset.angles))
    if preset.jitter:
        parts.append(transform_lib.jitter(max(1, preset.jitter // 2)))
    return transform_lib.compose(parts) if parts else None


def _num_images(objective: Objective, num_images: int | None) -> int:
    targets = objective.targets
    per_image = targets is not None and not isinstance(targets, int | str)
    if num_images is None:
        return len(targets) if per_image else 1
    if per_image and len(targets) != num_images:
        raise InvalidInputError(f"num_images={num_images} but the objective has "
                                f"{len(targets)} per-image targets; drop num_images")
    return int(num_images)


def render(
    model: torch.nn.Module,
    objective: Objective,
    *,
    num_images: int | None = None,
    param: str | tuple | None = None,
    transforms: Callable | Sequence | None = None,
    preset: str | Preset = "upstream",
    steps: int | None = None,
    seed: int = 0,
    image_seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    snapshot_every: int | None = None,
    **settings,
) -> SynthesisResult:
    """Optimise a batch of images to maximize ``objective``.

    Args:
        model: a v4compact model; it is put in eval mode and moved to ``device``.
        objective: per-image score to maximize (use ``minimize(...)`` / ``-obj`` to lower).
        num_images: batch size; default: one per target of a per-image objective, else 1.
        param: ``"pixel"``, ``"fourier"`` or a ``(params, image_fn)`` tuple; default from
            the preset.
        transforms: a transform callable or a list of them; default from the preset
            (``[]`` disables them).
        preset: a preset name (``"upstream"``, ``"fourier"``, ``"upstream_robust"``) or a
            :class:`~v4compact.synthesis.presets.Preset`.
        steps: optimisation steps (default: the preset's).
        seed: seed of the random start and of the transforms.
        image_seeds: one seed per image for the random start (overrides ``seed`` there).
        device: where to run (default: the model's device).
        progress: show a tqdm progress bar.
        snapshot_every: keep the images every this many steps (trajectory).
        **settings: overrides of preset fields (e.g. ``grayscale=True``, ``step_size=5``).

    Returns:
        A :class:`SynthesisResult`.
    """
    preset = get_preset(preset, **settings)
    if steps is not None:
        preset = preset.replace(steps=int(steps))
    if preset.steps < 1:
        raise InvalidInputError(f"steps must be >= 1, got {preset.steps}")
    if preset.optimizer not in ("normalized_gradient", "adam"):
        raise InvalidInputError(f"unknown optimizer {preset.optimizer!r}; use "
                                "'normalized_gradient' or 'adam'")
    if not isinstance(objective, Objective):
        raise InvalidInputError("objective must be a v4compact.synthesis Objective, e.g. "
                                "objectives.neuron('201025/2')")
    device = model_device(model) if device is None else torch.device(device)
    model.to(device)
    n = _num_images(objective, num_images)

    full_objective = objective
    if preset.total_variation:
        full_objective = objective + total_variation(preset.total_variation)
    params, image_fn = _build_param(param, preset, n, seed, image_seeds, device)
    pixel_leaf = getattr(image_fn, "pixels", None)
    transform = _build_transforms(transforms, preset)
    generator = torch.Generator().manual_seed(int(seed) + 1)
    optimizer = (torch.optim.Adam(params, lr=preset.step_size)
                 if preset.optimizer == "adam" else None)

    def current_images() -> torch.Tensor:
        img = image_fn()
        if pixel_leaf is None:  # constraints as differentiable maps
            if preset.grayscale:
                img = to_grayscale(img)
            if preset.max_contrast:
                img = limit_contrast(img, preset.max_contrast)
        return img

    best_scores = torch.full((n,), -float("inf"), device=device)
    best_pixels = torch.zeros((n, 3) + tuple(current_images().shape[-2:]), device=device)

    def update_best(scores: torch.Tensor, img: torch.Tensor) -> None:
        better = scores > best_scores
        best_scores[better] = scores[better]
        best_pixels[better] = img.detach()[better]

    def score_untransformed() -> None:
        with torch.no_grad():
            img = current_images()
            update_best(full_objective(RenderContext(model, to_model_input(img))), img)

    mode_flags = [(m, m.training) for m in model.modules()]
    model.eval()
    # Only image gradients are needed: skipping the weight gradients (layer 0's costs as
    # much as its forward pass) makes a step about 3x faster on CPU.
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in grad_flags:
        p.requires_grad_(False)
    history = np.zeros((preset.steps, n), dtype=np.float32)
    snapshots, snapshot_steps = [], []
    bar = tqdm(range(preset.steps), desc="synthesis", unit="step", disable=not progress,
               leave=False)
    try:
        for step in bar:
            img = current_images()
            x = transform(img, generator) if transform is not None else img
            x = to_model_input(x).contiguous(memory_format=torch.channels_last)
            scores = full_objective(RenderContext(model, x))
            if scores.shape != (n,):
                raise InvalidInputError(f"objective returned shape {tuple(scores.shape)}, "
                                        f"expected ({n},)")
            history[step] = scores.detach().float().cpu().numpy()
            if transform is None:
                update_best(scores.detach(), img)
            grads = torch.autograd.grad(scores.sum(), params)
            with torch.no_grad():
                if optimizer is None:
                    for p, g in zip(params, grads, strict=True):
                        dims = tuple(range(1, g.ndim))
                        g = g / (g.pow(2).mean(dim=dims, keepdim=True).sqrt() + 1e-5)
                        if preset.grad_blur_sigma and g.ndim == 4:
                            g = gaussian_blur(g, preset.grad_blur_sigma)
                        p.add_(preset.step_size * g)
                else:
                    for p, g in zip(params, grads, strict=True):
                        p.grad = -g
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                if pixel_leaf is not None:
                    out = pixel_leaf
                    if preset.grayscale:
                        out = to_grayscale(out)
                    if preset.max_contrast:
                        out = limit_contrast(out, preset.max_contrast)
                    out = clip_range(out)
                    if preset.image_blur_every and (step + 1) % preset.image_blur_every == 0:
                        out = clip_range(gaussian_blur(out, preset.image_blur_sigma))
                    pixel_leaf.copy_(out)
            if transform is not None and ((step + 1) % preset.eval_every == 0):
                score_untransformed()
            if snapshot_every and (step + 1) % snapshot_every == 0:
                snapshots.append(_to_uint8_nhwc(current_images()))
                snapshot_steps.append(step + 1)
            if progress and step % 10 == 0:
                bar.set_postfix(score=f"{float(history[step].mean()):.3g}")
        score_untransformed()  # the image after the last step
    finally:
        bar.close()
        for m, flag in mode_flags:
            m.training = flag
        for p, flag in grad_flags:
            p.requires_grad_(flag)

    images = _to_uint8_nhwc(best_pixels)
    responses, target_ids, target_responses = _final_responses(model, objective, images, device)
    from .. import __version__

    provenance = {
        "model_id": getattr(model, "model_id", type(model).__name__),
        "response_units": Z_SCORED_UNITS,
        "objective": objective.description,
        "preset": preset.to_dict(),
        "param": param if isinstance(param, str) or param is None else "custom",
        "transforms": getattr(transform, "__name__", None) if transform is not None else None,
        "steps": preset.steps,
        "seed": int(seed),
        "num_images": n,
        "device": str(device),
        "v4compact_version": __version__,
        "torch_version": torch.__version__,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return SynthesisResult(
        images=images,
        responses=responses,
        target_responses=target_responses,
        target_ids=target_ids,
        scores=best_scores.float().cpu().numpy(),
        history=history,
        snapshots=np.stack(snapshots) if snapshots else None,
        snapshot_steps=snapshot_steps,
        provenance=provenance,
    )


def _final_responses(model, objective: Objective, images: np.ndarray, device):
    """Responses to the saved uint8 images: all outputs, and each image's target output.

    A routed model (``forward_columns``) evaluates only each image's own target, so
    ``responses`` is None there.
    """
    n = len(images)
    targets = objective.targets
    cols = None
    if targets is not None:
        per_image = not isinstance(targets, int | str)
        cols = resolve_columns(model, targets if per_image else [targets] * n)
    ids = list(getattr(model, "neuron_ids", []) or [])
    target_ids = None if cols is None else [ids[c] if ids else c for c in cols]
    forward_columns = getattr(model, "forward_columns", None)
    if forward_columns is not None and cols is not None:
        chunks = []
        with inference_mode_of(model), torch.no_grad():
            for start in range(0, n, 128):
                x = to_model_input(images[start: start + 128], device)
                col = torch.as_tensor(cols[start: start + 128], device=device)
                chunks.append(forward_columns(x, col).float().cpu().numpy())
        return None, target_ids, np.concatenate(chunks).astype(np.float32)
    responses = predict(model, images, batch_size=128, device=device).reshape(n, -1)
    target_responses = None
    if cols is not None:
        target_responses = responses[np.arange(n), cols].astype(np.float32)
    return responses, target_ids, target_responses


def _routed_view(model, columns: list[int]):
    """A :class:`RoutedModels` of the population members at ``columns`` (same ids)."""
    from .routing import RoutedModels

    members = model.to_compact_models
    members = members() if callable(members) else members
    return RoutedModels([members[c] for c in columns],
                        model_id=getattr(model, "model_id", "population"))


def start_seed(seed: int, neuron_key, start: int) -> int:
    """Seed of one random start: depends on the run seed, the neuron id and the start only.

    So a neuron's starts are the same whether it is synthesized alone or in a batch.
    """
    key = zlib.crc32(str(neuron_key).encode())
    return int(np.random.SeedSequence([int(seed), key, int(start)]).generate_state(1)[0])


def synthesize(
    model: torch.nn.Module,
    neurons: int | str | Sequence[int | str] | None = None,
    *,
    seeds: int = 9,
    preset: str | Preset = "upstream",
    steps: int | None = None,
    minimize: bool = False,
    seed: int = 0,
    diversity_weight: float = 0.0,
    device: str | torch.device | None = None,
    progress: bool = True,
    snapshot_every: int | None = None,
    route: bool | None = None,
    **settings,
) -> SynthesisResult:
    """Preferred (or least-preferred) stimuli of many neurons x many starts, in one batch.

    Args:
        model: a compact, shared or population model.
        neurons: column indices or neuron ids (default: every output of the model).
        seeds: random starts per neuron (upstream figure 2a: 9).
        preset: synthesis recipe (see :mod:`~v4compact.synthesis.presets`).
        steps: optimisation steps (default: the preset's).
        minimize: drive the responses down instead of up.
        seed: run seed; each start's noise derives from (seed, neuron id, start).
        diversity_weight: weight of a diversity term among each neuron's starts.
        device: where to run (default: the model's device).
        progress: show a progress bar.
        snapshot_every: keep trajectory snapshots every this many steps.
        route: for a fused population (a model with ``to_compact_models``), run each image
            only through its own neuron's compact model (default: yes; ``False`` runs the
            fused all-neuron forward, 219 times the work for all 219 neurons).
        **settings: preset overrides (e.g. ``grayscale=True``).

    Returns:
        A :class:`SynthesisResult` with images ordered neuron-major: image
        ``k * seeds + s`` is start ``s`` of the ``k``-th neuron.
    """
    if seeds < 1:
        raise InvalidInputError(f"seeds must be >= 1 (random starts per neuron), got {seeds}")
    if neurons is None:
        num_outputs = int(getattr(model, "num_outputs", 1))
        neurons = list(range(num_outputs))
    cols = resolve_columns(model, neurons)
    ids = list(getattr(model, "neuron_ids", []) or [])
    if route is not False and hasattr(model, "to_compact_models") and ids and \
            not hasattr(model, "forward_columns"):
        model = _routed_view(model, sorted(set(cols)))
        cols = resolve_columns(model, [ids[c] for c in cols])
        ids = list(model.neuron_ids)
    targets = [c for c in cols for _ in range(seeds)]
    starts = [s for _ in cols for s in range(seeds)]
    keys = [ids[c] if ids else c for c in targets]
    image_seeds = [start_seed(seed, k, s) for k, s in zip(keys, starts, strict=True)]
    objective = neuron(targets)
    if minimize:
        objective = -objective
    if diversity_weight:
        objective = objective + diversity_weight * diversity("layer1", groups=targets)
    result = render(model, objective, preset=preset, steps=steps, seed=seed,
                    image_seeds=image_seeds, device=device, progress=progress,
                    snapshot_every=snapshot_every, **settings)
    result.start_index = starts
    result.provenance.update({"neurons": [ids[c] if ids else c for c in cols],
                              "seeds_per_neuron": seeds, "minimize": bool(minimize),
                              "diversity_weight": diversity_weight})
    return result
