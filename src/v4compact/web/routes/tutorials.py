"""``/api/tutorials``: the notebooks of ``notebooks/``, reduced to cells the page renders."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, HTTPException, Request

from ...config import NO_PUBLIC_COPY, colab_url
from ..schemas import Tutorial, TutorialCell, TutorialSummary
from .deps import explorer

router = APIRouter(prefix="/api/tutorials", tags=["tutorials"])

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,80}$")
#: Largest text output kept per cell (characters) and largest image (base64 characters).
MAX_TEXT = 4000
MAX_IMAGE = 2_000_000


def _notebooks(request: Request) -> dict[str, object]:
    folder = explorer(request).notebooks_dir
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.ipynb")) if _NAME_RE.match(p.stem)}


def _read(path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise HTTPException(500, f"notebook {path.name} is not valid JSON") from None


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def _title(notebook: dict, name: str) -> str:
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _text(cell.get("source")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return name.replace("_", " ")


def _summary(request: Request, name: str, notebook: dict) -> TutorialSummary:
    url = colab_url(name, explorer(request).repo_url) if explorer(request).repo_url else None
    return TutorialSummary(
        name=name,
        title=_title(notebook, name),
        colab_url=url,
        repository_note="" if url else NO_PUBLIC_COPY,
    )


def _outputs(cell: dict) -> list[dict]:
    out = []
    for item in cell.get("outputs", []):
        data = item.get("data", {})
        if "image/png" in data and len(_text(data["image/png"])) <= MAX_IMAGE:
            out.append({"kind": "image", "png": _text(data["image/png"]).replace("\n", "")})
        elif "text/plain" in data:
            out.append({"kind": "text", "text": _text(data["text/plain"])[:MAX_TEXT]})
        elif item.get("output_type") == "stream":
            out.append({"kind": "text", "text": _text(item.get("text"))[:MAX_TEXT]})
    return out


@router.get("", response_model=list[TutorialSummary])
def tutorials(request: Request) -> list[TutorialSummary]:
    """The tutorial notebooks (possibly none), each with an "open in Colab" link."""
    return [_summary(request, name, _read(path)) for name, path in _notebooks(request).items()]


@router.get("/{name}", response_model=Tutorial)
def tutorial(request: Request, name: str) -> Tutorial:
    """One notebook's markdown and code cells (and their saved text/PNG outputs)."""
    books = _notebooks(request)
    if name not in books:  # only names listed from the folder; never a user-built path
        raise HTTPException(404, f"no tutorial named {name[:40]!r}; see /api/tutorials")
    notebook = _read(books[name])
    cells = [
        TutorialCell(
            kind=cell.get("cell_type", "code"),
            source=_text(cell.get("source")),
            outputs=_outputs(cell) if cell.get("cell_type") == "code" else [],
        )
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") in ("markdown", "code")
    ]
    return Tutorial(**_summary(request, name, notebook).model_dump(), cells=cells)
