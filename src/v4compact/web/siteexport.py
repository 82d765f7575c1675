"""``v4compact site export``: the explorer as a static website whose models run in the page.

The export *freezes* the served explorer: it starts the explorer on a free loopback port,
asks it every GET route the pages need (the gallery, each neuron's page and network, the
sessions, the tutorials, the synthesis options) and writes each answer to a file whose path
mirrors the route (``/api/neurons/201025/10`` -> ``data/neurons/201025/10.json``). So the
static site shows exactly what the server shows, from the same page code (``static/app.js``):
``static/site.js`` answers the page's API calls from those files and computes what the server
would compute - predictions, activation maps, filter ablations, synthesis - in the visitor's
browser with TensorFlow.js (``static/v4runtime.js``, ``static/v4synth.js``, ``static/vendor/``)
from per-model weights (:mod:`.browser_weights`) and the sessions' held-out photos.

Layout of the export (every URL inside it is relative, so it works under any sub-path)::

    index.html                      the explorer's page, static mode
    static/                         app.js, style.css, site.js, the runtime, vendor/ (tf.js)
    data/site.json                  what was exported, with which settings and versions
    data/neurons.json, data/made.json, data/sessions.json, data/tutorials.json, ...
    data/neurons/<session>/<neuron>.json, .../network.json, .../preferred/<start>.png
    data/sessions/<session>.json, .../figure.png, .../images/<index>.png
    data/models/<session>/<neuron>.json + .bin     weights, batch norm folded
    data/heldout/<session>.json + .bin             held-out photos (uint8) and responses
    data/tutorials/<name>.json, <name>.ipynb       the notebooks, rendered and to download
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, config
from ..errors import InvalidInputError
from ..models import zoo

__all__ = ["ExportReport", "export_site", "write_runtime_page"]

#: Files of the page code copied from the package's ``static/`` folder (besides ``vendor/``).
STATIC_FILES = ("app.js", "style.css", "favicon.svg", "site.js", "v4runtime.js", "v4synth.js")
#: Photos of 201025 offered on "Try your image" (app.js's pick list; frozen so they load).
TRY_PHOTOS = (0, 7, 42, 99, 150, 333, 512, 777)
#: Format version of ``data/site.json`` (site.js refuses other versions).
SITE_FORMAT = 1


@dataclass
class ExportReport:
    """What one export wrote.

    Attributes:
        out: the export folder.
        neurons: the neuron ids exported.
        made: the made models exported (``serve --made`` ids).
        files: number of files written.
        bytes: their total size.
        seconds: wall time per stage.
    """

    out: Path
    neurons: list[str]
    made: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for the command line."""
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        made = f" and {len(self.made)} made models" if self.made else ""
        return (f"exported {len(self.neurons)} neurons{made} to {self.out}: {self.files} files, "
                f"{self.bytes / 1e6:.1f} MB ({stages}); serve it with: python -m http.server "
                f"--directory {self.out}")


def select_neurons(neurons: Sequence[str] | None = None,
                   sessions: Sequence[str | int] | None = None) -> list[str]:
    """The release neurons to export: ``neurons`` (ids, or session ids for all of theirs) and
    every neuron of ``sessions``; all 219 when both are None. Canonical order.

    Raises:
        InvalidInputError: an id that is not a modelled neuron or session.
    """
    everything = zoo.model_neuron_ids()
    if neurons is None and sessions is None:
        return everything
    wanted: set[str] = set()
    for item in [*(neurons or []), *(sessions or [])]:
        text = str(item)
        if "/" in text:
            sid, idx = zoo.check_neuron(*text.split("/", 1))
            wanted.add(f"{sid}/{idx}")
        else:
            matched = [n for n in everything if n.split("/")[0] == text]
            if not matched:
                known = ", ".join(sorted({n.split("/")[0] for n in everything}))
                raise InvalidInputError(f"session {text!r} has no compact models; give one of "
                                        f"{known}")
            wanted.update(matched)
    return [n for n in everything if n in wanted]


