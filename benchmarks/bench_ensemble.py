"""Ensemble training speed: the feature cache, and member throughput (CPU, CUDA if present).

Tables:

1. Time per epoch of ``train_ensemble`` with the feature cache (filled beforehand; the fill
   is timed on its own) and without it (the backbone recomputed at every session visit, as
   upstream's script does). Same small run in both: 2 members of width 128, 2 sessions and
   the validation session, ``--max-images`` images each, backbone
   ``shared/from_ensemble_model/200:layer3`` pooled to 14x14, preset ``upstream``, 1 epoch.
2. Member training throughput: SGD steps of batch 64 on backbone features (forward,
   backward, per-element clip, update) at the released width (512 / 256) and at 128 / 64;
   members/s = member-steps per second / steps of one member over a session of 1,000
   images; and the projection to upstream's full schedule (~17k steps per member).

Run from the project root on an otherwise idle machine::

    .venv/bin/python benchmarks/bench_ensemble.py [--threads 1] [--max-images 192]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from v4compact.features import FeatureCache
from v4compact.models.teachers.ensemble import EnsembleMember
from v4compact.training.ensemble import (
    FEATURE_CACHE_DTYPE,
    PRESETS,
    EnsembleTrainingConfig,
    _Features,
    _run_backbone,
    train_ensemble,
)

#: Upstream's SGD steps per member (SYSTEM.md §6): 70,817 images, 1 + 2 + ... + 5 passes.
UPSTREAM_STEPS_PER_MEMBER = 17_000
SESSION_IMAGES = 1000


def epoch_table(max_images: int) -> None:
    config = EnsembleTrainingConfig(sessions=[210305, 210322], members=2, epochs=1,
                                    width=128, inner_width=64, max_images=max_images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone = _run_backbone(config, "cpu", None)
        source = _Features(backbone, FeatureCache(tmp / "cache", dtype=FEATURE_CACHE_DTYPE),
                           max_images, None)
        start = time.perf_counter()
        for sid, training in ((210305, True), (210322, True), (config.validation, False)):
            source.load(sid, training)
        fill = time.perf_counter() - start
        rows = []
        for use_cache in (True, False):
            out = tmp / f"run-{use_cache}"
            summary = train_ensemble(out, config, cache_dir=tmp / "cache", use_cache=use_cache,
                                     progress=False)
            rows.append((use_cache, summary["epoch_seconds"][0]))
    images = 3 * max_images
    print(f"\n1. time per epoch ({config.members} members, 2 sessions x {max_images} images, "
          f"validation on {max_images}; backbone {config.backbone} pooled to 14x14)")
    print(f"   cache fill, once: {fill:7.1f} s ({1000 * fill / images:.0f} ms per image)")
    for use_cache, seconds in rows:
        print(f"   {'with the feature cache' if use_cache else 'without (recomputed)':24s}"
              f"{seconds:7.1f} s per epoch")


def throughput_table(device: str, steps: int) -> None:
    print(f"\n2. member training throughput on {device} ({torch.get_num_threads()} threads), "
          "batch 64, features (100, 14, 14)")
    preset = PRESETS["upstream"]
    for width, inner in ((512, 256), (128, 64)):
        member = EnsembleMember(100, 14, width=width, inner_width=inner, seed=0).to(device)
        optimizer = torch.optim.SGD(member.parameters(), lr=0.1, momentum=preset.momentum)
        x = torch.randn(64, 100, 14, 14, device=device)
        y = torch.randn(64, 50, device=device)
        times = []
        for _ in range(steps + 2):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            loss = ((member(x)[:, :50] - y) ** 2).sum(1).mean() / member.num_outputs
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(member.parameters(), preset.clip_value)
            optimizer.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        step = float(np.median(times[2:]))
        per_session = SESSION_IMAGES / 64
        print(f"   width {width:3d}/{inner:3d} ({member.num_parameters:>9,} parameters): "
              f"{1 / step:6.2f} member-steps/s, {64 / step:7.0f} images/s, "
              f"{1 / (step * per_session):6.3f} members/s over a {SESSION_IMAGES}-image "
              f"session; upstream schedule: {UPSTREAM_STEPS_PER_MEMBER * step / 3600:5.1f} h "
              "per member")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--max-images", type=int, default=192,
                        help="images per session in the epoch table")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per width")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epoch_table(args.max_images)
    throughput_table("cpu", args.steps)
    if torch.cuda.is_available():
        throughput_table("cuda", 4 * args.steps)


if __name__ == "__main__":
    main()
