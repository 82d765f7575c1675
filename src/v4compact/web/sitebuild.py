"""The batched site build: many neurons of one session per model pass.

:func:`build_site` (``v4compact site build``) and the server's background builder
(:mod:`v4compact.web.builder`) both go through :func:`build_batch`, which takes some neurons
of one session and computes, in this order:

1. **load** - the session's photos (decoded once) and one fused population of the neurons
   (:func:`v4compact.models.formats.loaders.load_compact_population`);
2. **predict** - one population pass over all the session's photos, every neuron at once;
3. **score + calibrate** - from those predictions: the held-out score by
   :func:`v4compact.evaluation.score_predictions` (the code ``v4compact evaluate`` scores
   with, so the page shows its number), the map to spikes by
   :func:`v4compact.models.calibration.calibration_from_outputs` (what ``fit_calibration``
   fits), the rankings by :func:`v4compact.synthesis.natural.rank_predictions`, the scatter
   points and the natural-photo statistics of "Try your image";
4. **synthesis** - the preferred images of all the neurons by
   :func:`v4compact.synthesis.synthesize` on a :class:`~v4compact.synthesis.routing.RoutedModels`
   of their compact models, :data:`SYNTHESIS_CHUNK` neurons (x seeds) per batch; each image
   goes through its own neuron's model only, with that neuron's seeds, so the images are
   those of ``synthesize(model, seeds=...)`` run neuron by neuron;
5. **write** - each neuron's files as soon as its synthesis chunk is done (every file written
   to a temporary name in the same folder, then renamed; ``summary.json`` last), so a page
   is ready only when all its files are complete, and a build killed at any point loses only
   the chunk in progress. A rerun skips every neuron whose keys are current.

Neurons of a session whose photos are not in the data directory (211022 in the default
copy) get only their preferred images; their photo statistics come from a small pass over
the other model sessions' held-out photos.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import config
from ..data import paths
from ..data.catalog import MODEL_SESSIONS, session_info
from ..models import zoo
from . import assets
from .assets import BuildReport, SiteSettings
from .state import LOAD_ERRORS, check_neuron_files

#: Neurons per synthesis batch, and the most work a kill can lose (about 50 s here). Each
#: synthesis step has a fixed cost (the render loop, the thread pool), so larger batches pay
#: it less often: 32 neurons x 3 starts ran 1.16x faster per image-step than 16 and 48 no
#: faster than 32 (48 neurons of 201025, 10 steps, 2 cores, alternating); the full build's
#: synthesis 1.08x (docs/performance.md).
SYNTHESIS_CHUNK = 32
#: The stages of a build, in order (seconds of each are in :class:`StageTimes`).
STAGES = ("load", "predict", "score", "synthesis", "write")
_STAGE_LABELS = {"score": "score+calibrate"}


@dataclass
class StageTimes:
    """Wall-clock seconds spent in each stage of a build (summed over batches)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    total: float = 0.0

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` towards ``stage``."""
        self.seconds[stage] += seconds

    def line(self) -> str:
        """One line: ``load 1.2 s, predict 3.4 s, ..., total 9.9 s``."""
        parts = [f"{_STAGE_LABELS.get(s, s)} {self.seconds[s]:.1f} s" for s in STAGES]
        return ", ".join(parts) + f"; total {self.total:.1f} s"


class _Clock:
    """``with clock("predict"): ...`` adds the block's wall time to a stage."""

    def __init__(self, times: StageTimes):
        self.times = times
        self.stage = ""
        self.start = 0.0

    def __call__(self, stage: str) -> _Clock:
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.times.add(self.stage, time.perf_counter() - self.start)


@dataclass
class NeuronTask:
    """What one neuron needs (from its ``summary.json`` and the current keys).

    Attributes:
        session_id, neuron: the neuron.
        model_key: key of the score, rankings and statistics (model file, asset version,
            held-out subset).
        synthesis_key: key of the preferred images (model file and synthesis settings).
        model_part: the score / rankings / statistics must be computed.
        synthesis: the preferred images must be computed.
        summary: the summary already on disk (``{}`` when none).
    """

    session_id: int
    neuron: int
    model_key: str
    synthesis_key: str
    model_part: bool
    synthesis: bool
    summary: dict

    @property
    def neuron_id(self) -> str:
        """``"session/index"``."""
        return f"{self.session_id}/{self.neuron}"

    @property
    def needed(self) -> bool:
        """True when anything must be computed."""
        return self.model_part or self.synthesis


def plan_neuron(cache_dir: Path, data_dir: Path, session_id: int, neuron: int,
                settings: SiteSettings, force: bool = False) -> NeuronTask:
    """Compare a neuron's ``summary.json`` with the current keys (no model is loaded)."""
    out_dir = assets.neuron_dir(cache_dir, session_id, neuron)
    summary = assets.read_summary(cache_dir, session_id, neuron) or {}
    file_key = assets.model_key(session_id, neuron, data_dir)
    mkey = file_key
    if settings.max_heldout_images is not None:
        mkey += f"-h{settings.max_heldout_images}"
    skey = assets.synthesis_key(file_key, settings)
    model_part = force or summary.get("model_key") != mkey
    synthesis = (
        force
        or summary.get("synthesis_key") != skey
        or not all((out_dir / p["file"]).is_file() for p in summary.get("preferred", []))
    )
    return NeuronTask(session_id, neuron, mkey, skey, model_part, synthesis, summary)


def build_batch(
    cache_dir: Path,
    data_dir: Path,
    session_id: int,
    tasks: Sequence[NeuronTask],
    settings: SiteSettings,
    *,
    device: str = "cpu",
    times: StageTimes | None = None,
    report: BuildReport | None = None,
    on_written: Callable[[str], None] | None = None,
    session_cache: dict | None = None,
) -> BuildReport:
    """Build the assets of some neurons of one session in one batch (see the module doc).

    Args:
        cache_dir: the asset folder.
        data_dir: the data directory.
        session_id: the session of every task.
        tasks: the neurons (from :func:`plan_neuron`); those with nothing to do are skipped.
        settings: synthesis and ranking settings.
        device: torch device.
        times: stage times to add to.
        report: report to add the built and failed neurons to.
        on_written: called with each neuron id once its ``summary.json`` is written.
        session_cache: ``{session_id: (session, images or None)}`` kept between batches of
            the same session (the photos are decoded once).

    Returns:
        The report. A neuron whose model cannot be loaded is put in ``failed`` with a one-line
        reason; the others are built.
    """
    times = times if times is not None else StageTimes()
    report = report if report is not None else BuildReport()
    todo = [t for t in tasks if t.needed]
    if not todo:
        return report
    clock = _Clock(times)
    with clock("load"):
        session, images = _session_images(session_id, data_dir, session_cache)
        try:
            population = _load_population(todo, data_dir, device)
        except LOAD_ERRORS as err:
            population = None
            reason = str(err).splitlines()[0] if str(err) else repr(err)
    if population is None:
        if len(todo) == 1:
            report.failed[todo[0].neuron_id] = reason
            return report
        for task in todo:  # find the neuron that fails; build the others
            build_batch(cache_dir, data_dir, session_id, [task], settings, device=device,
                        times=times, report=report, on_written=on_written,
                        session_cache=session_cache)
        return report
    column = {nid: c for c, nid in enumerate(population.neuron_ids)}
    members = population.to_compact_models()
    info = session_info(session_id)
    summaries: dict[str, dict] = {}
    for task in todo:
        model = members[column[task.neuron_id]]
        summary = dict(task.summary)
        summary.update({
            "neuron_id": task.neuron_id,
            "session_id": session_id,
            "neuron": task.neuron,
            "animal": info.animal,
            "num_filters": [int(n) for n in model.num_filters],
            "num_parameters": int(model.num_parameters),
        })
        summaries[task.neuron_id] = summary
    heldout_points: dict[str, dict | None] = {}
    model_tasks = [t for t in todo if t.model_part]
    if model_tasks:
        cols = [column[t.neuron_id] for t in model_tasks]
        if images is None:
            with clock("predict"):
                stats_images = _stats_images_elsewhere(data_dir, settings, session_cache)
                outputs = (_predict(population, stats_images, device)[:, cols]
                           if stats_images is not None else None)
            with clock("score"):
                for i, task in enumerate(model_tasks):
                    summary = summaries[task.neuron_id]
                    summary.update({"heldout": None, "natural": None, "calibration": None})
                    summary["heldout_note"] = (
                        f"the photos of session {session_id} are not in the explorer's data "
                        "directory, so this neuron has no score or photo rankings here; fetch "
                        f"them with: {paths.fetch_command(f'images:{session_id}')}"
                    )
                    summary["natural_stats"] = (
                        None if outputs is None else _stats(outputs[:, i], "other sessions")
                    )
                    summary["model_key"] = task.model_key
                    heldout_points[task.neuron_id] = None
        else:
            with clock("predict"):
                outputs = _predict(population, images, device)[:, cols]
            with clock("score"):
                parts = heldout_parts(session, [t.neuron for t in model_tasks], outputs,
                                      settings)
                for task, part in zip(model_tasks, parts, strict=True):
                    summary = summaries[task.neuron_id]
                    summary.update({k: part[k] for k in
                                    ("heldout", "natural", "calibration", "natural_stats")})
                    summary.pop("heldout_note", None)
                    summary["model_key"] = task.model_key
                    heldout_points[task.neuron_id] = part["points"]
    synth_tasks = [t for t in todo if t.synthesis]
    done_early = [t for t in todo if not t.synthesis]
    with clock("write"):
        for task in done_early:
            _write_neuron(cache_dir, task, summaries[task.neuron_id],
                          heldout_points.get(task.neuron_id, ...), {})
            report.built.append(task.neuron_id)
            if on_written:
                on_written(task.neuron_id)
    for start in range(0, len(synth_tasks), SYNTHESIS_CHUNK):
        chunk = synth_tasks[start:start + SYNTHESIS_CHUNK]
        with clock("synthesis"):
            preferred = synthesize_preferred(
                [members[column[t.neuron_id]] for t in chunk], settings, device)
        with clock("write"):
            for task, (entries, pngs) in zip(chunk, preferred, strict=True):
                summary = summaries[task.neuron_id]
                summary["preferred"] = entries
                summary["synthesis_settings"] = settings.synthesis_part()
                summary["synthesis_key"] = task.synthesis_key
                _write_neuron(cache_dir, task, summary,
                              heldout_points.get(task.neuron_id, ...), pngs)
                report.built.append(task.neuron_id)
                if on_written:
                    on_written(task.neuron_id)
    return report


def heldout_parts(session, neurons: Sequence[int], outputs: np.ndarray,
                  settings: SiteSettings) -> list[dict]:
    """Score, calibration, rankings, scatter points and photo statistics from predictions.

    Args:
        session: the neurons' session (with its photos and responses).
        neurons: ``(K,)`` neuron indices.
        outputs: float ``(num_images, K)`` predictions (z-scored units) of every photo of the
            session, in file order.
        settings: ``num_natural``, ``max_heldout_images`` and ``stats_images``.

    Returns:
        One dict per neuron with ``heldout``, ``points``, ``natural``, ``calibration`` and
        ``natural_stats`` (the summary's fields).
    """
    from ..evaluation import METRIC_LABELS, score_predictions
    from ..models.calibration import calibration_from_outputs
    from ..synthesis.natural import ImageCollection, rank_predictions

    fit, heldout = session.heldout_split()
    scores = score_predictions(session, neurons, outputs[heldout].T)
    calibration = calibration_from_outputs(session, neurons, outputs[fit])
    shown = heldout if settings.max_heldout_images is None else \
        heldout[:settings.max_heldout_images]
    names = [f"image{i + 1:04d}" for i in shown]
    collection = ImageCollection(shown, f"session:{session.session_id}", names, session=session)
    out = []
    for column, (k, score) in enumerate(zip(neurons, scores, strict=True)):
        ranking = rank_predictions(outputs[shown, column], collection,
                                   f"{session.session_id}/{k}", measured_index=shown)
        predicted = np.asarray(ranking.predicted, dtype=np.float64)
        measured = np.asarray(ranking.measured, dtype=np.float64)
        slope = float(calibration.slope[column])
        intercept = float(calibration.intercept[column])
        spikes = (predicted * slope + intercept).astype(np.float32).astype(np.float64)

        def entries(order: np.ndarray, count: int, predicted=predicted, measured=measured,
                    spikes=spikes) -> list[dict]:
            return [{"image": int(shown[i]), "measured": float(measured[i]),
                     "predicted": float(predicted[i]), "predicted_spikes": float(spikes[i])}
                    for i in order[:count]]

        num = settings.num_natural
        out.append({
            "heldout": {
                "metric": score.metric,
                "label": METRIC_LABELS[score.metric],
                "value": score.value,
                "ci_low": score.ci_low,
                "ci_high": score.ci_high,
                "num_images": score.num_images,
                "model_id": score.model,
                "note": f"v4compact evaluate {score.model} --sessions {score.session}: "
                "the model scored on the held-out half of the session's photos (the half it "
                "was not fitted on), with a 95% bootstrap interval over photos",
            },
            "points": {
                "image_indices": [int(i) for i in shown],
                "measured": [round(float(v), 5) for v in measured],
                "predicted": [round(float(v), 5) for v in predicted],
                "predicted_spikes": [round(float(v), 5) for v in spikes],
            },
            "natural": {
                "top_predicted": entries(ranking.order, num),
                "bottom_predicted": entries(ranking.order[::-1], num),
                "top_measured": entries(ranking.measured_order, num),
                "bottom_measured": entries(ranking.measured_order[::-1], num),
            },
            "calibration": {"slope": slope, "intercept": intercept},
            "natural_stats": _stats(outputs[heldout[:settings.stats_images], column],
                                    f"session {session.session_id}"),
        })
    return out


def synthesize_preferred(models: Sequence, settings: SiteSettings,
                         device: str) -> list[tuple[list[dict], list]]:
    """Preferred images of several compact models in one routed batch.

    Args:
        models: compact models (one neuron each).
        settings: ``seeds``, ``steps``, ``preset`` and ``seed``.
        device: torch device.

    Returns:
        Per model: ``({"start", "response", "file"} per start, uint8 (112, 112, 3) images)``,
        the images :func:`~v4compact.synthesis.synthesize` makes for that model alone.
    """
    from ..synthesis import synthesize
    from ..synthesis.routing import RoutedModels

    routed = RoutedModels(list(models))
    result = synthesize(routed, neurons=list(routed.neuron_ids), seeds=settings.seeds,
                        preset=settings.preset, steps=settings.steps, seed=settings.seed,
                        device=device, progress=False)
    out = []
    for m in range(len(models)):
        entries, pngs = [], []
        for start in range(settings.seeds):
            i = m * settings.seeds + start
            entries.append({"start": start, "response": float(result.target_responses[i]),
                            "file": f"preferred_{start}.png"})
            pngs.append(result.images[i])
        out.append((entries, pngs))
    return out


def _predict(population, images: np.ndarray, device: str) -> np.ndarray:
    """float32 ``(N, K)`` outputs of a population (also for ``K == 1``)."""
    return np.asarray(population.predict(images, device=device)).reshape(len(images), -1)


def _stats(values: np.ndarray, images: str) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()),
            "num_images": int(len(values)), "images": images}


def _write_neuron(cache_dir: Path, task: NeuronTask, summary: dict, points, pngs) -> None:
    """Write a neuron's files, each atomically; ``summary.json`` last.

    ``points`` is the scatter (``None``: remove it; ``...``: unchanged).
    """
    out_dir = assets.neuron_dir(cache_dir, task.session_id, task.neuron)
    out_dir.mkdir(parents=True, exist_ok=True)
    if points is None:
        (out_dir / "heldout.json").unlink(missing_ok=True)
    elif points is not ...:
        assets.write_json(out_dir / "heldout.json", points)
    for start, pixels in enumerate(pngs):
        assets.write_png(out_dir / f"preferred_{start}.png", pixels)
    assets.write_json(out_dir / "summary.json", summary)


def _load_population(tasks: Sequence[NeuronTask], data_dir: Path, device: str):
    from ..models.formats.loaders import load_compact_population

    return load_compact_population(neurons=[t.neuron_id for t in tasks], device=device,
                                   data_dir=data_dir).eval()


def _session_images(session_id: int, data_dir: Path, cache: dict | None):
    """``(session, uint8 (N, 112, 112, 3) photos or None)``, decoded once per cache."""
    from ..data.session import load_session

    if cache is not None and session_id in cache:
        return cache[session_id]
    session = load_session(session_id, data_dir=data_dir)
    images = np.asarray(session.images) if session.has_images else None
    if cache is not None:
        cache[session_id] = (session, images)
    return session, images


def _stats_images_elsewhere(data_dir: Path, settings: SiteSettings, cache: dict | None):
    """Photos for the statistics of a session without photos: the first held-out photos of
    each model session that has them (``stats_images`` in all), or None when none has."""
    from ..data.session import load_session

    key = ("stats_images", settings.stats_images)
    if cache is not None and key in cache:
        return cache[key]
    sessions = [load_session(sid, data_dir=data_dir) for sid in MODEL_SESSIONS]
    sessions = [s for s in sessions if s.has_images]
    images = None
    if sessions:
        per_session = math.ceil(settings.stats_images / len(sessions))
        images = np.concatenate([np.asarray(s.images[s.heldout_split()[1][:per_session]])
                                 for s in sessions])
    if cache is not None:
        cache[key] = images
    return images


def build_site(
    cache_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    neurons: Sequence[str] | None = None,
    settings: SiteSettings | None = None,
    device: str = "cpu",
    sessions: bool = True,
    population: bool = True,
    force: bool = False,
    progress: bool = True,
    times: StageTimes | None = None,
) -> BuildReport:
    """Precompute the explorer's assets into ``cache_dir``, skipping what is current.

    Neurons are built session by session (:func:`build_batch`: one population pass per
    session, synthesis in routed chunks).

    Args:
        cache_dir: output folder (created if needed).
        data_dir: data directory (default: the package setting).
        neurons: neuron ids (``"201025/10"``) or session ids (``"201025"``); default all 219.
        settings: synthesis and ranking settings.
        device: torch device for the models.
        sessions: also draw the figures of the selected neurons' sessions (the server draws
            the others when they are first asked for).
        population: also write ``population_stats.json`` (every built neuron's mean and s.d.
            on natural photos, used by "Try your image"; computed with the neurons).
        force: rebuild even what is current.
        progress: show a progress bar.
        times: stage times to fill in (``load``, ``predict``, ``score``, ``synthesis``,
            ``write``, and ``total``).

    Returns:
        A :class:`~v4compact.web.assets.BuildReport`. A neuron that fails (e.g. a missing
        file) is reported in ``failed`` with its one-line error and the build goes on.
    """
    from tqdm.auto import tqdm

    from ..errors import V4CompactError

    started = time.perf_counter()
    settings = settings or SiteSettings()
    times = times if times is not None else StageTimes()
    cache = Path(cache_dir).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    data_dir = config.data_dir(data_dir)
    selected = assets.select_neurons(neurons)
    report = BuildReport()
    by_session: dict[int, list[NeuronTask]] = {}
    for neuron_id in selected:
        sid, idx = zoo.split_neuron_id(neuron_id)
        health = check_neuron_files(data_dir, sid, idx)
        if not health.ok:
            report.failed[neuron_id] = health.problem
            continue
        task = plan_neuron(cache, data_dir, sid, idx, settings, force)
        if task.needed:
            by_session.setdefault(sid, []).append(task)
        else:
            report.skipped.append(neuron_id)
    total = sum(len(t) for t in by_session.values())
    bar = tqdm(total=total, desc="site build", unit="neuron", disable=not progress or not total)
    session_cache: dict = {}
    for sid, tasks in by_session.items():
        bar.set_postfix_str(f"session {sid}")
        build_batch(cache, data_dir, sid, tasks, settings, device=device, times=times,
                    report=report, on_written=lambda _: bar.update(1),
                    session_cache=session_cache)
        session_cache.pop(sid, None)  # one session's photos in memory at a time
    bar.close()
    session_cache.clear()
    clock = _Clock(times)
    with clock("write"):
        if population:
            report.stats_built = write_population_stats(cache) is not None
        if sessions:
            wanted = list(dict.fromkeys(zoo.split_neuron_id(n)[0] for n in selected))
            for sid in wanted:
                if not force and assets.session_figure_path(cache, sid).is_file():
                    continue
                try:
                    assets.build_session_figure(sid, cache, data_dir)
                except V4CompactError as err:
                    report.failed[f"session {sid}"] = str(err)
                    continue
                report.sessions_built.append(sid)
        assets.write_json(cache / "site.json",
                          {"asset_version": assets.ASSET_VERSION, "settings": asdict(settings)})
    times.total = time.perf_counter() - started
    return report


def write_population_stats(cache_dir: Path) -> dict | None:
    """Gather every built neuron's ``natural_stats`` into ``population_stats.json``.

    Returns:
        The payload written (``neuron_ids``, ``mean``, ``std``, ``num_images``), or None when
        no built neuron has statistics.
    """
    ids, means, stds, counts = [], [], [], []
    for neuron_id in assets.built_neurons(cache_dir):
        summary = assets.read_summary(cache_dir, *zoo.split_neuron_id(neuron_id)) or {}
        stats = summary.get("natural_stats")
        if stats:
            ids.append(neuron_id)
            means.append(stats["mean"])
            stds.append(stats["std"])
            counts.append(stats["num_images"])
    if not ids:
        return None
    order = {nid: i for i, nid in enumerate(zoo.model_neuron_ids())}
    rows = sorted(zip(ids, means, stds, counts, strict=True), key=lambda r: order[r[0]])
    payload = {"neuron_ids": [r[0] for r in rows], "mean": [r[1] for r in rows],
               "std": [r[2] for r in rows], "num_images": [r[3] for r in rows]}
    assets.write_json(Path(cache_dir) / "population_stats.json", payload)
    return payload