class _Freezer:
    """Writes the answers of a running explorer's GET routes under ``out/data``."""

    def __init__(self, url: str, out: Path):
        self.url = url
        self.out = out
        self.files = 0

    def fetch(self, route: str) -> bytes:
        with urllib.request.urlopen(self.url + route, timeout=600) as response:  # noqa: S310
            return response.read()

    def json(self, route: str, transform=None):
        """GET ``route`` (``/api/...``), write it as ``data/....json``; returns the value."""
        value = json.loads(self.fetch(route))
        if transform is not None:
            value = transform(value)
        self.write(data_path(route, ".json"), json.dumps(value, separators=(",", ":")))
        return value

    def file(self, route: str) -> None:
        """GET ``route`` (a PNG ...) and write it as ``data/...`` under the same name."""
        self.write(data_path(route), self.fetch(route))

    def write(self, relative: str, content: str | bytes) -> None:
        path = self.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        self.files += 1


def data_path(route: str, suffix: str = "") -> str:
    """``/api/neurons/201025/10`` -> ``data/neurons/201025/10`` + ``suffix`` (site.js maps
    routes to files by the same rule)."""
    if not route.startswith("/api/"):
        raise ValueError(f"not an API route: {route}")
    return "data/" + file_name(route[len("/api/"):]) + suffix


def file_name(text: str) -> str:
    """``text`` (a route, or a user session id) as a file or folder name: the colon of
    ``dataset:session`` becomes ``@`` (site.js maps names by the same rule)."""
    return str(text).replace(":", "@")


def _map_leaves(value, leaf):
    """``value`` (decoded JSON) with every leaf replaced by ``leaf(leaf_value)``."""
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    return leaf(value)


def _drawing(value, digits: int = 4):
    """A network drawing with its weights to ``digits`` significant digits (they only set
    colours on the page): the frozen files shrink by half."""
    return _map_leaves(value, lambda v: float(f"{v:.{digits}g}") if isinstance(v, float) else v)


def _relative_urls(value):
    """Every ``/api/...`` URL inside a frozen answer made relative to the site's root."""
    return _map_leaves(value, lambda v: data_path(v)
                       if isinstance(v, str) and v.startswith("/api/") else v)


