"""Distillation presets side by side at equal wall time (issue 22, "what must be shown").

Each preset runs the whole recipe (``make_compact``: distill, prune, retrain) on the same
teacher, neurons and corpus with the same time budget (``--minutes``, distillation and
retraining together; the passes are chosen from a timing taken at the start). With
``--parallel`` (default) the presets run at the same time, one process each with
``--threads`` threads, so they share the machine equally. At the end the script prints,
per neuron and preset: held-out raw R^2 on the real responses of the student, the teacher
and the released compact model, raw R^2 against the teacher on the held-out corpus
images, and the filters after pruning next to the released ``nums_filters``; and draws
held-out raw R^2 against student-images and wall time for every preset
(``OUT/fidelity_vs_compute.png``). Outputs are in z-scored units::

    python scripts/compare_presets.py --out runs/compare --minutes 35 --num-filters 32
    python scripts/compare_presets.py --out runs/one_zip --minutes 30 --presets patient \\
        --images ../shared/v4data/data_V4_responses/images/images_190925.zip
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NEURONS = ["201025/10", "201025/40"]


def _run_one(args, preset: str) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from v4compact import config
    from v4compact.data import paths
    from v4compact.training.distill import DistillConfig
    from v4compact.training.recipe import make_compact

    images = args.images or [config.data_dir() / Path(paths.images_zip(0)).parent]
    overrides = {"num_workers": args.workers, "eval_every": args.eval_every,
                 "seed": args.seed}
    if args.num_filters:
        overrides["num_filters"] = (args.num_filters,) * 5
    settings = DistillConfig.preset_named(preset, **overrides)
    start = time.perf_counter()
    make_compact(args.teacher, args.neurons, images, Path(args.out) / preset, settings,
                 minutes=args.minutes, resume=args.resume, device="cpu",
                 announce=lambda line: print(f"[{preset}] {line}", flush=True))
    print(f"[{preset}] done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)


def _table(out: Path, presets: list[str]) -> str:
    lines = ["| neuron | preset | passes (distill + retrain) | student | teacher | released | "
             "vs teacher (retrained) | filters after pruning | released nums_filters |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for preset in presets:
        report = json.loads((out / preset / "report.json").read_text())
        plan = json.loads((out / preset / "plan.json").read_text())
        for row in report["neurons"]:
            lines.append(
                f"| {row['neuron']} | {preset} | {plan['passes']} + {plan['retrain_passes']} "
                f"| {_num(row.get('heldout_raw_r2_step2'))} "
                f"| {_num(row.get('teacher_heldout_raw_r2'))} "
                f"| {_num(row.get('released_heldout_raw_r2'))} "
                f"| {_num(row.get('teacher_r2_step2'))} "
                f"| {'/'.join(map(str, row['filters_after']))} "
                f"| {'/'.join(map(str, row.get('released_filters') or [])) or '-'} |")
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--presets", nargs="+", default=["small-corpus", "patient"])
    parser.add_argument("--minutes", type=float, default=35.0,
                        help="budget per preset, distillation + retraining")
    parser.add_argument("--teacher", default="shared/from_ensemble_model/200")
    parser.add_argument("--neurons", nargs="+", default=NEURONS)
    parser.add_argument("--images", nargs="+",
                        help="corpus (default: every session zip of the data directory)")
    parser.add_argument("--num-filters", type=int, help="student width (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per preset")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--eval-every", type=int, default=3, metavar="SHARDS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serial", action="store_true", help="one preset after the other")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    if args.only:
        _run_one(args, args.only)
        return
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, *sys.argv[1:]]
    jobs = []
    for preset in args.presets:
        log = open(out / f"{preset}.log", "w")  # noqa: SIM115 (open for the job's life)
        job = subprocess.Popen([*command, "--only", preset], stdout=log,
                               stderr=subprocess.STDOUT, env=dict(os.environ))
        jobs.append((preset, job, log))
        if args.serial:
            job.wait()
    for preset, job, log in jobs:
        if job.wait() != 0:
            sys.exit(f"{preset} failed; see {out / (preset + '.log')}")
        log.close()
    from v4compact.figures.distillation import fidelity_vs_compute

    figure = fidelity_vs_compute({p: out / p for p in args.presets})
    figure.savefig(out / "fidelity_vs_compute.png", dpi=110)
    table = _table(out, args.presets)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(f"figure: {out / 'fidelity_vs_compute.png'}")


if __name__ == "__main__":
    main()
