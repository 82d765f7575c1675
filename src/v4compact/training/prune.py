"""Pruning of distilled students (SYSTEM.md §10): step 1, the rebuild, step 2.

**Step 1** (:func:`prune_stack`) works on channel masks of a
:class:`~v4compact.models.nets.stack.CompactStack`, every student at once, layer 4 first, then
layers 3, 2, 1, 0, each on the network already pruned above it. Statistics come from the
held-out corpus images (5,000 upstream), in eval mode. Threshold 0.9; every layer keeps at
least :data:`~v4compact.models.arch.MIN_FILTERS` (3) filters.

- Layer 4: filter j's contribution to the output, ``c_j(image)`` = its layer-4 map times
  its readout weights, summed over space. Filters are dropped in ascending order of the
  s.d. of ``c_j`` while the squared correlation between the sum of the kept contributions
  and the teacher stays above ``threshold`` x that of all of them; the first drop that
  would break it ends the loop.
- Layer l = 3..0 (its filters are the input channels of layer l+1's separable
  convolution): with ``D`` layer l+1's depthwise output and ``W`` its pointwise weights
  (live output channels), channel j's score is the variance of ``D_j`` over images (per
  pixel, summed over pixels) times ``|W[:, j]|^2``. Channels are sorted by score and the
  number K of lowest-scored ones to drop is binary-searched so that the pointwise output
  (no bias, each channel centred over images and pixels) keeps ``>= threshold`` of its
  variance. Both quantities are exact quadratic forms of two ``C x C`` moment matrices
  accumulated in one pass (``sum_p E[D_i D_j]`` and the pixel means), so the search costs
  no further pass over the images.

**Off-by-one convention** (``convention=``): ``"strict"`` (default) drops the largest K
whose kept variance is still ``>= threshold``; ``"upstream"`` also drops the channel at
which the criterion first fails (K + 1, as upstream's search ends), so its kept fraction
ends just below the threshold. Layer 4's loop is the same in both.

**Rebuild**: :meth:`CompactStack.model` slices each student down to its kept channels
(kernels, pointwise rows and columns, the four batch-norm arrays, readout rows);
:func:`rebuild` returns those models and the largest difference to the masked stack.

**Step 2** (:func:`prune_run`): the rebuilt students, stacked again at their new widths,
retrain on the teacher for one more pass with a fresh Adam and the same smoothing
(:func:`~v4compact.training.distill.train_stack`); the last save is the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInputError
from ..models.arch import MIN_FILTERS, NUM_LAYERS, READOUT_SIZE
from ..models.nets.stack import CompactStack

__all__ = [
    "CONVENTIONS",
    "THRESHOLD",
    "format_report",
    "model_file_stem",
    "prune_run",
    "prune_stack",
    "rebuild",
    "reference_scores",
    "released_num_filters",
]

#: Fraction kept by every pruning criterion (SYSTEM.md §10).
THRESHOLD = 0.9
#: Off-by-one conventions of the binary search (see the module docstring).
CONVENTIONS = ("strict", "upstream")


def _batches(images: np.ndarray, batch_size: int, device) -> list[torch.Tensor]:
    from ..models.inputs import to_model_input

    for start in range(0, len(images), batch_size):
        yield to_model_input(images[start:start + batch_size], device)


def _masked_copy(stack: CompactStack) -> CompactStack:
    """A copy of the stack with channel masks (the stack itself is left unchanged)."""
    import copy

    if stack.mask0 is not None:
        return copy.deepcopy(stack)
    masked = CompactStack.from_models(stack.to_models(), masks=True)
    masked.neuron_ids, masked.model_ids = list(stack.neuron_ids), list(stack.model_ids)
    return masked


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    from ..metrics import raw_r2

    return float(raw_r2(y, x))


def prune_stack(stack: CompactStack, images: np.ndarray, teacher_responses: np.ndarray,
                threshold: float = THRESHOLD, min_filters: int = MIN_FILTERS,
                convention: str = "strict",
                batch_size: int = 64) -> tuple[CompactStack, list[dict]]:
    """Step 1 of SYSTEM.md §10 for every student of a stack.

    Args:
        stack: the distilled students (not changed).
        images: uint8 ``(N, 112, 112, 3)`` held-out corpus images.
        teacher_responses: float ``(N, K)``: the teacher's column for each student.
        threshold: fraction kept by each criterion.
        min_filters: filters every layer keeps at least.
        convention: ``"strict"`` or ``"upstream"`` (see the module docstring).
        batch_size: images per forward pass.

    Returns:
        ``(pruned, details)``: a masked copy of the stack in eval mode (pruned channels
        masked to zero) and per student a dict: ``kept`` (indices per layer), and per layer
        the criterion reached (``layer4_r2_fraction``, ``layer<l>_variance_fraction``).
    """
    if convention not in CONVENTIONS:
        raise InvalidInputError(f"unknown pruning convention {convention!r}; choose one of "
                                f"{', '.join(CONVENTIONS)}")
    targets = np.asarray(teacher_responses, dtype=np.float64).reshape(len(images), -1)
    if targets.shape[1] != stack.num_models:
        raise InvalidInputError(f"teacher responses have {targets.shape[1]} columns for "
                                f"{stack.num_models} students")
    pruned = _masked_copy(stack).eval()
    details = [{} for _ in range(pruned.num_models)]
    device = pruned.readout_bias.device
    with torch.no_grad():
        _prune_last_layer(pruned, images, targets, threshold, min_filters, batch_size,
                          device, details)
        for layer in range(NUM_LAYERS - 2, -1, -1):
            _prune_inner_layer(pruned, layer, images, threshold, min_filters, convention,
                               batch_size, device, details)
    for index, detail in enumerate(details):
        detail["kept"] = [k.tolist() for k in pruned.kept_channels(index)]
    return pruned, details


def _prune_last_layer(stack: CompactStack, images, targets, threshold, min_filters,
                      batch_size, device, details) -> None:
    width = stack.widths[-1]
    readout = stack.readout_weight.view(stack.num_models, READOUT_SIZE, READOUT_SIZE, width)
    contributions = []
    for x in _batches(images, batch_size, device):
        maps = stack.forward_to(x, f"layer{NUM_LAYERS - 1}")  # (n, K, W4, 28, 28)
        contributions.append(torch.einsum("nkjhw,khwj->nkj", maps, readout).double().cpu())
    c = torch.cat(contributions).numpy()  # (N, K, W4)
    mask = getattr(stack, f"mask{NUM_LAYERS - 1}")
    for k in range(stack.num_models):
        live = stack.kept_channels(k)[-1].cpu().numpy()
        full = _r2(c[:, k, live].sum(1), targets[:, k])
        kept = list(live[np.argsort(c[:, k, live].std(0), kind="stable")])
        fraction = 1.0
        while len(kept) > min_filters:
            trial = kept[1:]
            value = _r2(c[:, k, trial].sum(1), targets[:, k]) / full if full > 0 else 0.0
            if not value > threshold:
                break
            kept, fraction = trial, value
        _set_mask(mask, stack, NUM_LAYERS - 1, k, kept)
        details[k][f"layer{NUM_LAYERS - 1}_r2_fraction"] = fraction


def _set_mask(mask: torch.Tensor, stack: CompactStack, layer: int, model: int,
              kept: Sequence[int]) -> None:
    start = model * stack.widths[layer]
    mask[start:start + stack.widths[layer]] = 0.0
    mask[start + torch.as_tensor(np.asarray(kept, dtype=np.int64), device=mask.device)] = 1.0


def _prune_inner_layer(stack: CompactStack, layer: int, images, threshold, min_filters,
                       convention, batch_size, device, details) -> None:
    width = stack.widths[layer]
    pixels = None
    second = torch.zeros(stack.num_models, width, width, dtype=torch.float64)
    pixel_sum = None
    count = 0
    for x in _batches(images, batch_size, device):
        depthwise = stack.forward_to(x, f"layer{layer + 1}.depthwise")  # (n, K, W, H, W)
        flat = depthwise.flatten(3)  # (n, K, W, P)
        pixels = flat.shape[-1]
        second += torch.einsum("nkip,nkjp->kij", flat, flat).double().cpu()
        total = flat.sum(0).double().cpu()
        pixel_sum = total if pixel_sum is None else pixel_sum + total
        count += len(x)
    second /= count
    pixel_mean = pixel_sum / count  # (K, W, P)
    pointwise = getattr(stack.core, f"layer{layer + 1}").pointwise.weight  # (K*Wo, W, 1, 1)
    out_width = stack.widths[layer + 1]
    mask = getattr(stack, f"mask{layer}")
    for k in range(stack.num_models):
        live = stack.kept_channels(k)[layer].cpu().numpy()
        live_out = stack.kept_channels(k)[layer + 1].cpu()
        weight = pointwise[k * out_width:(k + 1) * out_width, :, 0, 0][live_out].double().cpu()
        gram = (weight.T @ weight).numpy()  # (W, W): Q = W^T W
        moments = second[k].numpy()
        means = pixel_mean[k].numpy()
        channel_mean = means.mean(1)
        per_pixel_variance = np.diag(moments) - (means ** 2).sum(1)  # (W,)
        covariance = moments - pixels * np.outer(channel_mean, channel_mean)
        score = per_pixel_variance * np.diag(gram)
        order = live[np.argsort(score[live], kind="stable")]

        def kept_fraction(drop: int, order=order, weighted=covariance * gram,
                          live=live) -> float:
            kept = order[drop:]
            total = weighted[np.ix_(live, live)].sum()
            return float(weighted[np.ix_(kept, kept)].sum() / total) if total > 0 else 0.0

        most = max(len(live) - min_filters, 0)
        low, high = 0, most  # largest drop with fraction >= threshold, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            if kept_fraction(middle) >= threshold:
                low = middle
            else:
                high = middle - 1
        drop = min(low + 1, most) if convention == "upstream" else low
        _set_mask(mask, stack, layer, k, order[drop:])
        details[k][f"layer{layer}_variance_fraction"] = kept_fraction(drop)


def rebuild(pruned: CompactStack, images: np.ndarray,
            batch_size: int = 64) -> tuple[list, float]:
    """The pruned students as separate, smaller models, and how well they match.

    Args:
        pruned: a masked stack (from :func:`prune_stack`).
        images: uint8 ``(N, 112, 112, 3)`` to compare on.
        batch_size: images per forward pass.

    Returns:
        ``(models, error)``: :class:`~v4compact.models.nets.compact.CompactModel` objects with
        only the kept channels (eval mode), and the largest ``|rebuilt - masked|`` over
        images and students divided by that student's output s.d. (z-scored units),
        computed in full float32 (no TF32 on CUDA: a run on an H200 with cuDNN's default
        TF32 reported 1.1e-2, rounding of the 10-bit mantissa, not of the rebuild).
    """
    from ..models.predict import predict
    from .runtime import exact_float32

    models = [m.eval() for m in pruned.to_models()]
    with exact_float32():
        masked = predict(pruned, images, batch_size=batch_size).reshape(len(images), -1)
        error = 0.0
        for k, model in enumerate(models):
            alone = predict(model, images, batch_size=batch_size).reshape(-1)
            spread = float(masked[:, k].std()) or 1.0
            error = max(error, float(np.abs(alone - masked[:, k]).max()) / spread)
    return models, error


# -- the pruning job --------------------------------------------------------------------------
def released_num_filters(neuron_id: str, data_dir=None) -> list[int] | None:
    """The released model's filters per layer (``nums_filters``), if the neuron has one."""
    from .. import config
    from ..data import paths
    from ..models.zoo import COMPACT, split_neuron_id

    try:
        session, index = split_neuron_id(neuron_id)
        COMPACT.format_id(session, index)
    except (InvalidInputError, ValueError):
        return None
    path = config.data_dir(data_dir) / paths.nums_filters(session, index)
    return np.load(path).astype(int).tolist() if path.is_file() else None


