"""Train ensembles on the sessions of the data copy, score them, draw Fig. 1b and Fig. 1h.

What issue 10 asks to be shown, on a 2-core CPU in well under an hour per preset:

1. ``train``: both presets on every training session whose images are in the data copy
   (early stopping on 210224), backbone ``shared/from_ensemble_model/200:layer3``,
   5 members narrowed to width 128 / 64 (the released size, 512 / 256, costs ~4.5x more
   per step on a CPU); ``upstream`` for 2 epochs (1 + 2 passes per session) and ``modern``
   for 3 epochs (3 passes): the same number of SGD steps.
2. ``score``: held-out scores (ridge on the first half of each session, scored on the
   second) of both runs, of ridge on the backbone's own features (layer 3, the members'
   input, and layer 4, the reference ~0.42 on 201025; both average-pooled to 7x7) and of
   the released compact models; raw R^2 on 190923, 201025, 210225 (no single-repeat
   responses in the copy), r2_ER on 210325. Writes ``docs/results/ensemble_training.csv``
   and prints the table of medians.
3. ``figures``: ``docs/img/fig1b_trained.png`` (layer-4 backbone + ridge vs the better run)
   and ``docs/img/fig1h_trained.png`` (compact models vs that run), plus the runs' curves.

Run from the project root (each step reuses what the previous one wrote)::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ensemble_demo.py train --runs runs
    .venv/bin/python scripts/ensemble_demo.py score --runs runs
    .venv/bin/python scripts/ensemble_demo.py figures --runs runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "ensemble_training.csv"
IMAGES = ROOT / "docs" / "img"
BACKBONE = "shared/from_ensemble_model/200"
EPOCHS = {"upstream": 2, "modern": 3}
SESSIONS = [190923, 201025, 210225, 210325]
COMPACT_SESSIONS = [190923, 201025, 210225]


def train(runs: Path) -> None:
    from v4compact.cli import main

    for preset, epochs in EPOCHS.items():
        out = runs / preset
        resume = ["--resume"] if (out / "run.json").is_file() else []
        code = main(["train", "ensemble", "--backbone", f"{BACKBONE}:layer3", "--members", "5",
                     "--epochs", str(epochs), "--preset", preset, "--width", "128",
                     "--inner-width", "64", "--threads", "1", "--out", str(out), *resume])
        if code:
            sys.exit(code)


def score(runs: Path) -> None:
    from v4compact.evaluation import EvaluationResult, backbone_predictor, evaluate
    from v4compact.models.teachers.backbones import load_backbone

    result = EvaluationResult()
    for preset in EPOCHS:
        result.extend(evaluate(str(runs / preset), sessions=SESSIONS, num_boot=0,
                               name=f"ensemble ({preset})"))
    for layer in ("layer3", "layer4"):
        backbone = load_backbone(f"{BACKBONE}:{layer}", pool_to=7)
        name = f"ridge on {BACKBONE}:{layer} pooled 7x7"
        result.extend(evaluate(backbone_predictor(backbone, name=name), sessions=SESSIONS,
                               num_boot=0))
    result.extend(evaluate("compact", sessions=COMPACT_SESSIONS, num_boot=0))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(RESULTS)
    print(result.format_summary())
    table = {}
    for s in result.scored:
        group = "compact models (released)" if s.model.startswith("compact/") else s.model
        table.setdefault(group, {}).setdefault(s.session, []).append(s.value)
    print("\n| model | " + " | ".join(map(str, SESSIONS)) + " |")
    print("| --- |" + " --- |" * len(SESSIONS))
    for group, per_session in table.items():
        cells = [f"{np.median(per_session[sid]):.3f}" if sid in per_session else "-"
                 for sid in SESSIONS]
        print(f"| {group} | " + " | ".join(cells) + " |")


def figures(runs: Path) -> None:
    from v4compact.evaluation import EvaluationResult
    from v4compact.figures.ensemble import fig1b
    from v4compact.figures.performance import fig1h
    from v4compact.training.ensemble import describe_run, run_curves_figure

    result = EvaluationResult.from_csv(RESULTS)
    best = max(EPOCHS, key=lambda p: json.loads((runs / p / "run.json").read_text())
               ["best_validation_score"])
    ensemble = EvaluationResult([s for s in result.scores if s.model == f"ensemble ({best})"])
    ensemble_on_compact = EvaluationResult([s for s in ensemble.scores
                                            if s.session in COMPACT_SESSIONS])
    backbone = EvaluationResult([s for s in result.scores if "layer4" in s.model])
    compact = EvaluationResult([s for s in result.scores if s.model.startswith("compact/")])
    label = f"ensemble model: {describe_run(runs / best)} (the released members are absent)"
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig1b(backbone, ensemble, f"{BACKBONE}:layer4, pooled to 7x7", label).savefig(
        IMAGES / "fig1b_trained.png", dpi=130, bbox_inches="tight")
    fig1h(compact, ensemble_on_compact, label).savefig(IMAGES / "fig1h_trained.png", dpi=130,
                                            bbox_inches="tight")
    for preset in EPOCHS:
        run_curves_figure(runs / preset).savefig(IMAGES / f"ensemble_curves_{preset}.png",
                                                 dpi=110, bbox_inches="tight")
    print(f"wrote fig1b_trained.png, fig1h_trained.png and the curves to {IMAGES} "
          f"(ensemble: the {best} run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "score", "figures"])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of the runs")
    args = parser.parse_args()
    {"train": train, "score": score, "figures": figures}[args.step](args.runs)


if __name__ == "__main__":
    main()