def export_site(out: str | os.PathLike, *, data_dir=None, cache_dir=None,
                neurons: Sequence[str] | None = None,
                sessions: Sequence[str | int] | None = None,
                made: Iterable[str | os.PathLike] = (), notebooks_dir=None,
                repo_url: str | None = None, build: bool = True, settings=None,
                progress: bool = True) -> ExportReport:
    """Write the static explorer for some or all of the 219 neurons into ``out``.

    Args:
        out: the export folder (created; an existing export there is replaced, any other
            non-empty folder is refused).
        data_dir: the data directory.
        cache_dir: the asset cache of ``site build`` / ``serve`` (default: theirs); neurons
            not built there yet are built first (unless ``build`` is False).
        neurons, sessions: a subset (see :func:`select_neurons`); default all 219.
        made: ``make-compact`` run folders whose made models the site shows too.
        notebooks_dir: the tutorials (default: ``notebooks/`` of the checkout).
        repo_url: the public repository for "Open in Colab" and download links (default:
            :func:`v4compact.config.repository_url`; none: no Colab links).
        build: build the missing neurons' assets (else they are exported without pictures).
        settings: :class:`~v4compact.web.assets.SiteSettings` of that build.
        progress: print one line per stage.

    Returns:
        An :class:`ExportReport`.
    """
    from .app import create_app
    from .assets import SiteSettings, built_neurons
    from .server import running_server
    from .sitebuild import build_site
    from .state import default_cache_dir

    out = Path(out).expanduser().resolve()
    _check_target(out)
    vendor = _vendor_versions()  # before any work: an installation without the runtime stops
    chosen = select_neurons(neurons, sessions)
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir()
    data_dir = config.data_dir(data_dir)
    report = ExportReport(out=out, neurons=chosen)
    say = print if progress else (lambda *a, **k: None)
    clock = time.perf_counter()

    missing = sorted(set(chosen) - set(built_neurons(cache)))
    if build and missing:
        say(f"building the assets of {len(missing)} neurons first (site build)")
        built = build_site(cache, data_dir=data_dir, neurons=missing,
                           settings=settings or SiteSettings(), sessions=False,
                           progress=progress)
        if built.failed:
            say(f"warning: {len(built.failed)} neurons failed to build: "
                f"{', '.join(sorted(built.failed))}")
    report.seconds["build"] = time.perf_counter() - clock

    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    clock = time.perf_counter()
    app = create_app(data_dir=data_dir, cache_dir=cache, notebooks_dir=notebooks_dir,
                     repo_url=repo_url, made=made)
    with running_server(app) as url:
        freezer = _Freezer(url, staging)
        report.made = _freeze_pages(freezer, chosen, data_dir)
    report.seconds["pages"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _write_models(staging, chosen, app.state.explorer.made.values(), data_dir)
    _write_heldout(staging, chosen, report.made, data_dir)
    report.seconds["models"] = time.perf_counter() - clock

    _write_page_data(staging, cache)
    _write_page_code(staging, vendor["files"])
    _write_tutorials(staging, app.state.explorer.notebooks_dir)
    site = {"format": SITE_FORMAT, "v4compact": __version__, "neurons": chosen,
            "made": report.made, "repository": app.state.explorer.repo_url,
            "vendor": vendor["versions"]}
    (staging / "data" / "site.json").write_text(json.dumps(site, indent=1))
    (staging / ".nojekyll").write_text("")  # GitHub Pages: serve the files as they are
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    sizes = [p.stat().st_size for p in out.rglob("*") if p.is_file()]
    report.files, report.bytes = len(sizes), sum(sizes)
    say(report.summary())
    return report


def _card_thumbnail(freezer: _Freezer, card: dict) -> dict:
    """A gallery card whose picture is a small JPEG of its preferred image (3-4 kB instead of a
    28 kB PNG: the first view of the gallery stays under 2 MB)."""
    import io

    from PIL import Image

    url = card.get("preferred_url")
    if url:
        relative = data_path(url).rsplit(".", 1)[0] + ".card.jpg"
        with Image.open(io.BytesIO(freezer.fetch(url))) as image:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=85)
        freezer.write(relative, buffer.getvalue())
        card = {**card, "preferred_url": relative}
    return _relative_urls(card)


def _check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "data" / "site.json").is_file())):
        raise InvalidInputError(f"{out} exists and is not an earlier export; give an empty or "
                                "new folder to --out")


def _freeze_pages(freezer: _Freezer, chosen: list[str], data_dir: Path) -> list[str]:
    """Freeze every route the pages of ``chosen`` need; returns the made model ids."""
    from ..data import paths
    from ..data.catalog import list_sessions
    from ..data.datasets import RELEASE_DATASET

    keep = set(chosen)
    freezer.json("/api/neurons", lambda cards: [
        _card_thumbnail(freezer, c) for c in cards if c["neuron_id"] in keep])
    photos: dict[int, set[int]] = {201025: set(TRY_PHOTOS)}
    for neuron_id in chosen:
        sid, idx = neuron_id.split("/")
        detail = freezer.json(f"/api/neurons/{sid}/{idx}", _relative_urls)
        freezer.json(f"/api/neurons/{sid}/{idx}/network", _drawing)
        for item in detail.get("preferred") or []:
            freezer.file(f"/api/neurons/{sid}/{idx}/preferred/{item['seed']}.png")
        for rows in (detail.get("natural") or {}).values():
            photos.setdefault(int(sid), set()).update(int(r["image"]) for r in rows)
    made = freezer.json("/api/made")
    for card in made:
        freezer.json(f"/api/made/{card['session_id']}/{card['neuron']}")
        freezer.json(f"/api/made/{card['session_id']}/{card['neuron']}/network", _drawing)
    model_sessions = {int(n.split("/")[0]) for n in chosen}
    release = list_sessions(dataset=RELEASE_DATASET)
    figures = set()
    for info in release:
        has_images = (data_dir / paths.images_zip(info.session_id)).is_file()
        if info.session_id in model_sessions or has_images:
            figures.add(info.session_id)

    def session_urls(summary: dict) -> dict:
        if summary["session_id"] not in figures:
            summary["figure_url"] = None
        return _relative_urls(summary)

    freezer.json("/api/sessions", lambda rows: [session_urls(r) for r in rows])
    for info in release:
        freezer.json(f"/api/sessions/{info.session_id}", session_urls)
    for sid in sorted(figures):
        freezer.file(f"/api/sessions/{sid}/figure.png")
    for sid, indices in photos.items():
        if (data_dir / paths.images_zip(sid)).is_file():
            for index in sorted(indices):
                freezer.file(f"/api/sessions/{sid}/images/{index}.png")
    freezer.json("/api/synthesis/options")
    for book in freezer.json("/api/tutorials"):
        freezer.json(f"/api/tutorials/{book['name']}")
    return [card["neuron_id"] for card in made]


