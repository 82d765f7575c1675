"""End-to-end demo of the make-compact recipe on the data copy (issue 11, "what must be shown").

Teacher: the columns of ``shared/from_ensemble_model/200``; corpus: every session zip of the
data directory (``data_V4_responses/images``) minus the held-out halves of the test
sessions; several neurons of 201025 distilled in one pass (one stack), pruned (SYSTEM.md
§10), retrained; one ``.keras`` file per neuron under ``RUN_DIR/models``; the per-neuron
table printed and kept in ``RUN_DIR/report.json`` / ``report.csv``.

The defaults are modest so that the run ends in about half an hour on a busy 2-core CPU
(narrow students, a subset of each shard); ``--num-filters 100 --max-images-per-shard 0``
is the full recipe on the whole 10k-image copy::

    python scripts/make_compact_demo.py --out runs/demo            # modest (CPU)
    python scripts/make_compact_demo.py --out runs/full --num-filters 100 \\
        --max-images-per-shard 0 --passes 20 --holdout 1000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from v4compact import config
from v4compact.data import paths
from v4compact.training.distill import DistillConfig
from v4compact.training.prune import format_report
from v4compact.training.recipe import make_compact

NEURONS = [f"201025/{k}" for k in (0, 10, 20, 30, 40, 50, 60, 70)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--neurons", nargs="+", default=NEURONS)
    parser.add_argument("--teacher", default="shared/from_ensemble_model/200")
    parser.add_argument("--num-filters", type=int, default=16,
                        help="filters per layer of each student (100 in the paper)")
    parser.add_argument("--max-images-per-shard", type=int, default=100,
                        help="images used per session zip (0: all)")
    parser.add_argument("--passes", type=int, default=2, help="distillation passes")
    parser.add_argument("--retrain-passes", type=int, default=1)
    parser.add_argument("--holdout", type=int, default=200, help="held-out corpus images")
    parser.add_argument("--eval-every", type=int, default=12, help="shards between fidelity")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()

    images = config.data_dir() / Path(paths.images_zip(0)).parent
    settings = DistillConfig.preset_named(
        "small-corpus", num_filters=(args.num_filters,) * 5, passes=args.passes,
        holdout_images=args.holdout, eval_every=args.eval_every, num_workers=args.workers,
        augment=args.augment)
    start = time.perf_counter()
    report = make_compact(args.teacher, args.neurons, images, args.out, settings,
                          retrain_passes=args.retrain_passes,
                          max_images_per_shard=args.max_images_per_shard or None,
                          resume=args.resume, device=args.device)
    minutes = (time.perf_counter() - start) / 60
    print(format_report(report))
    run = json.loads((Path(args.out) / "run.json").read_text())
    print(f"corpus: {run['corpus']['images']} images in {len(run['corpus']['shards'])} shards "
          f"(held-out halves of test sessions excluded); {minutes:.1f} min")


if __name__ == "__main__":
    main()
