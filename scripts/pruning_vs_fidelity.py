"""Do pruning's kept widths move toward the released ``nums_filters`` as fidelity rises?

Reads made-model reports (``report.csv`` of ``make-compact`` / ``prune`` runs, or copies of
them such as ``docs/results/make_compact_*.csv``) and prints, per student: its raw R^2
against the teacher after distillation (held-out corpus images; the fidelity pruning
worked from), the filters kept per layer, the released model's ``nums_filters``, and the
distance between the two: the mean over the five layers of ``|log2(kept / released)|`` (0:
the released widths; 1: off by a factor of 2 on average), over all layers and over layers
2-4 alone (students narrower than 100 filters cannot keep the released 40-70 filters of
layers 0-1, but can reach the released 3-10 of layers 2-4). Then the Spearman correlation
between fidelity and distance over all students (negative: better students prune closer to
the released widths)::

    python scripts/pruning_vs_fidelity.py runs/*/report.csv docs/results/make_compact_*.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args()
    print("| run | neuron | vs teacher (distilled) | filters after pruning | released | "
          "distance, all layers | distance, layers 2-4 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    fidelities, distances, deep = [], [], []
    for path in args.reports:
        for row in _rows(path):
            if not row.get("released_filters"):
                continue
            kept = np.array(json.loads(row["filters_after"]), dtype=float)
            released = np.array(json.loads(row["released_filters"]), dtype=float)
            fidelity = float(row["teacher_r2_distilled"])
            gaps = np.abs(np.log2(kept / released))
            distance, deep_distance = float(gaps.mean()), float(gaps[2:].mean())
            fidelities.append(fidelity)
            distances.append(distance)
            deep.append(deep_distance)
            run = path.parent.name if path.name == "report.csv" else path.stem
            print(f"| {run} | {row['neuron']} | {fidelity:.3f} | "
                  f"{'/'.join(str(int(k)) for k in kept)} | "
                  f"{'/'.join(str(int(r)) for r in released)} | {distance:.2f} | "
                  f"{deep_distance:.2f} |")
    if len(fidelities) > 2:
        from scipy.stats import spearmanr

        for name, values in (("all layers", distances), ("layers 2-4", deep)):
            rho, p_value = spearmanr(fidelities, values)
            print(f"Spearman correlation of fidelity and distance ({name}) over "
                  f"{len(fidelities)} students: {rho:+.2f} (p = {p_value:.3g})")


if __name__ == "__main__":
    main()
