"""Precomputed explorer assets: what ``v4compact site build`` writes and the server reads.

Everything is computed by the public library (models from the registry, rankings from
``synthesis.natural.rank_images``, preferred stimuli from ``synthesis.synthesize``, the
metric from ``metrics.raw_r2``, session figures from ``figures.session.plot_session``); this
module only decides what to compute, stores it, and skips what is already there.

Layout of the cache directory::

    neurons/<session>_<index>/summary.json        card, metric, rankings, preferred list
    neurons/<session>_<index>/heldout.json        measured vs predicted on held-out images
    neurons/<session>_<index>/preferred_<k>.png   synthesized preferred image of start k
    sessions/<session>.png                        session figure
    population_stats.json                         mean/s.d. of each neuron's predictions

Each neuron's entries carry two keys: ``model_key`` (hash of the model file) for what
depends only on the model and the data, and ``synthesis_key`` (model hash plus synthesis
settings) for the preferred images. A rebuild skips every part whose key is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import config
from ..data import paths
from ..data.catalog import MODEL_SESSIONS, session_info
from ..data.registry import file_sha256
from ..errors import InvalidInputError
from ..models import zoo
from .state import LOAD_ERRORS, check_neuron_files, model_neuron_ids, parse_neuron

#: Bump when the layout or content of the assets changes, so old caches rebuild.
ASSET_VERSION = 2
_DIR_RE = re.compile(r"^([0-9]{6})_([0-9]{1,4})$")


@dataclass(frozen=True)
class SiteSettings:
    """Settings of a site build (recorded with the assets; part of the synthesis key).

    Attributes:
        steps: synthesis steps per preferred image.
        seeds: random starts (preferred images) per neuron.
        preset: synthesis preset name.
        seed: run seed of the synthesis.
        num_natural: top and bottom natural images kept per ranking.
        stats_images: held-out images per session used for the population statistics.
        max_heldout_images: use only the first this many held-out images for the scatter,
            the metric and the rankings (None: all; small values make quick test builds).
    """

    steps: int = 200
    seeds: int = 3
    preset: str = "upstream"
    seed: int = 0
    num_natural: int = 8
    stats_images: int = 200
    max_heldout_images: int | None = None

    def synthesis_part(self) -> dict:
        """The settings that change the preferred images."""
        return {"steps": self.steps, "seeds": self.seeds, "preset": self.preset, "seed": self.seed}


@dataclass
class BuildReport:
    """What a site build did: neuron ids built, skipped (already current) and failed."""

    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    sessions_built: list[int] = field(default_factory=list)
    stats_built: bool = False

    def summary(self) -> str:
        """One line for the command line."""
        return (
            f"{len(self.built)} neurons built, {len(self.skipped)} already current, "
            f"{len(self.failed)} failed; {len(self.sessions_built)} session figures; "
            f"population statistics {'built' if self.stats_built else 'current'}"
        )


# --- reading ------------------------------------------------------------------------------
def neuron_dir(cache_dir: Path, session_id: int, neuron: int) -> Path:
    """The asset folder of one neuron (ids validated, never a user path)."""
    sid, idx = parse_neuron(session_id, neuron)
    return Path(cache_dir) / "neurons" / f"{sid}_{idx}"


def read_summary(cache_dir: Path, session_id: int, neuron: int) -> dict | None:
    """A neuron's ``summary.json``, or None when it was not built."""
    path = neuron_dir(cache_dir, session_id, neuron) / "summary.json"
    return _read_json(path)


def read_heldout(cache_dir: Path, session_id: int, neuron: int) -> dict | None:
    """A neuron's held-out points (``image_indices``, ``measured``, ``predicted``), or None."""
    return _read_json(neuron_dir(cache_dir, session_id, neuron) / "heldout.json")


def preferred_path(cache_dir: Path, session_id: int, neuron: int, start: int) -> Path:
    """The PNG of one preferred image (start index validated by the caller)."""
    return neuron_dir(cache_dir, session_id, neuron) / f"preferred_{int(start)}.png"


def session_figure_path(cache_dir: Path, session_id: int) -> Path:
    """The cached session figure of a (validated) session id."""
    sid = session_info(session_id).session_id
    return Path(cache_dir) / "sessions" / f"{sid}.png"


def built_neurons(cache_dir: Path) -> list[str]:
    """Neuron ids with a ``summary.json`` in the cache."""
    root = Path(cache_dir) / "neurons"
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        match = _DIR_RE.match(entry.name)
        if match and (entry / "summary.json").is_file():
            out.append(f"{match.group(1)}/{match.group(2)}")
    return sorted(out)


