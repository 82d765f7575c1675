"""Save a :class:`~v4compact.synthesis.render.SynthesisResult` next to its provenance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["image_name", "save_result"]


def image_name(result, index: int, prefix: str = "image") -> str:
    """File name of image ``index``: ``image_<target>_s<start>.png`` or ``image_<index>.png``."""
    if result.target_ids is None:
        return f"{prefix}_{index:04d}.png"
    target = str(result.target_ids[index]).replace("/", "-")
    start = index if result.start_index is None else result.start_index[index]
    return f"{prefix}_{target}_s{start}.png"


def save_result(result, out_dir, prefix: str = "image") -> list[Path]:
    """Write the images as PNGs plus ``responses.csv``, ``responses.json``, ``provenance.json``.

    Args:
        result: a synthesis result.
        out_dir: output folder (created if needed).
        prefix: PNG file-name prefix.

    Returns:
        The paths written, PNGs first.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    rows = result.rows()
    for i, img in enumerate(np.asarray(result.images)):
        path = out / image_name(result, i, prefix)
        Image.fromarray(img).save(path)
        rows[i]["file"] = path.name
        written.append(path)
    csv_path = out / "responses.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    json_path = out / "responses.json"
    json_path.write_text(json.dumps(rows, indent=1))
    prov_path = out / "provenance.json"
    prov = dict(result.provenance)
    prov["files"] = [p.name for p in written]
    prov_path.write_text(json.dumps(prov, indent=1, default=str))
    return written + [csv_path, json_path, prov_path]
