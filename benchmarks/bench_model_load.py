"""Loading and single-model prediction speed of the compact and shared models.

Prints two tables: (1) time to load a compact model from each release format (the three
neurons that have every format), and every released model from ``.keras``; (2) prediction
time per image of single models (PyTorch, float32), on CPU and, when available, CUDA.
Run from the project root:

    .venv/bin/python benchmarks/bench_model_load.py [--data-dir DIR] [--images 64]

(The fused 219-neuron population and the Keras comparison have their own benchmark.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from v4compact.models.formats.keras_io import FORMATS
from v4compact.models.formats.loaders import load_compact_model
from v4compact.models.zoo import list_models, load_model

SAMPLE_NEURONS = [(190923, 0), (201025, 10), (210225, 5)]


def timed(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls, seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| what | models | time (ms per model) |\n| --- | --- | --- |")
    for fmt in FORMATS:
        sec = timed(lambda fmt=fmt: [load_compact_model(s, n, data_dir=args.data_dir, format=fmt)
                                     for s, n in SAMPLE_NEURONS])
        print(f"| load compact, {fmt} | {len(SAMPLE_NEURONS)} | {1e3 * sec / 3:.1f} |")
    for kind in ("compact", "shared"):
        kind_ids = list_models(f"{kind}/*", data_dir=args.data_dir, present_only=True)
        sec = timed(lambda kind_ids=kind_ids: [load_model(i, data_dir=args.data_dir)
                                               for i in kind_ids], repeats=1)
        print(f"| load every {kind} model (.keras) | {len(kind_ids)} | "
              f"{1e3 * sec / max(len(kind_ids), 1):.1f} |")

    images = np.random.default_rng(0).integers(0, 256, (args.images, 112, 112, 3), np.uint8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n| model | filters | device | ms per image |\n| --- | --- | --- | --- |")
    for model_id in ("compact/201025/10", "compact/190923/0", "shared/from_ensemble_model/10",
                     "shared/from_ensemble_model/200"):
        model = load_model(model_id, data_dir=args.data_dir)
        for device in devices:
            model.predict(images[:8], device=device)  # warm-up
            sec = timed(lambda model=model, device=device: model.predict(images, device=device))
            print(f"| {model_id} | {model.num_filters} | {device} | "
                  f"{1e3 * sec / len(images):.2f} |")


if __name__ == "__main__":
    main()
