"""Validate the R^2 estimators by simulation: bias and spread against a known truth.

Simulates neurons with a known true R^2 (squared correlation of a model prediction with
the noise-free expected response), Poisson or Gaussian trial noise and various numbers of
repeats (including NaN-padded unequal repeats, 6-10 per image as in session 210325), then
prints a table of bias (mean estimate - truth) and s.d. of r2_er, split_half_r2 and raw
R^2, and draws docs/img/metrics_simulation.png.

Usage:
    python scripts/metrics_simulation.py [--neurons 500] [--images 300] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from v4compact.metrics import r2_er, raw_r2, split_half_r2
from v4compact.metrics.simulate import simulate_neurons

REPO = Path(__file__).resolve().parents[1]
ESTIMATORS = ("r2_er", "split_half_r2", "raw_r2")
REPEATS = (("2", 2, None), ("5", 5, None), ("10", 10, None), ("6-10", 10, 6), ("20", 20, None))


def run_cell(true_r2, repeats, min_repeats, noise, snr, neurons, images, seed):
    sim = simulate_neurons(neurons, images, repeats, true_r2, snr, noise, min_repeats, seed)
    values = {
        "r2_er": r2_er(sim.raw_responses, sim.predictions),
        "split_half_r2": split_half_r2(sim.raw_responses, sim.predictions, num_splits=50),
        "raw_r2": raw_r2(sim.responses, sim.predictions),
    }
    return {k: (np.nanmean(v) - true_r2, np.nanstd(v)) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=500, help="simulated neurons per cell")
    parser.add_argument("--images", type=int, default=300, help="images (a held-out half)")
    parser.add_argument("--snr", type=float, default=0.3, help="SNR of the main grid")
    parser.add_argument("--out", type=Path,
                        default=REPO / "docs" / "img" / "metrics_simulation.png",
                        help="where to write the figure")
    args = parser.parse_args()

    grid = [
        (noise, t, label, reps, low, args.snr)
        for noise in ("poisson", "gaussian")
        for t in (0.2, 0.5, 0.8)
        for label, reps, low in REPEATS
    ]
    grid += [("poisson", 0.5, "10", 10, None, s) for s in (0.1, 0.15, 1.0)]
    results = {}
    for i, (noise, t, label, reps, low, snr) in enumerate(tqdm(grid, desc="simulating")):
        results[(noise, t, label, snr)] = run_cell(
            t, reps, low, noise, snr, args.neurons, args.images, seed=i
        )

    print(f"\n{args.neurons} neurons x {args.images} images per row; bias = mean - truth")
    header = "| noise | SNR | true R^2 | repeats | " + " | ".join(
        f"{e} bias | {e} s.d." for e in ESTIMATORS
    ) + " |"
    print(header)
    print("|" + "---|" * (4 + 2 * len(ESTIMATORS)))
    for (noise, t, label, snr), cell in results.items():
        cols = " | ".join(f"{cell[e][0]:+.3f} | {cell[e][1]:.3f}" for e in ESTIMATORS)
        print(f"| {noise} | {snr:g} | {t:g} | {label} | {cols} |")

    fig = Figure(figsize=(11, 6.5), layout="constrained")
    axes = fig.subplots(2, 3, sharey=True)
    colours = {"r2_er": "tab:blue", "split_half_r2": "tab:orange", "raw_r2": "tab:gray"}
    xs = np.arange(len(REPEATS))
    for row, noise in enumerate(("poisson", "gaussian")):
        for col, t in enumerate((0.2, 0.5, 0.8)):
            ax = axes[row, col]
            for j, est in enumerate(ESTIMATORS):
                cells = [results[(noise, t, label, args.snr)][est] for label, _, _ in REPEATS]
                bias = [c[0] for c in cells]
                sd = [c[1] for c in cells]
                ax.errorbar(xs + (j - 1) * 0.12, bias, yerr=sd, marker="o", capsize=3,
                            color=colours[est], label=est)
            ax.axhline(0, color="k", lw=0.8)
            ax.axhspan(-0.02, 0.02, color="tab:green", alpha=0.15, lw=0)
            ax.set_xticks(xs, [label for label, _, _ in REPEATS])
            ax.set_title(f"{noise} noise, true R$^2$ = {t}")
            if row == 1:
                ax.set_xlabel("repeats per image")
            if col == 0:
                ax.set_ylabel("estimate - truth (mean ± s.d.)")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"Estimator bias by simulation ({args.neurons} neurons x {args.images} images per "
        f"point, SNR {args.snr}); green band: ±0.02"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
