"""Synthesis speed: many neurons in one batched job vs one neuron at a time.

Modes (upstream preset, 1 start per neuron):

* ``batched``  — all K neurons x 1 start as ONE job (one batch of K images, one loop, one
  progress bar); each image runs only through its own neuron's compact model (routing).
* ``fused``    — the same job through the fused population's all-neuron forward
  (``route=False``): every image runs through all K models. Timed on a few steps only.
* ``single``   — one neuron at a time (a K-long loop of 1-image jobs); timed on
  ``--single-sample`` neurons and extrapolated to K (the table says so).

Prints a table: mode, neurons, images per step, seconds for all steps (measured or
extrapolated), optimisation steps per second of the whole K-neuron job, image-steps/s, the
multiply-accumulate rate it reaches and that rate as a share of the machine's large-matmul
rate (measured in the same run). One step of one image through its own compact model costs
about 3x the model's forward MACs (forward, gradient w.r.t. activations, and the input
gradient; no weight gradients are needed, so this slightly overstates the work - the MAC
rate is an upper estimate of the useful rate); the counts are exact from the filter counts.

Then (CPU, ``--step-rounds``) one model-step alone on one thread - forward and the input
gradient of one image through one folded, channels-last model, three models - with layer 0's
input gradient as :func:`~v4compact.models.nets.layers.conv_input_gradient` (the frozen weights of
synthesis) vs PyTorch's own backward convolution (the same models with trainable weights: only
the input gradient is asked for, so only it is computed), the two alternating for that many
rounds; best and median milliseconds per model-step.

Run:  python benchmarks/bench_synthesis.py --neurons 219 --steps 100 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from v4compact.models.formats.loaders import load_compact_model
from v4compact.models.nets.macs import total_macs
from v4compact.models.zoo import model_neuron_ids
from v4compact.synthesis import synthesize
from v4compact.synthesis.routing import RoutedModels


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def matmul_rate(device: str, size: int = 4096, repeats: int = 5) -> float:
    """Best large float32 matmul rate on ``device`` in multiply-accumulates per second."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        best = min(best, _time(lambda: torch.mm(a, b), device))
    return size**3 / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=219, help="K neurons (<= 219)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--single-sample", type=int, default=5,
                        help="neurons timed one at a time (then extrapolated to K)")
    parser.add_argument("--fused-steps", type=int, default=0,
                        help="also time the fused all-neuron forward for this many steps")
    parser.add_argument("--step-rounds", type=int, default=10,
                        help="rounds of the one-model-step comparison on the CPU (0: skip)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    ids = model_neuron_ids()
    stride = max(1, len(ids) // args.neurons)
    chosen = ids[::stride][: args.neurons]
    t0 = time.perf_counter()
    models = [load_compact_model(*n.split("/"), device=args.device) for n in chosen]
    print(f"loaded {len(models)} compact models in {time.perf_counter() - t0:.1f} s "
          f"on {args.device} ({torch.get_num_threads()} CPU threads)")
    k, steps = len(models), args.steps
    rows = []

    # warm-up (allocator, oneDNN / cuDNN kernel choice)
    synthesize(models[0], seeds=1, steps=2, progress=False, device=args.device)

    routed = RoutedModels(models, model_id="population(routed)")
    sec = _time(lambda: synthesize(routed, chosen, seeds=1, steps=steps, progress=True,
                                   device=args.device), args.device)
    rows.append(("batched (routed, one job)", k, k, sec, "measured"))
    _print_rows(rows, models, steps, None)  # each row as soon as it is measured

    # the baseline before the optional fused row (which can be slow to start on a GPU)
    m = min(args.single_sample, k)
    sec_1 = sum(_time(lambda mod=mod: synthesize(mod, seeds=1, steps=steps, progress=False,
                                                 device=args.device), args.device)
                for mod in models[:m])
    rows.append(("one neuron at a time", k, 1, sec_1 / m * k,
                 f"extrapolated from {m} neurons"))
    _print_rows(rows[-1:], models, steps, None)

    if args.fused_steps:
        from v4compact.models.engines.population import CompactPopulation

        population = CompactPopulation(models)
        fs = args.fused_steps
        sec_f = _time(lambda: synthesize(population, chosen, seeds=1, steps=fs, route=False,
                                         progress=True, device=args.device), args.device)
        rows.append(("batched (fused all-neuron)", k, k, sec_f * steps / fs,
                     f"extrapolated from {fs} steps"))

    rate = matmul_rate(args.device)
    print("\nall rows:")
    _print_rows(rows, models, steps, rate)
    print(f"large-matmul rate on {args.device}: {rate / 1e9:.1f} GMAC/s")
    print(f"\n{steps} upstream steps per neuron, 1 start each, device {args.device}")
    if args.step_rounds and args.device == "cpu":
        model_step_table(models[:3], args.step_rounds)
    return 0


def model_step_table(models: list, rounds: int) -> None:
    """One model-step (1 image, forward + input gradient, one thread) per model, with layer
    0's input gradient as a matrix product (frozen weights) vs PyTorch's convolution backward
    (trainable weights), the two alternating; prints best and median ms per model-step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fused = [m.fuse().eval().to(memory_format=torch.channels_last) for m in models]
        x = torch.randn(1, 3, 112, 112).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        times: dict[str, list[float]] = {"matrix product": [], "pytorch": []}
        for _ in range(rounds + 1):  # the first round warms up
            for path, times_ in times.items():
                for model in fused:
                    model.requires_grad_(path == "pytorch")
                t0 = time.perf_counter()
                for _ in range(10):
                    for model in fused:
                        torch.autograd.grad(model(x).sum(), x)
                times_.append((time.perf_counter() - t0) / (10 * len(fused)) * 1e3)
    finally:
        torch.set_num_threads(threads)
    names = ", ".join(m.model_id.split("/", 1)[-1] for m in models)
    print(f"\none model-step alone (1 image, forward + input gradient, 1 thread; {names}; "
          f"{rounds} alternating rounds)")
    print(f"{'layer 0 input gradient':<26}{'best ms':>9}{'median ms':>11}")
    for path, times_ in times.items():
        print(f"{path:<26}{min(times_[1:]):>9.2f}{statistics.median(times_[1:]):>11.2f}")
    best = min(times["pytorch"][1:]) / min(times["matrix product"][1:])
    print(f"ratio (best): {best:.2f}x")


def _print_rows(rows: list, models: list, steps: int, rate: float | None) -> None:
    """The table (``rate``: the large-matmul rate, or None before it is measured)."""
    # forward + backward to the input: ~3 forward passes' worth of MACs per image-step
    step_macs = 3 * sum(total_macs(m.core.num_filters) for m in models)
    print(f"{'mode':<28}{'neurons':>8}{'img/step':>9}{'seconds':>10}{'steps/s':>9}"
          f"{'img-steps/s':>13}{'GMAC/s':>9}{'% matmul':>9}  note")
    for mode, neurons, per_step, seconds, note in rows:
        work = step_macs * steps
        if mode.startswith("batched (fused"):
            work *= len(models)  # every image runs through every model
        gmacs = work / seconds / 1e9
        share = f"{100 * gmacs * 1e9 / rate:>8.1f}%" if rate else f"{'-':>9}"
        print(f"{mode:<28}{neurons:>8}{per_step:>9}{seconds:>10.1f}{steps / seconds:>9.3f}"
              f"{neurons * steps / seconds:>13.1f}{gmacs:>9.1f}{share}  {note}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
