"""Pick the fused population's group size and micro-batch for this machine, once, and remember it.

The fused population (:mod:`.population`) runs groups of consecutive compact models on a few
images at a time so that each group's layer-0 map stays in the processor's cache. How many
channels fit depends on the machine: one image's layer-0 map of a 64-channel group is
112*112*64*4 bytes = 3.2 MB, which fits a 4 MB private L2 but not a 1-2 MB one (common on AMD
EPYC and on many cloud Intel parts), and a micro-batch of 2 doubles it. A setting tuned on
one machine can run at half speed on another (measured: 84% vs 45% of the matmul rate on two
machines of the same cloud kind, with the same code). So instead of one constant, the
population times a few candidate settings on its first CPU inference call (about 1-3 s for
219 models), keeps the fastest, and stores it per machine in ``tuning.json`` under the
per-user cache directory, keyed by processor, thread count and torch version. Outputs do
not depend on the setting beyond float32 rounding.

``$V4COMPACT_TUNING`` controls this: a file path (where to keep the choices), or ``off`` (no
timing, no file: the defaults below are used).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ... import config

#: Layer-0 channels per fused group when nothing is tuned.
DEFAULT_GROUP_CHANNELS = 64
#: Images per group call on CPU when nothing is tuned.
DEFAULT_CPU_MICRO_BATCH = 2
#: Candidates timed by :func:`tune`.
GROUP_CHANNEL_CANDIDATES = (32, 64, 128, 256)
MICRO_BATCH_CANDIDATES = (1, 2, 4)
ENV_VAR = "V4COMPACT_TUNING"
#: Part of the cache key: raised when the population's kernels change, so that choices
#: timed on older code are timed again (2: "same" convolutions without padded copies).
TUNING_VERSION = 2


def tuning_file() -> Path | None:
    """Where choices are kept (``None`` when ``$V4COMPACT_TUNING`` is ``off``)."""
    value = os.environ.get(ENV_VAR, "")
    if value.lower() in ("off", "0", "false", "no"):
        return None
    return Path(value).expanduser() if value else config.default_cache_dir() / "tuning.json"


def machine_key() -> str:
    """Processor model, intra-op threads, torch version and :data:`TUNING_VERSION`, e.g.
    ``"Intel(R) Xeon(R) Processor|threads=2|torch=2.13.0+cpu|v2"``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}|threads={torch.get_num_threads()}|torch={torch.__version__}"
            f"|v{TUNING_VERSION}")


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(num_models: int) -> tuple[int, int] | None:
    """The stored ``(group_channels, micro_batch)`` for this machine and population size."""
    path = tuning_file()
    if path is None:
        return None
    entry = _read(path).get(machine_key(), {}).get(str(num_models))
    try:
        return int(entry["group_channels"]), int(entry["micro_batch"])
    except (TypeError, KeyError, ValueError):
        return None


def store_choice(num_models: int, group_channels: int, micro_batch: int,
                 timings: dict[str, float]) -> None:
    """Remember a choice (atomically: a temporary file renamed over the old one)."""
    path = tuning_file()
    if path is None:
        return
    data = _read(path)
    data.setdefault(machine_key(), {})[str(num_models)] = {
        "group_channels": group_channels, "micro_batch": micro_batch,
        "seconds_per_image": timings}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs re-tuning next time


def tune(run: Callable[[int, int], None], num_images: int, repeats: int = 2,
         candidates: tuple[tuple[int, int], ...] | None = None
         ) -> tuple[tuple[int, int], dict[str, float]]:
    """Time ``run(group_channels, micro_batch)`` for each candidate; return the fastest.

    Args:
        run: runs the population once on ``num_images`` images with that setting.
        num_images: images per run (for the seconds-per-image figures).
        repeats: runs per candidate; the best time counts (the first run warms up caches).
            The candidates take turns (one run of each per round), so a change of load
            during tuning affects all of them alike rather than the last ones.
        candidates: ``(group_channels, micro_batch)`` pairs (default: every combination of
            :data:`GROUP_CHANNEL_CANDIDATES` and :data:`MICRO_BATCH_CANDIDATES`).

    Returns:
        ``((group_channels, micro_batch), {"G/M": seconds per image})``.
    """
    if candidates is None:
        candidates = tuple((g, m) for g in GROUP_CHANNEL_CANDIDATES
                           for m in MICRO_BATCH_CANDIDATES)
    best = {c: float("inf") for c in candidates}
    for _ in range(repeats):
        for candidate in candidates:
            start = time.perf_counter()
            run(*candidate)
            best[candidate] = min(best[candidate], time.perf_counter() - start)
    timings = {f"{g}/{m}": seconds / max(num_images, 1) for (g, m), seconds in best.items()}
    choice = min(timings, key=timings.get)
    group_channels, micro_batch = (int(v) for v in choice.split("/"))
    return (group_channels, micro_batch), timings