def model_file_stem(neuron_id: str) -> str:
    """File name (no suffix) of a made model: ``compact_model_<session>_neuron<k>`` as the
    release names its files, else ``compact_model_<neuron id with / as _>``."""
    from ..models.zoo import split_neuron_id

    try:
        session, index = split_neuron_id(neuron_id)
    except (InvalidInputError, ValueError):
        return "compact_model_" + "".join(c if c.isalnum() else "_" for c in neuron_id)
    return f"compact_model_{session}_neuron{index}"


def prune_run(run_dir: str | os.PathLike, teacher=None, *, threshold: float = THRESHOLD,
              convention: str = "strict", retrain_passes: int | None = None,
              resume: bool = False, device=None, data_dir=None) -> dict:
    """Prune a distillation run, retrain the pruned students and write the made models.

    Reads ``run_dir/run.json`` and ``run_dir/distill/checkpoint.pt``; writes
    ``run_dir/prune/`` (``pruned.pt``, the retraining's ``checkpoint.pt``, ``metrics.csv``,
    ``fidelity.png``), ``run_dir/models/<stem>.keras`` (Keras 3, provenance in
    ``metadata.json``; :func:`v4compact.load_compact_model` reads it) and
    ``run_dir/report.json`` / ``report.csv``.

    Args:
        run_dir: a folder written by :func:`~v4compact.training.distill.distill`.
        teacher: the teacher (default: loaded again from the run's teacher spec).
        threshold: fraction kept by each criterion (0.9).
        convention: ``"strict"`` or ``"upstream"`` off-by-one (module docstring).
        retrain_passes: passes of step 2 (default: the distillation's ``passes``).
        resume: continue a killed retraining.
        device: torch device (``None``: CUDA when available).
        data_dir: data directory.

    Returns:
        The report: run settings and, per neuron, filters and parameters before / after,
        fidelity (raw R^2 vs teacher on held-out corpus images, held-out raw R^2 on real
        responses) after distillation, after step 1 and after step 2, the rebuild error,
        the released model's filters and R^2 when there is one, and the model file.
    """
    from . import runtime as rt
    from .corpus import reopen_corpus
    from .distill import (
        CHECKPOINT,
        RUN_FILE,
        DistillConfig,
        fidelity,
        holdout_set,
        load_stack,
        stack_state,
        train_stack,
    )
    from .teachers import TeacherCache, load_teacher

    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / "distill" / CHECKPOINT).is_file():
        raise InvalidInputError(f"{run_dir} is not a finished distillation (run.json and "
                                "distill/checkpoint.pt); run v4compact distill --out first")
    run = json.loads((run_dir / RUN_FILE).read_text())
    saved = rt.load_checkpoint(run_dir / "distill" / CHECKPOINT)
    if not saved.get("done"):
        raise InvalidInputError(f"the distillation in {run_dir} has not finished; resume it "
                                "with v4compact distill --resume first")
    config = DistillConfig.from_dict(run["config"])
    if retrain_passes is not None:
        config = DistillConfig.from_dict({**config.to_dict(), "passes": int(retrain_passes)})
    runtime = rt.init_runtime(device)
    try:
        if teacher is None and not run.get("teacher_spec"):
            raise InvalidInputError(f"the teacher of {run_dir} was a Python object; pass it "
                                    "again as teacher=")
        teacher = load_teacher(teacher if teacher is not None else run["teacher_spec"],
                               run["neuron_ids"], device=runtime.device, data_dir=data_dir)
        corpus = reopen_corpus(run["corpus"], data_dir)
        train, holdout = corpus.split_holdout(config.holdout_count(len(corpus)), config.seed)
        cache = TeacherCache(run_dir / "teacher_cache", teacher)
        cache.prepare(corpus.shards, runtime.is_main)
        rt.barrier(runtime)
        images, targets = holdout_set(holdout, cache, runtime.is_main)
        if images is None:
            raise InvalidInputError("pruning needs held-out corpus images; distill with "
                                    "holdout_images > 0 (or the default hold-out rule)")
        distilled = load_stack(saved["stack"], runtime.device)
        scores = {"distilled": fidelity(distilled, images, targets, data_dir)}
        folder = run_dir / "prune"
        if resume and (folder / "pruned.pt").is_file():
            step1 = rt.load_checkpoint(folder / "pruned.pt", map_location=runtime.device)
            pruned, details, error = load_stack(step1["stack"], runtime.device), \
                step1["details"], step1["rebuild_error"]
        else:
            pruned, details = prune_stack(distilled, images, targets, threshold,
                                          convention=convention)
            _, error = rebuild(pruned, images)
            if runtime.is_main:
                rt.save_checkpoint(folder / "pruned.pt", {
                    "stack": stack_state(pruned), "details": details,
                    "rebuild_error": error})
            rt.barrier(runtime)
        scores["step1"] = fidelity(pruned, images, targets, data_dir)
        smaller = CompactStack.from_models(pruned.to_models())
        smaller.neuron_ids, smaller.model_ids = list(pruned.neuron_ids), \
            list(pruned.model_ids)
        retrained, stats = train_stack(
            smaller.train(), teacher, train, holdout, config, folder,
            run_dir / "teacher_cache", resume=resume, runtime=runtime, data_dir=data_dir,
            title=f"retraining after pruning ({len(teacher.neuron_ids)} students)")
        scores["step2"] = fidelity(retrained, images, targets, data_dir)
        report = None
        if runtime.is_main:
            report = _write_outputs(run_dir, run, config, teacher, distilled, retrained,
                                    details, error, scores, threshold, convention, stats,
                                    data_dir)
    finally:
        rt.shutdown_runtime(runtime)
    return report


