"""A small result table (list of row dicts) with CSV export, and the experiment result."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ExperimentResult", "Table"]


@dataclass
class Table:
    """Rows of an experiment, one dict per row, all with the same keys.

    Attributes:
        rows: the rows.
        name: what the table holds (used as a default file name).
    """

    rows: list[dict]
    name: str = "table"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        """Column names (the keys of the first row)."""
        return list(self.rows[0]) if self.rows else []

    def column(self, name: str) -> np.ndarray:
        """One column as a numpy array."""
        return np.asarray([row[name] for row in self.rows])

    def to_csv(self, path) -> Path:
        """Write the table as CSV; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        return path


@dataclass
class ExperimentResult:
    """An in-silico experiment's outcome.

    Attributes:
        table: per-stimulus (x neuron) responses.
        summary: per-neuron summary rows.
        figure: a :class:`matplotlib.figure.Figure`.
        images: the stimuli shown, uint8 ``(N, 112, 112, 3)`` (may be None).
        info: parameters of the run (for provenance).
    """

    table: Table
    summary: Table
    figure: object
    images: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def save(self, out_dir, stem: str) -> list[Path]:
        """Write ``<stem>.csv``, ``<stem>_summary.csv`` and ``<stem>.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [self.table.to_csv(out / f"{stem}.csv"),
                 self.summary.to_csv(out / f"{stem}_summary.csv")]
        fig_path = out / f"{stem}.png"
        self.figure.savefig(fig_path, dpi=120)
        return paths + [fig_path]
