"""``v4compact distill``, ``v4compact prune``, ``v4compact make-compact``: make compact
models of any neuron (SYSTEM.md §9-§10), thin over :mod:`v4compact.training`."""

from __future__ import annotations

import argparse

from .checks import check_positive, output_dir
from .options import add_device, add_out, command

_TEACHER_HELP = (
    "teacher: a model id (shared/from_ensemble_model/200, population, compact/201025/10, "
    "file:model.onnx), backbone:SPEC (e.g. backbone:resnet50, "
    "backbone:shared/from_ensemble_model/200:layer3; ridge fitted on the first half of each "
    "session), ensemble or ensemble:RUN_DIR (ridge per member)"
)

_DISTILL_EPILOG = """\
examples:
  v4compact distill --teacher shared/from_ensemble_model/200 --neurons 201025/10 201025/40 \\
      --images ../shared/v4data/data_V4_responses/images --out runs/d1 --preset small-corpus
  v4compact distill ... --out runs/d1 --resume                    (continue after a kill)
  torchrun --nproc_per_node=8 -m v4compact distill ... --device cuda   (data-parallel)

outputs (z-scored units): RUN_DIR/run.json, distill/checkpoint.pt, distill/metrics.csv,
distill/fidelity.png, teacher_cache/ (teacher responses, computed once per image)
"""

_PRUNE_EPILOG = """\
examples:
  v4compact prune runs/d1                          (step 1, rebuild, step 2, .keras files)
  v4compact prune runs/d1 --convention upstream    (upstream's off-by-one search)

outputs: RUN_DIR/prune/, RUN_DIR/models/compact_model_<session>_neuron<k>.keras,
RUN_DIR/report.json and report.csv (filters, parameters, fidelity per neuron)
"""

_MAKE_EPILOG = """\
examples:
  v4compact make-compact --teacher shared/from_ensemble_model/200 \\
      --neurons 201025/10 201025/40 --minutes 40 \\
      --images ../shared/v4data/data_V4_responses/images/images_190925.zip --out runs/m1
  v4compact make-compact --teacher backbone:resnet50 --neurons 201025/10 \\
      --images /data/large_zips --preset upstream --device cuda --out runs/m2

The plan (images, steps, estimated time) is printed before the start and kept in
RUN_DIR/plan.json. Each made model is RUN_DIR/models/<name>.keras (Keras 3;
v4compact.load_compact_model(path) loads it); outputs are in z-scored units, like the
teacher's.
"""


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="patient",
                        help="settings: patient (function matching: a fresh teacher label for "
                        "every cropped, flipped, mixed-up image, 20 passes, warm-up + cosine; "
                        "default), small-corpus (upstream's recipe with 8 passes) or upstream "
                        "(SYSTEM.md section 9: one pass, 5,000 held-out images)")
    parser.add_argument("--num-filters", type=int, nargs="+", metavar="N",
                        help="filters per layer of each student (one number or five; "
                        "default 100)")
    parser.add_argument("--passes", type=int, help="passes over the corpus (default: preset)")
    parser.add_argument("--minutes", type=float, metavar="M",
                        help="time budget: choose the passes that fit M minutes on this "
                        "machine (measured before the start; make-compact: distillation and "
                        "retraining together)")
    parser.add_argument("--lr", type=float, help="Adam's (peak) learning rate (default: preset)")
    parser.add_argument("--batch-size", type=int, help="global batch (default 64)")
    parser.add_argument("--holdout", type=int, metavar="N",
                        help="corpus images held out for fidelity and pruning (default: a "
                        "tenth of the corpus, at least 200 where that is at most a fifth, at "
                        "most 5,000)")
    parser.add_argument("--max-images-per-shard", type=int, metavar="N",
                        help="use at most N images of each shard (seeded subset)")
    parser.add_argument("--include-heldout", action="store_true",
                        help="also train on the held-out halves of test sessions' zips "
                        "(excluded by default: the neurons are evaluated on them)")
    parser.add_argument("--augment", action="store_true",
                        help="random flips and shifts (the teacher then runs on every image)")
    parser.add_argument("--mix", choices=["mixup", "cutmix", "both", "none"],
                        help="function matching's mixing of two images (default mixup)")
    parser.add_argument("--color-jitter", type=float, metavar="J",
                        help="function matching's brightness/contrast/saturation jitter, "
                        "factors in [1-J, 1+J] (default 0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="image-decoding processes")
    parser.add_argument("--eval-every", type=int, default=1, metavar="SHARDS",
                        help="measure fidelity every this many shards (default 1)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--kernels", default="auto", metavar="CHOICE",
                        help="how the stacked students compute: auto (time every choice at "
                        "the start of a CUDA run, keep the fastest) or POINTWISE/FORMAT, "
                        "e.g. matmul/channels_last (default auto)")
    add_device(parser, None)
    parser.add_argument("--resume", action="store_true", help="continue a killed run")


def _add_pruning_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=0.9,
                        help="fraction kept by each pruning criterion (default 0.9)")
    parser.add_argument("--convention", choices=["strict", "upstream"], default="strict",
                        help="binary-search off-by-one: strict keeps >= threshold; upstream "
                        "also drops the channel where it first fails")
    parser.add_argument("--retrain-passes", type=int,
                        help="passes of the retraining (default: the distillation's)")


