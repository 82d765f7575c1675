"""Predicting all 219 compact models on a test session's held-out images, side by side.

(a) the fused population (``v4compact.load_compact_population``), (b) a Python loop over the
219 separate ``CompactModel`` objects, (c) Keras 3 / TensorFlow looping over the released
``.keras`` files, when a TensorFlow interpreter is found (``--keras-python``, default
``.venv-keras/bin/python`` next to this project); Keras runs in a subprocess on a sample of
models and images and its time is extrapolated to 219 models by multiply-accumulates (the
table says so). Each row gives images/s, the ratio to Keras and to the loop, the achieved
multiply-accumulate rate (MACs counted exactly from the filter counts) against the machine's
own large-matmul rate (``torch.mm`` of float32 4096x4096 matrices, same thread count,
measured in the same run) and the peak extra resident memory during the run. The same
rows are measured on CUDA when a GPU is available. A per-stage profile of the population
shows where its time goes.

Usage::

    python benchmarks/bench_models.py                      # 600 held-out images of 190923
    python benchmarks/bench_models.py --num-images 48 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import v4compact
from v4compact.images import recenter
from v4compact.models.inputs import to_model_input
from v4compact.models.nets.macs import total_macs

REPO = Path(__file__).resolve().parents[1]

KERAS_SCRIPT = r"""
import json, sys, time, os
import numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
paths, images_file, repeats = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
x = np.load(images_file)
models = [keras.saving.load_model(p, compile=False) for p in paths]
for m in models:
    m.predict_on_batch(x[:2])  # warm-up (graph tracing)
def best_of(fn):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for m in models:
            fn(m)
        best = min(best, time.perf_counter() - start)
    return best
batched = best_of(lambda m: m.predict_on_batch(x))
predict = best_of(lambda m: m.predict(x, verbose=0))
# one image per call, the way a per-image script loops (first 8 images; per image below)
num_single = min(8, len(x))
single = best_of(lambda m: [m.predict(x[i:i + 1], verbose=0) for i in range(num_single)])
import tensorflow as tf
print(json.dumps({"seconds": batched, "seconds_predict": predict,
                  "seconds_single": single / num_single * len(x), "tf": tf.__version__,
                  "keras": keras.__version__}))