def reference_scores(teacher, data_dir=None) -> dict[str, dict]:
    """Held-out raw R^2 on the real responses of the teacher and of the released compact
    model, per recorded neuron of the teacher (by :func:`v4compact.evaluate`).

    Returns:
        ``{neuron: {"teacher_heldout_raw_r2": ..., "released_heldout_raw_r2": ...}}``
        (a key is absent when that model or the session's images are not available).
    """
    from ..evaluation import evaluate
    from ..evaluation.predictors import Predictor
    from ..models.zoo import COMPACT, split_neuron_id
    from .distill import _recorded

    if not _recorded(teacher.neuron_ids):
        return {}
    out: dict[str, dict] = {n: {} for n in teacher.neuron_ids}
    result = evaluate(Predictor(teacher.spec, list(teacher.neuron_ids), teacher),
                      metric="raw_r2", num_boot=0, progress=False, data_dir=data_dir)
    released = []
    for neuron in teacher.neuron_ids:
        try:
            released.append(COMPACT.format_id(*split_neuron_id(neuron)))
        except (InvalidInputError, ValueError):
            continue
    results = {"teacher": result.scores, "released": []}
    if released:
        results["released"] = evaluate(released, metric="raw_r2", num_boot=0,
                                       progress=False, data_dir=data_dir).scores
    for name, scores in results.items():
        for score in scores:
            key = f"{score.session}/{score.neuron}"
            if score.metric == "raw_r2" and key in out:
                out[key][f"{name}_heldout_raw_r2"] = score.value
    return out


