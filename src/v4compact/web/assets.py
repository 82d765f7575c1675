"""Precomputed explorer assets: the layout of the asset cache, its readers and writers.

What is computed, and how, is :mod:`v4compact.web.sitebuild` (``v4compact site build`` and
the server's background builder): the public library does the work (models from the
registry, scores by the evaluation's code, rankings from ``synthesis.natural``, preferred
stimuli from ``synthesis.synthesize``, session figures from ``figures.session.plot_session``).
This module decides where everything is stored, writes every file atomically, and keys what
is current.

Layout of the cache directory::

    neurons/<session>_<index>/summary.json        card, metric, rankings, preferred list,
                                                  natural-photo statistics (written last)
    neurons/<session>_<index>/heldout.json        measured vs predicted on held-out images
    neurons/<session>_<index>/preferred_<k>.png   synthesized preferred image of start k
    sessions/<session>.png                        session figure
    population_stats.json                         mean/s.d. of each neuron's predictions

Every file is written to a temporary name in its folder and renamed into place, and a
neuron's ``summary.json`` is written after its other files: a neuron is built exactly when
its ``summary.json`` exists, and a killed build leaves no half-written file under a served
name. Each neuron's entries carry two keys: ``model_key`` (hash of the model file) for what
depends only on the model and the data, and ``synthesis_key`` (model hash plus synthesis
settings) for the preferred images. A rebuild skips every part whose key is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.catalog import session_info
from ..data.registry import file_sha256
from ..errors import InvalidInputError
from ..files import atomic_write
from ..models import zoo
from .state import model_neuron_ids, parse_neuron

#: Bump when the layout or content of the assets changes, so old caches rebuild.
ASSET_VERSION = 3
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

    steps: int = 100
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


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON atomically (a temporary file in the same folder, renamed).

    A reader, or a build killed half-way, never sees half a file.
    """
    with atomic_write(path, "w") as fh:
        json.dump(payload, fh)


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 ``(H, W, 3)`` pixels as a PNG atomically (like :func:`write_json`)."""
    from PIL import Image

    with atomic_write(path, "wb") as fh:
        Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(fh, format="png")


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


def build_session_figure(session_id: int, cache_dir: Path, data_dir=None) -> Path:
    """Draw a session figure with the library and save it into the cache; returns the path."""
    from ..data.session import load_session
    from ..figures.session import plot_session

    path = session_figure_path(cache_dir, session_id)
    figure = plot_session(load_session(session_id, data_dir=data_dir))
    # a unique temporary name: two requests may draw the same figure at once
    with atomic_write(path, "wb") as fh:
        figure.savefig(fh, format="png", dpi=80)
    return path