"""


class PeakMemory:
    """Peak resident memory above the starting level, sampled every 5 ms (Linux /proc)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: fall back to the lifetime peak
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            self.peak = torch.cuda.max_memory_allocated() - self.base
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def matmul_rate(device: str, size: int = 4096, repeats: int = 5) -> float:
    """Best large float32 matmul rate in multiply-accumulates per second."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=gen)
    b = torch.randn(size, size, device=device, generator=gen)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return size**3 / best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int, warmup=None) -> tuple[float, int]:
    """Best wall time of ``fn()`` over ``repeats`` runs and peak memory, after a warm-up
    (``warmup()``, default one run of ``fn``)."""
    (warmup or fn)()
    best = float("inf")
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best, memory.peak


def profile_stages(population, images: np.ndarray, device: str) -> dict:
    """Where the population's time goes: every group's steps timed one by one.

    On CPU this runs on one thread (per-step timing needs a serial run); the rate it is
    compared with is the one-thread matmul rate, measured here too.
    """
    x = to_model_input(images, device).contiguous(memory_format=torch.channels_last)
    step = population.micro_batch or (2 if device == "cpu" else len(x))
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        rate = matmul_rate(device, size=2048)
        totals: dict[str, float] = {}
        with torch.inference_mode():
            for _ in range(2):  # the first pass warms up; the second is kept
                totals = {}
                for group in population.groups:
                    for start in range(0, len(x), step):
                        y = x[start:start + step]
                        for name, fn in group.stages():
                            _sync(device)
                            begin = time.perf_counter()
                            y = fn(y)
                            _sync(device)
                            totals[name] = totals.get(name, 0.0) + time.perf_counter() - begin
    finally:
        torch.set_num_threads(threads)
    macs = population.macs()
    stage_macs = {"layer0": macs["layer0"], "output": macs["readout"]}
    for k in range(1, 5):
        stage_macs[f"layer{k}.depthwise"] = macs[f"layer{k}.depthwise"]
        stage_macs[f"layer{k}"] = macs[f"layer{k}.pointwise"]
    rows = [{"stage": name, "seconds_per_image": took / len(x),
             "macs_per_image": stage_macs[name], "mac_per_s": stage_macs[name] * len(x) / took}
            for name, took in totals.items()]
    return {"threads": 1 if device == "cpu" else None, "matmul_mac_per_s": rate, "rows": rows}


def run_keras(python: Path, paths: list[Path], images: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "x.npy"
        np.save(file, recenter(images))
        done = subprocess.run([str(python), "-c", KERAS_SCRIPT, json.dumps(list(map(str, paths))),
                               str(file), "2"], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"keras subprocess failed: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--session", type=int, default=190923, help="test session")
    parser.add_argument("--num-images", type=int, default=600,
                        help="held-out images for the population (default: all 600)")
    parser.add_argument("--loop-images", type=int, default=16,
                        help="images for the 219-model loop (extrapolated per image)")
    parser.add_argument("--keras-models", type=int, default=6,
                        help="models in the Keras sample (evenly spread over the 219)")
    parser.add_argument("--keras-images", type=int, default=32, help="images for Keras")
    parser.add_argument("--keras-python", default=str(REPO / ".venv-keras" / "bin" / "python"),
                        help="interpreter with tensorflow + keras 3 ('' to skip)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--profile-images", type=int, default=4,
                        help="images for the per-stage profile (0 to skip)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None,
                        help="devices to measure (default: cpu, and cuda when available)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    session = v4compact.load_session(args.session)
    _, heldout = session.heldout_split()
    images = np.asarray(session.images[heldout[:args.num_images]])
    population = v4compact.load_compact_population()
    macs_per_image = population.macs()["total"]
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {"session": args.session, "num_images": len(images),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "macs_per_image": macs_per_image, "rows": [], "profiles": {}}

    for device in devices:
        population.to(device)
        models = population.to_compact_models()
        rate_before = matmul_rate(device)

        def fused(device=device, images=images):
            population.predict(images, batch_size=args.batch_size, device=device)

        seconds, memory = timed(fused, device, args.repeats,
                                warmup=lambda: fused(images=images[:4]))
        rows = [{"device": device, "method": "fused population", "images": len(images),
                 "seconds_per_image": seconds / len(images), "peak_memory": memory,
                 "note": ""}]
        loop_images = images[:args.loop_images]

        def loop(models=models, device=device, loop_images=loop_images):
            for model in models:
                model.predict(loop_images, batch_size=args.batch_size, device=device)

        seconds, memory = timed(loop, device, 1, warmup=lambda: loop(loop_images=images[:1]))
        rows.append({"device": device, "method": "loop over 219 CompactModels",
                     "images": len(loop_images), "seconds_per_image": seconds / len(loop_images),
                     "peak_memory": memory, "note": ""})
        rate = max(rate_before, matmul_rate(device))
        result[f"matmul_mac_per_s_{device}"] = rate
        if args.profile_images:
            result["profiles"][device] = profile_stages(population, images[:args.profile_images],
                                                        device)
        result["rows"] += rows

    keras_python = Path(args.keras_python) if args.keras_python else None
    if keras_python is not None and keras_python.exists() and "cpu" in devices:
        ids = population.neuron_ids
        picks = np.linspace(0, len(ids) - 1, args.keras_models).round().astype(int)
        paths = [session_path(ids[i]) for i in picks]
        sample_macs = sum(total_macs(population.filters_per_model[i]) for i in picks)
        kimages = images[:args.keras_images]
        out = run_keras(keras_python, paths, kimages)
        per_image = out["seconds"] / len(kimages) * macs_per_image / sample_macs
        result["keras"] = {**out, "models": len(picks), "images": len(kimages),
                           "seconds_per_image_per_model": out["seconds"] / len(kimages)
                           / len(picks)}
        per_image_predict = (out["seconds_predict"] / len(kimages) * macs_per_image
                             / sample_macs)
        per_image_single = (out["seconds_single"] / len(kimages) * macs_per_image
                            / sample_macs)
        note = f"{len(picks)} models x {len(kimages)} images, scaled to 219 by MACs"
        result["rows"][:0] = [
            {"device": "cpu", "method": "Keras loop, predict_on_batch", "images": len(kimages),
             "seconds_per_image": per_image, "peak_memory": None, "note": note},
            {"device": "cpu", "method": "Keras loop, model.predict", "images": len(kimages),
             "seconds_per_image": per_image_predict, "peak_memory": None, "note": note},
            {"device": "cpu", "method": "Keras loop, 1 image per call", "images": len(kimages),
             "seconds_per_image": per_image_single, "peak_memory": None,
             "note": f"{len(picks)} models x 8 images one at a time, scaled to 219 by MACs"}]

    keras_row = next((r for r in result["rows"] if r["method"].startswith("Keras")), None)
    # ratios are against the faster Keras variant (predict_on_batch), the harder baseline
    for row in result["rows"]:
        row["images_per_s"] = 1.0 / row["seconds_per_image"]
        row["mac_per_s"] = macs_per_image / row["seconds_per_image"]
        row["fraction_of_matmul"] = row["mac_per_s"] / result[f"matmul_mac_per_s_{row['device']}"]
        loop_row = next(r for r in result["rows"] if r["device"] == row["device"]
                        and r["method"].startswith("loop"))
        row["speedup_vs_loop"] = loop_row["seconds_per_image"] / row["seconds_per_image"]
        row["speedup_vs_keras"] = (keras_row["seconds_per_image"] / row["seconds_per_image"]
                                   if keras_row else None)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def session_path(neuron_id: str) -> Path:
    session, neuron = neuron_id.split("/")
    return (v4compact.data_dir() / "data_compact_models" / "models_keras"
            / f"compact_model_{session}_neuron{neuron}.keras")


def print_table(result: dict) -> None:
    gmac = result["macs_per_image"] / 1e9
    print(f"\n219 compact models ({gmac:.2f} GMAC per image), session {result['session']} "
          f"held-out images, {result['threads']} threads, torch {result['torch']}")
    for key, value in result.items():
        if key.startswith("matmul_mac_per_s_"):
            print(f"large-matmul rate on {key.rsplit('_', 1)[1]}: {value / 1e9:.1f} GMAC/s")
    head = (f"{'device':6} {'method':32} {'images':>6} {'s/image':>9} {'images/s':>9} "
            f"{'vs Keras':>9} {'vs loop':>8} {'GMAC/s':>8} {'% matmul':>9} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        keras = f"{r['speedup_vs_keras']:.1f}x" if r["speedup_vs_keras"] else "-"
        memory = f"{r['peak_memory'] / 2**20:.0f}" if r["peak_memory"] is not None else "-"
        print(f"{r['device']:6} {r['method']:32} {r['images']:>6} {r['seconds_per_image']:>9.4f} "
              f"{r['images_per_s']:>9.2f} {keras:>9} {r['speedup_vs_loop']:>7.1f}x "
              f"{r['mac_per_s'] / 1e9:>8.1f} {100 * r['fraction_of_matmul']:>8.1f}% {memory:>8}")
        if r["note"]:
            print(f"{'':6} ({r['note']})")
    for device, profile in result["profiles"].items():
        rate, rows = profile["matmul_mac_per_s"], profile["rows"]
        threads = f", {profile['threads']} thread" if profile["threads"] else ""
        print(f"\nper-stage profile of the fused population on {device}{threads} "
              f"(matmul rate {rate / 1e9:.1f} GMAC/s)")
        print(f"{'stage':18} {'ms/image':>9} {'GMAC/image':>11} {'GMAC/s':>8} {'% matmul':>9}")
        for r in rows:
            print(f"{r['stage']:18} {1e3 * r['seconds_per_image']:>9.2f} "
                  f"{r['macs_per_image'] / 1e9:>11.4f} {r['mac_per_s'] / 1e9:>8.1f} "
                  f"{100 * r['mac_per_s'] / rate:>8.1f}%")
        total = sum(r["seconds_per_image"] for r in rows)
        print(f"{'total':18} {1e3 * total:>9.2f} {result['macs_per_image'] / 1e9:>11.4f} "
              f"{result['macs_per_image'] / total / 1e9:>8.1f} "
              f"{100 * result['macs_per_image'] / total / rate:>8.1f}%")


if __name__ == "__main__":
    main()
    sys.exit(0)
