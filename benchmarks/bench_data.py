"""Speed and memory of loading a session's images, printed as a table.

Compares ``np.asarray(load_session(sid).images)`` (threaded decode straight from the zip)
with the plain way: open the zip and decode every JPEG with Pillow in a Python loop. Also
reports the cached second access and the peak memory of ``load_session`` + all images
(tracemalloc, which sees numpy's allocations).

Usage: python benchmarks/bench_data.py [--session 190923] [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import time
import tracemalloc
import zipfile

import numpy as np
from PIL import Image

import v4compact
from v4compact.data import local, paths


def pillow_loop(zip_path) -> np.ndarray:
    """The baseline: decode every JPEG of the zip, one after the other."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith(".jpg"))
        return np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB"))
                         for n in names])


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", type=int, default=190923)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    sid, data_dir = args.session, args.data_dir
    zip_path = local.require(paths.images_zip(sid), data_dir, f"images:{sid}")

    def load_all(num_workers=None):
        session = v4compact.load_session(sid, data_dir=data_dir)
        if num_workers is not None:
            session.images.num_workers = num_workers
        return np.asarray(session.images)

    t_pillow, reference = best_of(args.repeats, lambda: pillow_loop(zip_path))
    t_ours, ours = best_of(args.repeats, load_all)
    t_serial, _ = best_of(args.repeats, lambda: load_all(num_workers=1))
    assert np.array_equal(ours, reference), "decoded images differ from Pillow's"
    session = v4compact.load_session(sid, data_dir=data_dir)
    np.asarray(session.images)
    t_cached, _ = best_of(args.repeats, lambda: np.asarray(session.images))

    tracemalloc.start()
    load_all()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    n = len(reference)
    workers = v4compact.load_session(sid, data_dir=data_dir).images.num_workers
    rows = [
        ("Pillow loop (baseline)", t_pillow, "1"),
        ("load_session + np.asarray(images)", t_ours, str(workers)),
        ("same, one decoding thread", t_serial, "1"),
        ("second np.asarray (cached)", t_cached, "-"),
    ]
    print(f"session {sid}: {n} images {reference.shape[1:]} uint8, "
          f"{reference.nbytes / 2**20:.1f} MiB decoded; {os.cpu_count()} CPUs; "
          f"best of {args.repeats}")
    print(f"{'method':<36} {'threads':>7} {'time (s)':>9} {'ms/image':>9} {'vs Pillow':>9}")
    print("-" * 74)
    for name, seconds, threads in rows:
        ratio = t_pillow / seconds if seconds > 0 else float("inf")
        shown = f"{ratio:>8.2f}x" if ratio < 1000 else f"{'>1000x':>9}"
        print(f"{name:<36} {threads:>7} {seconds:>9.3f} {1000 * seconds / n:>9.3f} {shown}")
    print(f"\npeak memory of load_session + all images (tracemalloc): {peak / 2**20:.1f} MiB "
          f"(decoded array {reference.nbytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