def _write_models(out: Path, chosen: list[str], made, data_dir: Path) -> None:
    """Weights of every exported model (``made``: the explorer's
    :class:`~v4compact.training.made.MadeModel` records), and ``data/models/index.json``."""
    from ..models.formats.loaders import load_compact_model
    from .browser_weights import write_browser_model

    index = []
    folder = out / "data" / "models"
    for neuron_id in chosen:
        sid, idx = neuron_id.split("/")
        model = load_compact_model(int(sid), int(idx), data_dir=data_dir)
        write_browser_model(model, folder / sid, idx)
        index.append({"neuron_id": neuron_id, "manifest": f"data/models/{sid}/{idx}.json"})
    for entry in made:
        stem = file_name(entry.session_id)
        write_browser_model(load_compact_model(entry.model_path), folder / "made" / stem,
                            str(entry.neuron))
        index.append({"neuron_id": entry.neuron_id, "made": True,
                      "manifest": f"data/models/made/{stem}/{entry.neuron}.json"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").write_text(json.dumps(index, separators=(",", ":")))


def _write_heldout(out: Path, chosen: list[str], made: list[str], data_dir: Path) -> None:
    """Per session with photos: the held-out photos (uint8 ``(N, 112, 112, 3)`` in
    ``.bin``) and the exported neurons' averaged responses on them (``.json``), for the
    page's own held-out R^2 (filter ablation)."""
    from ..data.session import load_session
    from ..errors import V4CompactError

    rows: dict[str, list[int]] = {}
    for neuron_id in [*chosen, *made]:
        session, _, index = neuron_id.rpartition("/")
        rows.setdefault(session, []).append(int(index))
    for session_id, neurons in rows.items():
        try:
            session = load_session(session_id, data_dir=data_dir)
            if not session.has_images:
                continue
            _, heldout = session.heldout_split()
            images = np.ascontiguousarray(session.images[heldout], dtype=np.uint8)
        except V4CompactError:
            continue
        stem = file_name(session_id)
        folder = out / "data" / "heldout"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.bin").write_bytes(images.tobytes())
        responses = session.responses[:, heldout]
        meta = {"session_id": str(session_id), "image_indices": heldout.tolist(),
                "shape": list(images.shape), "dtype": "uint8", "units": session.units,
                "responses": {str(k): np.asarray(responses[k], dtype=np.float64).tolist()
                              for k in sorted(set(neurons))}}
        (folder / f"{stem}.json").write_text(json.dumps(meta, separators=(",", ":")))


def _write_page_data(out: Path, cache: Path) -> None:
    """What the page computes with: the synthesis presets the in-page synthesis implements
    (``data/synthesis/presets.json``) and the neurons' usual response range to natural photos
    (``data/population_stats.json``, for "Try your image" z-scores; absent before a build)."""
    from .assets import population_stats
    from .browser_presets import preset_table

    (out / "data" / "synthesis").mkdir(parents=True, exist_ok=True)
    (out / "data" / "synthesis" / "presets.json").write_text(json.dumps(preset_table()))
    stats = population_stats(cache)
    if stats:
        (out / "data" / "population_stats.json").write_text(json.dumps(stats))


def _static_dir() -> Path:
    from .app import STATIC_DIR

    return STATIC_DIR


def _vendor_versions() -> dict:
    """``vendor/versions.json``: the runtime's files and the npm packages' versions."""
    path = _static_dir() / "vendor" / "versions.json"
    if not path.is_file():
        raise InvalidInputError(
            f"the static site's JavaScript runtime is missing ({path}); this installation was "
            "built without it: run 'make vendor' in the source checkout, or install a wheel")
    return json.loads(path.read_text())


def _copy_vendor(target: Path, vendor_files: list[str]) -> None:
    """The vendored TensorFlow.js files and their ``versions.json`` into ``target/vendor/``."""
    (target / "vendor").mkdir(parents=True, exist_ok=True)
    for name in [*vendor_files, "versions.json"]:
        shutil.copyfile(_static_dir() / "vendor" / name, target / "vendor" / name)


def write_runtime_page(folder: str | os.PathLike, title: str, script: str = "") -> Path:
    """A bare page that loads the in-page model runtime and nothing else: TensorFlow.js (the
    vendored scripts, in the order of ``vendor/versions.json``) and ``v4runtime.js``, copied
    to ``folder/static/``, as the exported site's pages load them. The browser tests and
    ``benchmarks/bench_browser.py`` drive the runtime through it.

    Args:
        folder: where ``index.html`` and ``static/`` are written (created if missing).
        title: the page's title and body text.
        script: JavaScript run after the runtime has loaded (e.g. helpers a test calls).

    Returns:
        The path of ``index.html``.

    Raises:
        InvalidInputError: an installation without the vendored runtime (``make vendor``).
    """
    folder = Path(folder)
    vendor_files = _vendor_versions()["files"]
    target = folder / "static"
    _copy_vendor(target, vendor_files)
    shutil.copyfile(_static_dir() / "v4runtime.js", target / "v4runtime.js")
    scripts = [f"vendor/{name}" for name in vendor_files if name.endswith(".js")]
    tags = "".join(f'<script src="static/{name}"></script>\n'
                   for name in [*scripts, "v4runtime.js"])
    inline = f'<script>\n"use strict";\n{script}\n</script>\n' if script else ""
    page = folder / "index.html"
    page.write_text(f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title>\n'
                    f'<link rel="icon" href="data:,">\n{tags}{inline}</head>'
                    f"<body>{title}</body></html>\n")
    return page


def _write_page_code(out: Path, vendor_files: list[str]) -> None:
    """``index.html`` in static mode and the page code, runtime and vendor files."""
    static = _static_dir()
    target = out / "static"
    _copy_vendor(target, vendor_files)
    for name in STATIC_FILES:
        shutil.copyfile(static / name, target / name)
    html = (static / "index.html").read_text()
    # site.js loads the runtime (vendor/, v4runtime.js, v4synth.js) when first needed
    scripts = '  <script src="static/site.js" defer></script>\n'
    html = html.replace('href="/static/', 'href="static/').replace('src="/static/', 'src="static/')
    html = html.replace('  <script src="static/app.js" defer></script>\n',
                        scripts + '  <script src="static/app.js" defer></script>\n')
    if "static/site.js" not in html:
        raise RuntimeError("index.html changed: the static site's scripts were not inserted")
    (out / "index.html").write_text(html)


def _write_tutorials(out: Path, notebooks_dir: Path) -> None:
    """The notebooks themselves, for the tutorial pages' download links."""
    folder = out / "data" / "tutorials"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if (folder / f"{path.stem}.json").is_file():
            shutil.copyfile(path, folder / path.name)
