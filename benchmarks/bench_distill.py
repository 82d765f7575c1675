"""Distillation throughput: many students in one pass vs one student at a time.

Runs the real training loop (:func:`v4compact.training.distill.train_stack`: data loader with
decoding workers, teacher with its cache, stacked students, Adam) on the first images of a
session zip, for 1, 8 and 32 students of 100 filters (``--students``, ``--num-filters``), each
time with an empty teacher cache, and prints per configuration:

- images/s of the pass and student-images/s (images x students);
- the share of the time spent decoding (waiting for the loader), in the teacher and in the
  students (forward, backward, Adam);
- "one at a time": K separate single-student jobs, each decoding every image and running the
  teacher again (what upstream's one-job-per-neuron does), from the 1-student row.

Then the projection to the scale target (SYSTEM.md §9: 219 neurons x 12M images, distill +
retrain) from the measured rates, and from multiply-accumulates at a stated utilisation of a
GPU's dense bfloat16 rate (``--gpu-tflops``, ``--utilisation``).

Usage::

    python benchmarks/bench_distill.py                          # 1, 8, 32 students, CPU
    python benchmarks/bench_distill.py --students 1 8 --images 64 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from v4compact import config
from v4compact.data import paths
from v4compact.models.arch import LAYER_SIZES, NUM_LAYERS
from v4compact.models.nets.macs import compact_macs, total_macs
from v4compact.models.nets.stack import CompactStack
from v4compact.models.zoo import model_neuron_ids
from v4compact.training import runtime as rt
from v4compact.training.corpus import open_corpus
from v4compact.training.distill import DistillConfig, train_stack
from v4compact.training.teachers import load_teacher

#: The scale target of issue 11: 219 neurons, 12M images, distillation + retraining.
TARGET_NEURONS, TARGET_IMAGES = 219, 12_000_000
#: Filters per layer of the pruned release (median, SYSTEM.md §10): the retraining's width.
PRUNED_FILTERS = (47, 57, 3, 7, 3)
#: Dense bfloat16 tensor-core rate of the GPU the projections assume (H100 / H200 SXM).
GPU_BF16_TFLOPS = 989.0


def training_macs(num_filters) -> int:
    """MACs per image of one training step of one student: forward, the weight gradients of
    every layer and the input gradients of all but layer 0 (whose input is the image)."""
    forward = total_macs(num_filters)
    return 3 * forward - compact_macs(num_filters)["layer0"]


def measure(students: int, num_filters: tuple, corpus, teacher_spec: str, device: str,
            batch_size: int, workers: int, mixed_precision: bool,
            kernels: str = "auto") -> dict:
    """One pass of ``students`` students over the corpus; the timings of the loop."""
    neurons = model_neuron_ids()[:students]  # the teacher's first columns (219 in all)
    teacher = load_teacher(teacher_spec, neurons, device=device)
    settings = DistillConfig(num_filters=num_filters, batch_size=batch_size, holdout_images=0,
                             num_workers=workers, mixed_precision=mixed_precision,
                             kernels=kernels)
    # students named apart from their neurons: no held-out evaluation inside the timed pass
    stack = CompactStack.students(students, num_filters,
                                  neuron_ids=[f"student{k}" for k in range(students)])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        _, stats = train_stack(stack, teacher, corpus, corpus.split_holdout(0)[1], settings,
                               Path(folder) / "run", Path(folder) / "cache",
                               runtime=rt.Runtime(device=torch.device(device)),
                               title=f"{students} students")
        wall = time.perf_counter() - start
    parts = {"decode": stats.decode_seconds, "teacher": stats.teacher_seconds,
             "students": stats.student_seconds}
    loop = sum(parts.values())
    return {"students": students, "images": stats.images, "seconds": wall,
            "loop_seconds": loop, **{f"{k}_seconds": v for k, v in parts.items()},
            "images_per_s": stats.images / loop, "kernels": stats.kernels,
            "student_images_per_s": stats.images * students / loop,
            "shares": {k: v / loop for k, v in parts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--num-filters", type=int, default=100)
    parser.add_argument("--images", type=int, default=64, help="images in the pass")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--teacher", default="shared/from_ensemble_model/200")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="bfloat16 autocast (CUDA)")
    parser.add_argument("--gpu-tflops", type=float, default=GPU_BF16_TFLOPS,
                        help="dense bfloat16 TFLOP/s of the projected GPU "
                        f"(H100 SXM: {GPU_BF16_TFLOPS:g})")
    parser.add_argument("--utilisation", type=float, default=0.3,
                        help="fraction of that rate grouped convolutions reach (assumed)")
    parser.add_argument("--kernels", default="auto",
                        help="the students' kernels: auto (tuned per run on CUDA; about a "
                        "minute at 219 students) or POINTWISE/FORMAT, e.g. matmul/contiguous")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    zip_path = config.data_dir() / paths.images_zip(210224)
    corpus = open_corpus(zip_path, max_images_per_shard=args.images)
    widths = (args.num_filters,) * NUM_LAYERS
    rows = [measure(k, widths, corpus, args.teacher, args.device, args.batch_size,
                    args.workers, args.mixed_precision, args.kernels) for k in args.students]
    single = next((r for r in rows if r["students"] == 1), None)
    print(f"distillation throughput, {args.num_filters}-filter students, {args.images} images "
          f"of session 210224, batch {args.batch_size}, {args.workers} decoding worker(s), "
          f"teacher {args.teacher}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    head = (f"{'students':>8} {'images/s':>9} {'student-img/s':>14} {'decode':>7} "
            f"{'teacher':>8} {'students':>9} {'one-at-a-time student-img/s':>28} {'gain':>6}")
    print(head)
    print("-" * len(head))
    for row in rows:
        alone = single["student_images_per_s"] if single else float("nan")
        shares = row["shares"]
        print(f"{row['students']:>8} {row['images_per_s']:>9.2f} "
              f"{row['student_images_per_s']:>14.2f} {shares['decode']:>7.1%} "
              f"{shares['teacher']:>8.1%} {shares['students']:>9.1%} {alone:>28.2f} "
              f"{row['student_images_per_s'] / alone:>5.1f}x")
    for row in rows:
        kernels = row["kernels"]
        print(f"kernels, {row['students']} students: pointwise {kernels['pointwise']}, memory "
              f"{kernels['memory_format']}"
              + "".join(f"; {t['pointwise']}/{t['memory_format']} {t['seconds']:.3f} s"
                        for t in kernels["tuning"]))
    # -- projection ------------------------------------------------------------------------
    best = max(rows, key=lambda r: r["student_images_per_s"])
    per_student = best["students_seconds"] / (best["images"] * best["students"])
    teacher_per_image = best["teacher_seconds"] / best["images"]
    decode_per_image = best["decode_seconds"] / best["images"]
    distill_macs = training_macs(widths) * TARGET_NEURONS
    retrain_macs = training_macs(PRUNED_FILTERS) * TARGET_NEURONS
    ratio = training_macs(PRUNED_FILTERS) / training_macs(widths)
    here = TARGET_IMAGES * (2 * decode_per_image + teacher_per_image
                            + TARGET_NEURONS * per_student * (1 + ratio))
    gpu = TARGET_IMAGES * (distill_macs + retrain_macs) * 2 / (
        args.gpu_tflops * 1e12 * args.utilisation)
    print()
    print(f"scale target: {TARGET_NEURONS} neurons x {TARGET_IMAGES / 1e6:.0f}M images, "
          f"distill ({args.num_filters} filters) + retrain ({'/'.join(map(str, PRUNED_FILTERS))})")
    print(f"  training MACs per image: {distill_macs / 1e9:.1f} G (distill, {TARGET_NEURONS} "
          f"students) + {retrain_macs / 1e9:.1f} G (retrain); layer 0 at {LAYER_SIZES[0]}x"
          f"{LAYER_SIZES[0]} is {compact_macs(widths)['layer0'] / total_macs(widths):.0%} "
          f"of a forward pass")
    print(f"  at this run's rates on {args.device}: {here / 3600:,.0f} h "
          f"(decode {2 * decode_per_image * TARGET_IMAGES / 3600:,.1f} h, teacher "
          f"{teacher_per_image * TARGET_IMAGES / 3600:,.1f} h, students "
          f"{TARGET_NEURONS * per_student * (1 + ratio) * TARGET_IMAGES / 3600:,.0f} h)")
    print(f"  on one GPU at {args.utilisation:.0%} of {args.gpu_tflops:.0f} TFLOP/s: "
          f"{gpu / 3600:.1f} h of student compute (decode overlaps on CPU workers; the "
          f"teacher is computed once per image)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "projection_hours_here": here / 3600,
                                         "projection_hours_gpu": gpu / 3600}, indent=1))


if __name__ == "__main__":
    main()