def format_report(report: dict) -> str:
    """A made-models report as a text table (one line per neuron; R^2 are raw R^2, outputs
    in z-scored units)."""
    def number(value) -> str:
        return "-" if value is None or value != value else f"{value:.3f}"

    def filters(value) -> str:
        return "-" if not value else "/".join(str(int(v)) for v in value)

    head = (f"{'neuron':<12}{'filters after':>18}{'released':>18}{'params':>9}"
            f"{'vs teacher':>12}{'student':>9}{'teacher':>9}{'released':>9}")
    lines = [f"teacher {report['teacher']}; outputs in {report['units']}",
             "vs teacher: raw R^2 on held-out corpus images (distilled -> pruned+retrained); "
             "student / teacher / released: held-out raw R^2 on the real responses", head,
             "-" * len(head)]
    for row in report["neurons"]:
        lines.append(
            f"{row['neuron']:<12}{filters(row['filters_after']):>18}"
            f"{filters(row.get('released_filters')):>18}{row['parameters_after']:>9}"
            f"{number(row.get('teacher_r2_distilled')):>6}>{number(row.get('teacher_r2_step2')):<5}"
            f"{number(row.get('heldout_raw_r2_step2')):>9}"
            f"{number(row.get('teacher_heldout_raw_r2')):>9}"
            f"{number(row.get('released_heldout_raw_r2')):>9}")
    return "\n".join(lines)


