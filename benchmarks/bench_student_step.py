"""Training step of K stacked students: every kernel choice side by side, and the floors.

The students' step is 94-97% of a distillation's time on a GPU (``bench_distill.py``). This
times one step (forward, summed MSE, backward, Adam) of a
:class:`~v4compact.models.nets.stack.CompactStack` of K students on random images, for every
kernel choice (:mod:`v4compact.training.kernels`: grouped convolution or batched matmul
pointwise layers, memory as given / contiguous / channels-last), in float32 and (CUDA)
bfloat16 autocast, with cuDNN's algorithm search off and on. It prints per row: seconds per
step, student-images/s, the training MACs' rate (TFLOP/s = 2 x MAC/s) and its share of the
device's peak, then the 12M-image projection of the best row and two floors that no
implementation materialising layer 0's maps can beat:

* **compute**: all training MACs at the device's peak rate;
* **memory**: layer 0's output (K x 100 maps of 112x112 per image, the largest tensor) must
  be written by the convolution, read by batch norm's statistics, normalised, read by the
  depthwise layer, and in the backward pass its gradient written, read by batch norm's
  backward and by the weight gradient: ``--passes`` (default 7) full passes over it at the
  device's memory bandwidth.

Run (GPU):  python benchmarks/bench_student_step.py --students 219 --batch-size 8
Run (CPU):  python benchmarks/bench_student_step.py --students 8 --batch-size 8 --steps 2
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from bench_distill import (
    GPU_BF16_TFLOPS,
    PRUNED_FILTERS,
    TARGET_IMAGES,
    TARGET_NEURONS,
    training_macs,
)

from v4compact.models.arch import LAYER_SIZES, NUM_LAYERS
from v4compact.models.nets.stack import CompactStack
from v4compact.training.kernels import DEFAULT_KERNELS, apply_kernels, choices, time_step


def _profile(stack, batch, device, mixed, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    time_step(stack, batch, device, mixed, steps=1)
    with profile(activities=activities) as prof:
        time_step(stack, batch, device, mixed, steps=1, warmup=0)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=219)
    parser.add_argument("--num-filters", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8, help="images per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (best kept)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=GPU_BF16_TFLOPS,
                        help="dense bfloat16 TFLOP/s of the device "
                        f"(H100/H200 SXM: {GPU_BF16_TFLOPS:g})")
    parser.add_argument("--bandwidth", type=float, default=4.8,
                        help="memory bandwidth of the device, TB/s (H200: 4.8, H100: 3.35)")
    parser.add_argument("--passes", type=int, default=7,
                        help="passes over layer 0's maps in the memory floor")
    parser.add_argument("--profile", action="store_true",
                        help="also print the top kernels of the default and the best row")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    device = torch.device(args.device)
    widths = (args.num_filters,) * NUM_LAYERS
    k, batch = args.students, args.batch_size
    base = CompactStack.students(k, widths).to(device)
    precisions = [False, True] if device.type == "cuda" else [False]
    searches = [False, True] if device.type == "cuda" else [False]
    rows = []
    print(f"{k} students of {'/'.join(map(str, widths))} filters, batch {batch}, "
          f"device {device}, torch {torch.__version__}"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else
             f", {torch.get_num_threads()} threads"))
    head = (f"{'pointwise':>9} {'memory':>13} {'precision':>9} {'cudnn search':>12} "
            f"{'s/step':>8} {'student-img/s':>14} {'TFLOP/s':>8} {'% peak':>7}")
    print(head)
    print("-" * len(head))
    flops = 2 * training_macs(widths) * k * batch
    for mixed in precisions:
        for search in searches:
            options = [dict(DEFAULT_KERNELS)] + (choices() if search or device.type == "cpu"
                                                 else [])
            for choice in options:
                if device.type == "cuda":
                    torch.backends.cudnn.benchmark = search
                stack = apply_kernels(copy.deepcopy(base), choice)
                fmt = choice["memory_format"]
                optimizer = torch.optim.Adam(stack.parameters(), lr=1e-4)
                try:
                    seconds = time_step(stack, batch, device, mixed, args.steps,
                                        optimizer=optimizer)
                except torch.OutOfMemoryError:
                    seconds = float("inf")
                del stack, optimizer
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                row = {**choice, "bfloat16": mixed, "cudnn_benchmark": search,
                       "seconds": seconds, "student_images_per_s": k * batch / seconds,
                       "tflops": flops / seconds / 1e12}
                rows.append(row)
                print(f"{choice['pointwise']:>9} {fmt:>13} {'bf16' if mixed else 'fp32':>9} "
                      f"{'on' if search else 'off':>12} {seconds:>8.4f} "
                      f"{row['student_images_per_s']:>14.1f} {row['tflops']:>8.2f} "
                      f"{row['tflops'] / args.peak_tflops:>7.2%}", flush=True)
    best = min(rows, key=lambda r: r["seconds"])
    default = rows[0]

    # the retraining's width, with the best choice
    pruned = CompactStack.students(k, PRUNED_FILTERS).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = best["cudnn_benchmark"]
    apply_kernels(pruned, best)
    retrain_seconds = time_step(pruned, batch, device, best["bfloat16"], args.steps,
                                optimizer=torch.optim.Adam(pruned.parameters(), lr=1e-4))
    del pruned

    distill_macs = training_macs(widths) * TARGET_NEURONS
    retrain_macs = training_macs(PRUNED_FILTERS) * TARGET_NEURONS
    scale = TARGET_NEURONS / k  # the measured stack scaled to 219 students by its size
    hours = TARGET_IMAGES * (best["seconds"] + retrain_seconds) / batch * scale / 3600
    compute_floor = TARGET_IMAGES * 2 * (distill_macs + retrain_macs) / (
        args.peak_tflops * 1e12) / 3600
    bytes_per_value = 2 if best["bfloat16"] else 4
    maps = LAYER_SIZES[0] ** 2 * TARGET_NEURONS * bytes_per_value * args.passes
    memory_floor = TARGET_IMAGES * maps * (widths[0] + PRUNED_FILTERS[0]) / (
        args.bandwidth * 1e12) / 3600
    print()
    print(f"best: pointwise {best['pointwise']}, memory {best['memory_format']}, "
          f"{'bf16' if best['bfloat16'] else 'fp32'}, cudnn search "
          f"{'on' if best['cudnn_benchmark'] else 'off'}: {best['seconds']:.4f} s/step, "
          f"{default['seconds'] / best['seconds']:.2f}x the default row")
    print(f"retraining width {'/'.join(map(str, PRUNED_FILTERS))} with it: "
          f"{retrain_seconds:.4f} s/step")
    print(f"projection, {TARGET_NEURONS} students x {TARGET_IMAGES / 1e6:.0f}M images, distill "
          f"+ retrain (students' steps only, measured stack scaled by {scale:.2f}): "
          f"{hours:.1f} h")
    print(f"floors: compute {compute_floor:.2f} h at {args.peak_tflops:.0f} TFLOP/s; memory "
          f"{memory_floor:.2f} h ({args.passes} passes over layer 0's maps at "
          f"{args.bandwidth} TB/s, {8 * bytes_per_value}-bit)")
    if args.profile:
        for name, row in (("default", default), ("best", best)):
            stack = apply_kernels(copy.deepcopy(base), row)
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = row["cudnn_benchmark"]
            print(f"\ntop kernels, {name} row:")
            print(_profile(stack, batch, device, row["bfloat16"]))
            del stack
    if args.json:
        args.json.write_text(json.dumps({
            "rows": rows, "retrain_seconds": retrain_seconds, "projection_hours": hours,
            "compute_floor_hours": compute_floor, "memory_floor_hours": memory_floor,
            "students": k, "batch_size": batch, "device": str(device)}, indent=1))


if __name__ == "__main__":
    main()