def register(subparsers, parents) -> None:
    """Add the ``distill``, ``prune`` and ``make-compact`` subcommands."""
    distill = command(
        subparsers, "distill", parents, run_distill,
        help="distill students of neurons from a teacher",
        description="Train one compact student per neuron on a teacher's responses to a "
        "corpus of images, all students in one pass (SYSTEM.md section 9).",
        epilog=_DISTILL_EPILOG)
    _add_common(distill)
    _add_training_options(distill)

    prune = command(
        subparsers, "prune", parents, run_prune, help="prune and retrain a distillation run",
        description="Prune the students of a distillation run (SYSTEM.md section 10), check "
        "the rebuilt networks, retrain them and write each as a .keras file with a report.",
        epilog=_PRUNE_EPILOG)
    prune.add_argument("run_dir", metavar="RUN_DIR", help="folder of v4compact distill --out")
    _add_pruning_options(prune)
    add_device(prune, None)
    prune.add_argument("--resume", action="store_true", help="continue a killed retraining")

    make = command(
        subparsers, "make-compact", parents, run_make_compact,
        help="distill, prune and retrain: the whole recipe",
        description="Make a compact model of each neuron: distill from the teacher, prune, "
        "retrain, and write .keras files with a per-neuron report.",
        epilog=_MAKE_EPILOG)
    _add_common(make)
    _add_training_options(make)
    _add_pruning_options(make)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, metavar="SPEC", help=_TEACHER_HELP)
    parser.add_argument("--neurons", nargs="+", metavar="ID",
                        help="neurons to distill, of any dataset: 201025/10, mylab:s01/7, "
                        "patterns such as 'mylab:s01/*' (default: every output of a model "
                        "teacher)")
    parser.add_argument("--images", nargs="+", required=True, metavar="PATH",
                        help="corpus: zips, tars (WebDataset), folders of images or folders "
                        "of archives (each archive a shard)")
    add_out(parser, "RUN_DIR", "run folder")


def _config(args):
    from ..training.distill import DistillConfig

    overrides = {"seed": args.seed, "num_workers": args.workers,
                 "eval_every": args.eval_every, "augment": args.augment,
                 "mixed_precision": args.mixed_precision, "kernels": args.kernels,
                 "exclude_heldout": not args.include_heldout}
    if args.num_filters:
        if len(args.num_filters) not in (1, 5):
            from ..errors import InvalidInputError

            raise InvalidInputError("--num-filters takes one number or five (one per layer)")
        overrides["num_filters"] = tuple(args.num_filters * (5 // len(args.num_filters)))
    if args.augment:
        overrides["function_matching"] = False
    for option, name in (("passes", "passes"), ("batch_size", "batch_size"),
                         ("holdout", "holdout_images"), ("lr", "learning_rate"),
                         ("mix", "mix"), ("color_jitter", "color_jitter")):
        value = getattr(args, option)
        if value is not None:
            overrides[name] = value
    return DistillConfig.preset_named(args.preset, **overrides)


def run_distill(args) -> int:
    """Distill and print where the results are."""
    from ..training.corpus import open_corpus
    from ..training.distill import distill, process_device
    from ..training.plan import plan_run
    from ..training.teachers import load_teacher

    config = _config(args)
    out = output_dir(args.out)
    teacher = load_teacher(args.teacher, args.neurons, device=process_device(args.device),
                           data_dir=args.data_dir)
    corpus = open_corpus(args.images, config.exclude_heldout, args.data_dir,
                         args.max_images_per_shard, config.seed)
    config, _, _ = plan_run(config, corpus, teacher, out, minutes=args.minutes,
                            resume=args.resume, device=args.device, announce=print,
                            share=1.0)
    _, stats = distill(teacher, corpus, out, config, resume=args.resume, device=args.device,
                       data_dir=args.data_dir)
    for neuron, row in stats.fidelity.items():
        scores = ", ".join(f"{k} {row[k]:.3f}" for k in ("teacher_r2", "heldout_raw_r2")
                           if k in row)
        print(f"{neuron}: {scores}")
    print(f"distilled {len(teacher.neuron_ids)} student(s) into {out}; next: v4compact prune "
          f"{out}")
    return 0


def run_prune(args) -> int:
    """Prune, retrain, write the models and print the report table."""
    from ..training.prune import format_report, prune_run

    if args.retrain_passes is not None:
        check_positive("--retrain-passes", args.retrain_passes)
    report = prune_run(args.run_dir, threshold=args.threshold, convention=args.convention,
                       retrain_passes=args.retrain_passes, resume=args.resume,
                       device=args.device, data_dir=args.data_dir)
    if report is not None:  # rank 0 of a torchrun job
        print(format_report(report))
        print(f"models in {args.run_dir}/models; report in {args.run_dir}/report.csv")
    return 0


def run_make_compact(args) -> int:
    """The whole recipe; prints the report table."""
    from ..training.prune import format_report
    from ..training.recipe import make_compact

    if args.retrain_passes is not None:
        check_positive("--retrain-passes", args.retrain_passes)
    config = _config(args)
    out = output_dir(args.out)
    report = make_compact(args.teacher, args.neurons, args.images, out, config,
                          threshold=args.threshold, convention=args.convention,
                          retrain_passes=args.retrain_passes,
                          max_images_per_shard=args.max_images_per_shard,
                          resume=args.resume, device=args.device, data_dir=args.data_dir,
                          minutes=args.minutes, announce=print)
    if report is not None:
        print(format_report(report))
        print(f"models in {out}/models; report in {out}/report.csv")
    return 0
