"""A new lab, end to end (issue 21, "what must be shown"): session 201025 exported to NWB
and imported as ``newlab:m1`` - its catalogue identity used nowhere after the export - then
the whole method on it as a new lab would run it.

1. The released compact models of 201025 scored on the imported copy and on 201025: the
   held-out raw R^2 agree (the largest difference is printed).
2. A teacher from a backbone plus a ridge mapping fitted on the imported session's fit half
   only; ``make_compact`` for 8 of its neurons in one pass (distil, prune, retrain), on a
   corpus of the other sessions' images (201025's own zip is not in it).
3. Per neuron: held-out raw R^2 (against the repeat-averaged responses of the held-out half)
   of the teacher, the student and the released compact model of the same neuron, and the
   filters after pruning next to the released ``nums_filters``. Outputs are z-scored units.

    python scripts/new_lab_demo.py --out runs/newlab --minutes 15 --max-images-per-shard 300
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/newlab")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--teacher", default="backbone:shared/from_ensemble_model/200:layer4")
    parser.add_argument("--num-filters", type=int, default=32)
    parser.add_argument("--preset", default="patient")
    parser.add_argument("--max-images-per-shard", type=int, default=None,
                        help="a seeded subset of each zip (a smaller corpus, more passes)")
    args = parser.parse_args()
    import v4compact
    from v4compact import config, evaluate, export_session, import_session
    from v4compact.data import paths
    from v4compact.models.zoo import session_neuron_ids
    from v4compact.training.distill import DistillConfig
    from v4compact.training.prune import released_num_filters
    from v4compact.training.recipe import make_compact

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    nwb = export_session(201025, out / "m1.nwb")
    exported = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the copy has no repeats (not in the data copy)
        session = import_session(nwb, "newlab:m1", out=out / "datasets", overwrite=True)
    print(f"export {exported - began:.1f} s, import {time.perf_counter() - exported:.1f} s: "
          f"{session}")

    ids = session_neuron_ids(201025)
    population = v4compact.load_compact_population(ids)
    copy_ids = [f"newlab:m1/{i.split('/')[1]}" for i in ids]
    on_release = evaluate(population, neuron_ids=ids, num_boot=0, progress=False).values()
    on_copy = evaluate(population, neuron_ids=copy_ids, num_boot=0, progress=False).values()
    print(f"released compact models, {len(ids)} neurons: held-out raw R^2 on 201025 median "
          f"{np.median(on_release):.4f}, on newlab:m1 median {np.median(on_copy):.4f}; "
          f"largest difference {np.max(np.abs(on_copy - on_release)):.2e}")

    chosen = list(range(0, 89, 11))[:8]
    neurons = [f"newlab:m1/{k}" for k in chosen]
    folder = config.data_dir() / Path(paths.images_zip(0)).parent
    corpus = sorted(p for p in folder.glob("images_*.zip") if p.name != "images_201025.zip")
    settings = DistillConfig.preset_named(args.preset, num_filters=(args.num_filters,) * 5)
    start = time.perf_counter()
    report = make_compact(args.teacher, neurons, corpus, out / "run", settings,
                          minutes=args.minutes, max_images_per_shard=args.max_images_per_shard,
                          resume=(out / "run" / "run.json").exists(), device="cpu",
                          announce=print)
    minutes = (time.perf_counter() - start) / 60
    released = dict(zip(copy_ids, on_copy, strict=True))
    lines = [f"teacher {args.teacher} (ridge on newlab:m1's fit half); {len(corpus)} zips of "
             f"other sessions; preset {args.preset}, {args.num_filters} filters; "
             f"{minutes:.1f} min on this machine",
             "| neuron | teacher | student | released | filters after pruning | released "
             "nums_filters |", "| --- | --- | --- | --- | --- | --- |"]
    for row in report["neurons"]:
        k = int(row["neuron"].rsplit("/", 1)[1])
        lines.append(f"| {row['neuron']} | {row['teacher_heldout_raw_r2']:.3f} | "
                     f"{row['heldout_raw_r2_step2']:.3f} | {released[row['neuron']]:.3f} | "
                     f"{row['filters_after']} | {released_num_filters(f'201025/{k}')} |")
    text = "\n".join(lines)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps({
        "max_abs_difference_released": float(np.max(np.abs(on_copy - on_release))),
        "minutes": minutes}, indent=2))


if __name__ == "__main__":
    main()