def population_stats(cache_dir: Path) -> dict[str, tuple[float, float]] | None:
    """Per neuron ``(mean, s.d.)`` of predicted responses to natural images, or None."""
    data = _read_json(Path(cache_dir) / "population_stats.json")
    if not data:
        return None
    return {nid: (float(m), float(s)) for nid, m, s in zip(
        data["neuron_ids"], data["mean"], data["std"], strict=True
    )}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # write-then-rename, so a reader never sees half a file
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as fh:
        json.dump(payload, fh)
        tmp = fh.name
    os.replace(tmp, path)


# --- keys ---------------------------------------------------------------------------------
@lru_cache(maxsize=512)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    # keyed by size and modification time: a replaced model file is hashed again
    return file_sha256(path)


def model_key(session_id: int, neuron: int, data_dir=None) -> str:
    """Hash identifying a neuron's compact model file (and the asset version)."""
    path, _ = zoo.COMPACT.local_files(zoo.COMPACT.format_id(session_id, neuron), data_dir)
    stat = path.stat()
    return f"v{ASSET_VERSION}-{_file_hash(str(path), stat.st_size, stat.st_mtime_ns)[:16]}"


def synthesis_key(model_hash: str, settings: SiteSettings) -> str:
    """Hash of a model key and the synthesis settings."""
    text = json.dumps({"model": model_hash, **settings.synthesis_part()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- building -----------------------------------------------------------------------------
def select_neurons(neurons: Iterable[str] | None) -> list[str]:
    """Validate a neuron subset (``"session/index"`` or a whole session ``"201025"``)."""
    if neurons is None:
        return model_neuron_ids()
    out: list[str] = []
    for item in neurons:
        item = str(item).strip()
        if not item:
            continue
        if "/" in item:
            sid, idx = parse_neuron(*item.split("/", 1))
            out.append(f"{sid}/{idx}")
        else:
            out.extend(zoo.session_neuron_ids(item))
    if not out:
        raise InvalidInputError("no neurons selected; give ids like 201025/10 or a session id")
    return list(dict.fromkeys(out))


def _session_collection(session_id: int, data_dir):
    from ..data.session import load_session
    from ..synthesis.natural import ImageCollection

    session = load_session(session_id, data_dir=data_dir)
    if not session.has_images:
        return session, None
    images = np.asarray(session.images)
    names = [f"image{i + 1:04d}" for i in range(session.num_images)]
    return session, ImageCollection(images, f"session:{session_id}", names, session=session)


def build_heldout(
    model, session, collection, num_natural: int, max_images: int | None = None,
    data_dir=None, device: str = "cpu",
) -> dict:
    """Held-out score, scatter points and natural-image rankings of one neuron.

    The score is :func:`v4compact.evaluate` of the neuron's model id on its session (the
    held-out half, the metric it chooses, a bootstrap 95% interval), so the page shows the
    number ``v4compact evaluate`` prints. The points and rankings come from
    :func:`v4compact.synthesis.natural.rank_images`; predictions are given in the model's
    z-scored units and, mapped by :func:`v4compact.models.calibration.fit_calibration`
    (fitted on the session's first half), in spikes per 100 ms next to the measured spike
    counts.

    Args:
        model: the neuron's compact model.
        session: its recording session.
        collection: the session's images as an ``ImageCollection``.
        num_natural: photos kept per ranking.
        max_images: draw and rank only the first this many held-out photos (None: all);
            the score always uses the whole held-out half.
        data_dir: data directory.
        device: torch device.

    Returns:
        ``{"heldout": {...}, "points": {...}, "natural": {...}, "calibration": {...} | None}``.
    """
    from ..evaluation import METRIC_LABELS, evaluate
    from ..synthesis.natural import rank_images

    _, heldout = session.heldout_split()
    if max_images is not None:
        heldout = heldout[:max_images]
    ranking = rank_images(model, collection, neuron=0, indices=heldout)
    predicted = np.asarray(ranking.predicted, dtype=np.float64)
    measured = np.asarray(ranking.measured, dtype=np.float64)
    calibration = _fit_calibration(model, data_dir, device)
    spikes = None if calibration is None else calibration.apply(predicted).astype(np.float64)
    score = evaluate(model.model_id, sessions=[session.session_id], data_dir=data_dir,
                     device=device, progress=False).scores[0]

    def entries(order: np.ndarray, k: int) -> list[dict]:
        return [
            {
                "image": int(heldout[i]),
                "measured": float(measured[i]),
                "predicted": float(predicted[i]),
                "predicted_spikes": None if spikes is None else float(spikes[i]),
            }
            for i in order[:k]
        ]

    natural = {
        "top_predicted": entries(ranking.order, num_natural),
        "bottom_predicted": entries(ranking.order[::-1], num_natural),
        "top_measured": entries(ranking.measured_order, num_natural),
        "bottom_measured": entries(ranking.measured_order[::-1], num_natural),
    }
    return {
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
            "image_indices": [int(i) for i in heldout],
            "measured": [round(float(v), 5) for v in measured],
            "predicted": [round(float(v), 5) for v in predicted],
            "predicted_spikes": None if spikes is None else [round(float(v), 5) for v in spikes],
        },
        "natural": natural,
        "calibration": None if calibration is None else {
            "slope": float(np.asarray(calibration.slope).reshape(-1)[0]),
            "intercept": float(np.asarray(calibration.intercept).reshape(-1)[0]),
        },
    }


def _fit_calibration(model, data_dir, device: str):
    """The neuron's z-scored -> spikes per 100 ms map, or None without the fit-half photos."""
    from ..errors import DataNotFoundError
    from ..models.calibration import fit_calibration

    try:
        return fit_calibration(model, data_dir=data_dir)
    except DataNotFoundError:
        return None


def build_preferred(model, out_dir: Path, settings: SiteSettings, device: str) -> list[dict]:
    """Synthesize a neuron's preferred images with :func:`v4compact.synthesis.synthesize`.

    Returns:
        One ``{"start", "response", "file"}`` per random start; the PNGs are written to
        ``out_dir``.
    """
    from PIL import Image

    from ..synthesis import synthesize

    result = synthesize(
        model,
        neurons=[0],
        seeds=settings.seeds,
        preset=settings.preset,
        steps=settings.steps,
        seed=settings.seed,
        device=device,
        progress=False,
    )
    out = []
    for start in range(settings.seeds):
        name = f"preferred_{start}.png"
        Image.fromarray(result.images[start]).save(out_dir / name)
        out.append(
            {"start": start, "response": float(result.target_responses[start]), "file": name}
        )
    return out


def build_session_figure(session_id: int, cache_dir: Path, data_dir=None) -> Path:
    """Draw a session figure with the library and save it into the cache; returns the path."""
    from ..data.session import load_session
    from ..figures.session import plot_session

    path = session_figure_path(cache_dir, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_session(load_session(session_id, data_dir=data_dir))
    # a unique temporary name: two requests may draw the same figure at once
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as fh:
        figure.savefig(fh, format="png", dpi=80)
        tmp = fh.name
    os.replace(tmp, path)
    return path


def build_population_stats(cache_dir: Path, data_dir, settings: SiteSettings, device: str):
    """Mean and s.d. of every neuron's predicted response to held-out natural images.

    Uses the first ``settings.stats_images`` held-out images of each model session that has
    its images in the data directory, and the library's population model of every neuron
    whose model files are present and intact (see :func:`~v4compact.web.state.check_neuron_files`).
    """
    from ..data.session import load_session
    from ..models.registry import load_compact_population

    images = []
    for sid in MODEL_SESSIONS:
        session = load_session(sid, data_dir=data_dir)
        if session.has_images:
            _, heldout = session.heldout_split()
            images.append(np.asarray(session.images[heldout[: settings.stats_images]]))
    usable = [nid for nid in model_neuron_ids()
              if check_neuron_files(data_dir, *zoo.split_neuron_id(nid)).ok]
    if not images or not usable:
        return None
    model = load_compact_population(neurons=usable, device=device, data_dir=data_dir)
    predicted = np.asarray(model.predict(np.concatenate(images), device=device))
    payload = {
        "neuron_ids": list(model.neuron_ids),
        "mean": predicted.mean(axis=0).tolist(),
        "std": predicted.std(axis=0).tolist(),
        "num_images": int(predicted.shape[0]),
    }
    _write_json(Path(cache_dir) / "population_stats.json", payload)
    return payload


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
) -> BuildReport:
    """Precompute the explorer's assets into ``cache_dir``, skipping what is current.

    Args:
        cache_dir: output folder (created if needed).
        data_dir: data directory (default: the package setting).
        neurons: neuron ids (``"201025/10"``) or session ids (``"201025"``); default all 219.
        settings: synthesis and ranking settings.
        device: torch device for the models.
        sessions: also draw the session figures (all 50 sessions).
        population: also compute the population statistics (all 219 neurons on
            ``settings.stats_images`` photos per session) used to compare neurons on the
            "Try your image" page.
        force: rebuild even what is current.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`BuildReport`. A neuron that fails (e.g. a missing file) is reported in
        ``failed`` with its one-line error and the build goes on.
    """
    from tqdm.auto import tqdm

    from ..errors import V4CompactError
    from ..models.registry import load_compact_model

    settings = settings or SiteSettings()
    cache = Path(cache_dir).expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    data_dir = config.data_dir(data_dir)
    selected = select_neurons(neurons)
    report = BuildReport()
    collections: dict[int, tuple] = {}

    bar = tqdm(selected, desc="site build", unit="neuron", disable=not progress)
    for neuron_id in bar:
        bar.set_postfix_str(neuron_id)
        sid, idx = zoo.split_neuron_id(neuron_id)
        health = check_neuron_files(data_dir, sid, idx)
        if not health.ok:
            report.failed[neuron_id] = health.problem
            continue
        try:
            changed = _build_neuron(
                cache, data_dir, sid, idx, settings, device, force, collections,
                load_compact_model,
            )
        except LOAD_ERRORS as err:  # a file that passed its checksum and still fails
            report.failed[neuron_id] = str(err).splitlines()[0] if str(err) else repr(err)
            continue
        (report.built if changed else report.skipped).append(neuron_id)
    collections.clear()

    stats_path = cache / "population_stats.json"
    if population and (force or not stats_path.is_file()):
        try:
            stats = build_population_stats(cache, data_dir, settings, device)
        except V4CompactError as err:
            report.failed["population statistics"] = str(err)
        else:
            report.stats_built = stats is not None
    if sessions:
        from ..data.catalog import list_sessions

        todo = [
            s.session_id for s in list_sessions()
            if force or not session_figure_path(cache, s.session_id).is_file()
        ]
        for sid in tqdm(todo, desc="session figures", unit="session", disable=not progress):
            try:
                build_session_figure(sid, cache, data_dir)
            except V4CompactError as err:
                report.failed[f"session {sid}"] = str(err)
                continue
            report.sessions_built.append(sid)
    _write_json(cache / "site.json", {"asset_version": ASSET_VERSION, "settings": asdict(settings)})
    return report


def _build_neuron(cache, data_dir, sid, idx, settings, device, force, collections, loader):
    out_dir = neuron_dir(cache, sid, idx)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = _read_json(out_dir / "summary.json") or {}
    file_key = model_key(sid, idx, data_dir)
    mkey = file_key
    if settings.max_heldout_images is not None:
        mkey += f"-h{settings.max_heldout_images}"
    skey = synthesis_key(file_key, settings)
    need_model_part = force or summary.get("model_key") != mkey
    need_synthesis = (
        force
        or summary.get("synthesis_key") != skey
        or not all((out_dir / p["file"]).is_file() for p in summary.get("preferred", []))
    )
    if not (need_model_part or need_synthesis):
        return False
    model = loader(sid, idx, device=device, data_dir=data_dir).eval()
    info = session_info(sid)
    summary.update(
        {
            "neuron_id": f"{sid}/{idx}",
            "session_id": sid,
            "neuron": idx,
            "animal": info.animal,
            "num_filters": [int(n) for n in model.num_filters],
            "num_parameters": int(model.num_parameters),
        }
    )
    if need_model_part:
        if sid not in collections:
            collections.clear()  # one session's images in memory at a time
            collections[sid] = _session_collection(sid, data_dir)
        session, collection = collections[sid]
        if collection is None:
            summary["heldout"] = None
            summary["natural"] = None
            summary["calibration"] = None
            summary["heldout_note"] = (
                f"the photos of session {sid} are not in the explorer's data directory, so "
                "this neuron has no score or photo rankings here; fetch them with: "
                f"{paths.fetch_command(f'images:{sid}')}"
            )
            (out_dir / "heldout.json").unlink(missing_ok=True)
        else:
            part = build_heldout(
                model, session, collection, settings.num_natural, settings.max_heldout_images,
                data_dir=data_dir, device=device,
            )
            _write_json(out_dir / "heldout.json", part["points"])
            summary["heldout"] = part["heldout"]
            summary["natural"] = part["natural"]
            summary["calibration"] = part["calibration"]
            summary.pop("heldout_note", None)
        summary["model_key"] = mkey
    if need_synthesis:
        summary["preferred"] = build_preferred(model, out_dir, settings, device)
        summary["synthesis_settings"] = settings.synthesis_part()
        summary["synthesis_key"] = skey
    _write_json(out_dir / "summary.json", summary)
    return True