def _write_outputs(run_dir: Path, run: dict, config, teacher, distilled, retrained, details,
                   error, scores, threshold, convention, stats, data_dir) -> dict:
    import csv

    from .. import __version__
    from ..models.formats.keras_writer import write_keras

    references = reference_scores(teacher, data_dir)
    before = distilled.to_models()
    models = retrained.to_models()
    rows = []
    for k, model in enumerate(models):
        neuron = retrained.neuron_ids[k]
        row = {
            "neuron": neuron,
            "filters_before": before[k].num_filters,
            "filters_after": model.num_filters,
            "released_filters": released_num_filters(neuron, data_dir),
            "parameters_before": before[k].num_parameters,
            "parameters_after": model.num_parameters,
            "rebuild_error": error,
            **{f"{key}_{stage}": value for stage in ("distilled", "step1", "step2")
               for key, value in scores[stage][k].items()},
            **references.get(neuron, {}),
            **{key: value for key, value in details[k].items() if key != "kept"},
        }
        provenance = {
            "neuron_id": neuron, "teacher": run["teacher"], "units": run["units"],
            "corpus": {"images": run["corpus"]["images"],
                       "shards": [s["path"] for s in run["corpus"]["shards"]]},
            "preset": run["config"]["preset"], "config": run["config"],
            "student_seed": run["config"]["seed"] + k,
            "pruning": {"threshold": threshold, "convention": convention,
                        "retrain_passes": config.passes},
            "fidelity": {key: value for key, value in row.items()
                         if key.startswith(("teacher_r2", "heldout_raw_r2"))},
            "filters_before": row["filters_before"], "v4compact": __version__,
        }
        model.model_id = ""
        path = write_keras(model.cpu().eval(), run_dir / "models" / f"{model_file_stem(neuron)}"
                           ".keras", provenance)
        row["model_file"] = str(path.relative_to(run_dir))
        rows.append(row)
    report = {"run": str(run_dir), "teacher": run["teacher"], "threshold": threshold,
              "convention": convention, "units": run["units"],
              "retraining": stats.as_dict() | {"fidelity": None}, "neurons": rows}
    (run_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    with (run_dir / "report.csv").open("w", newline="") as handle:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v
                          for k, v in row.items()} for row in rows)
    return report
