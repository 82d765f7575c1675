"""What every training job needs around its loop: processes, seeds, checkpoints, logs, progress.

- **Processes** (:func:`init_runtime`, :class:`Runtime`): a job launched by ``torchrun``
  (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the environment)
  joins the process group - gloo on CPU, NCCL on CUDA (each process on the GPU
  ``cuda:LOCAL_RANK``); a job started any other way runs as a single process (rank 0 of 1)
  and calls no ``torch.distributed`` function at all. :func:`broadcast_object`,
  :func:`gather_objects` and :func:`barrier` are no-ops for a single process;
  :func:`shard` splits work items (ensemble members, image shards) over ranks.
  :func:`exact_float32` switches CUDA's TF32 off inside a block, for comparisons that must
  show float32 rounding.
- **Seeds** (:func:`seed_everything`, :func:`rng_state`, :func:`set_rng_state`): Python's
  ``random``, numpy's global generator and torch's CPU and CUDA generators, set and saved
  together.
- **Checkpoints** (:func:`save_checkpoint`, :func:`load_checkpoint`): a state dict written
  through :func:`v4compact.files.atomic_write` (a temporary file in the same folder, renamed
  over the target), so a kill leaves either the previous checkpoint or the new one, never
  half a file. Everything saved is loadable with ``torch.load(weights_only=True)`` (random
  states are stored as tensors and plain Python values), so resuming never unpickles code.
  Exact resume = model and optimizer state dicts + :func:`rng_state` + the caller's position
  in its data order (epoch, session, pass ...).
- **Metrics** (:class:`MetricsLog`): one CSV row per event, written by rank 0 and flushed at
  once; a resumed job truncates the rows written after its checkpoint, so the log of a killed
  and resumed run equals that of an uninterrupted one. Numeric columns also go to
  TensorBoard when the ``tensorboard`` package is installed (optional, never required).
  :func:`training_curves_figure` draws the CSV.
- **Progress** (:func:`progress`): tqdm bars on rank 0 only.

Why these choices. ``torchrun`` + plain :mod:`torch.distributed` because the jobs of this
package are not all data-parallel: ensemble members are independent models spread over ranks
(no gradient all-reduce, only early-stopping decisions broadcast), distillation shards images.
DDP would wrap only the latter, and Lightning (a heavy dependency, not installed) assumes one
model replicated per process and its own loop, which does not fit upstream's schedule (a new
optimizer each epoch, a pass count that grows with the epoch). ``torch.save`` + ``os.replace``
instead of :mod:`torch.distributed.checkpoint`: the latter exists to shard one large state
over ranks (FSDP); here each rank's state is small and its own, one file per rank is simpler
and resumable on any world size that the caller allows. ``torchrun`` itself gives launching,
multi-node rendezvous and restart-on-failure for free::

    torchrun --nproc_per_node=8 -m v4compact train ensemble ...            # one node
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m v4compact train ensemble ...          # on each node
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import DataNotFoundError, InvalidInputError
from ..files import atomic_write
from ..models.nets.weights import load_weights_only

__all__ = [
    "MetricsLog",
    "Runtime",
    "barrier",
    "broadcast_object",
    "gather_objects",
    "init_runtime",
    "launched_by_torchrun",
    "load_checkpoint",
    "progress",
    "read_metrics",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "shard",
    "shutdown_runtime",
    "training_curves_figure",
]

#: Environment variables torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Runtime:
    """Where this process stands in a (possibly single-process) job.

    Attributes:
        rank: this process's rank, 0 ... world_size - 1.
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        device: the torch device this process computes on.
        backend: ``"gloo"`` or ``"nccl"`` when a process group is up, else ``None``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes logs, figures and shared files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is up (launched by torchrun with any world size)."""
        return self.backend is not None


def launched_by_torchrun() -> bool:
    """True when the environment holds torchrun's variables (:data:`TORCHRUN_VARIABLES`)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def init_runtime(device: torch.device | str | None = None) -> Runtime:
    """Join torchrun's process group, or run as a single process.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available). Under torchrun a
            CUDA process uses ``cuda:LOCAL_RANK``.

    Returns:
        The :class:`Runtime`; the process group (if any) stays up until
        :func:`shutdown_runtime`.

    Raises:
        InvalidInputError: CUDA asked for where none is available, or more local processes
            than GPUs.
    """
    want = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if want.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' asked for but no CUDA device is available; "
                                "use --device cpu")
    if not launched_by_torchrun():
        return Runtime(device=want)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if want.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InvalidInputError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU (--nproc_per_node)"
            )
        want = torch.device("cuda", local_rank)
        torch.cuda.set_device(want)
    backend = "nccl" if want.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank,
                                world_size=world_size)
    return Runtime(rank, world_size, local_rank, want, backend)


def shutdown_runtime(runtime: Runtime) -> None:
    """Leave the process group (no-op for a single process)."""
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence, runtime: Runtime) -> list:
    """This rank's share of ``items``: every ``world_size``-th item from ``rank`` on.

    Round-robin keeps the shares within one item of each other and gives item ``k`` the same
    rank whatever else is in the list.
    """
    return list(items)[runtime.rank::runtime.world_size]


def broadcast_object(value, runtime: Runtime, src: int = 0):
    """``value`` as rank ``src`` has it, on every rank (picklable objects)."""
    if not runtime.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(value, runtime: Runtime) -> list:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` for one process)."""
    if not runtime.distributed:
        return [value]
    out = [None] * runtime.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(runtime: Runtime) -> None:
    """Wait until every rank gets here (no-op for a single process)."""
    if runtime.distributed:
        dist.barrier()


@contextmanager
def exact_float32():
    """float32 on CUDA as on the CPU inside the block: cuDNN convolutions and matmuls may
    use TF32 by default (a 10-bit mantissa, ~1e-3 relative error), which is fine for
    training but would swamp comparisons meant to show float rounding (e.g. a rebuilt
    network against its masked original)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ----------------------------------------------------------------------------- seeds


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    seed = int(seed)
    random.seed(seed)
    # the legacy global generator on purpose: it is what third-party code draws from
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The state of every global random generator, storable with ``weights_only`` loading.

    Returns:
        ``{"python": tuple, "numpy": dict, "torch": uint8 tensor, "cuda": [uint8 tensors]}``.
    """
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: Mapping) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_as_tuples(state["python"]))
    saved = state["numpy"]
    np.random.set_state({  # noqa: NPY002
        "bit_generator": saved["bit_generator"],
        "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"],
        "gauss": saved["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """Lists back to tuples (``random.setstate`` wants tuples; some loaders give lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, state: Mapping) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    Args:
        path: the checkpoint file (its folder is created).
        state: tensors, state dicts and plain Python values (what ``torch.load`` with
            ``weights_only=True`` reads back).

    Returns:
        The path written.
    """
    path = Path(path)
    with atomic_write(path, "wb") as file:
        torch.save(dict(state), file)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code runs).

    Raises:
        DataNotFoundError: no such file.
        CorruptDataError: the file is not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} not found; start without --resume")
    return load_weights_only(path, map_location, kind="checkpoint",
                             fix="delete it and start again")


# ----------------------------------------------------------------------------- metrics


class MetricsLog:
    """A CSV of metric rows (one dict per event), written by rank 0 only.

    Columns are the keys in order of first appearance; a row with a new key rewrites the file
    with the wider header (rows lacking a key leave it empty). Every row is flushed at once.

    Args:
        path: the CSV file.
        enabled: write at all (``runtime.is_main``); a disabled log only counts rows.
        keep_rows: resume: keep the first ``keep_rows`` rows of an existing file and drop the
            rest (the rows written after the checkpoint); ``None`` starts a new file.
        tensorboard_dir: also write numeric columns as TensorBoard scalars here, when the
            ``tensorboard`` package is installed (else ignored); the row's ``step`` column is
            the global step.

    Attributes:
        rows: the rows so far (list of dicts), the kept ones included.
    """

    def __init__(self, path: str | os.PathLike, enabled: bool = True,
                 keep_rows: int | None = None,
                 tensorboard_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.rows: list[dict] = []
        if keep_rows is not None and self.path.is_file():
            self.rows = read_metrics(self.path)[:keep_rows]
        self._columns: list[str] = list(dict.fromkeys(k for row in self.rows for k in row))
        self._tensorboard = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite()
            if tensorboard_dir is not None:
                self._tensorboard = _tensorboard_writer(tensorboard_dir)

    def __len__(self) -> int:
        return len(self.rows)

    def log(self, **row) -> None:
        """Append one row (values: numbers or strings; ``None`` leaves the cell empty)."""
        self.rows.append(row)
        if not self.enabled:
            return
        new = [key for key in row if key not in self._columns]
        if new:
            self._columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="") as file:
                csv.DictWriter(file, self._columns).writerow(row)
        if self._tensorboard is not None:
            step = row.get("step")
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, step)
            self._tensorboard.flush()

    def _rewrite(self) -> None:
        """Write the whole file (header + rows) atomically."""
        with atomic_write(self.path, "w", newline="") as file:
            writer = csv.DictWriter(file, self._columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        """Close the TensorBoard writer (the CSV is always closed between rows)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def _tensorboard_writer(folder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Rows of a :class:`MetricsLog` CSV; numbers come back as float, empty cells are absent.

    Raises:
        DataNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"metrics log {path} not found; is this a training run folder?")
    with path.open(newline="") as file:
        return [{key: _number(value) for key, value in row.items() if value not in ("", None)}
                for row in csv.DictReader(file)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def training_curves_figure(metrics, columns: Sequence[str], x: str = "step",
                           group: str | None = None, title: str = "",
                           labels: Mapping[str, str] | None = None,
                           log_columns: Sequence[str] = ()):
    """Training curves from a metrics log: one panel per column, one line per group.

    Args:
        metrics: the CSV path of a :class:`MetricsLog` or its rows.
        columns: the columns to draw (rows without a value are skipped).
        x: the column on the horizontal axis.
        group: a column whose values split a panel into lines (e.g. ``"member"``).
        title: the figure's title.
        labels: axis label per column (default: the column name), e.g. to name units.
        log_columns: columns drawn on a logarithmic axis (losses that span decades).

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    rows = read_metrics(metrics) if isinstance(metrics, str | os.PathLike) else list(metrics)
    labels = dict(labels or {})
    fig = Figure(figsize=(5.0 * len(columns), 3.8), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns, strict=True):
        lines: dict = {}
        for row in rows:
            if column in row and x in row and isinstance(row[column], float | int):
                lines.setdefault(row.get(group) if group else None, []).append(
                    (row[x], row[column]))
        for name, points in lines.items():
            xs, ys = zip(*points, strict=True)
            label = None if name is None else f"{group} {_short(name)}"
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1.2, label=label)
        if not lines:
            ax.text(0.5, 0.5, f"no values of {column}", ha="center", transform=ax.transAxes)
        ax.set_xlabel(labels.get(x, x))
        ax.set_ylabel(labels.get(column, column))
        if column in log_columns and lines:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if 1 < len(lines) <= 12:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _short(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# ----------------------------------------------------------------------------- progress


def progress(iterable: Iterable | None = None, runtime: Runtime | None = None, **kwargs):
    """A tqdm progress bar shown on rank 0 only (and silent everywhere else).

    Args:
        iterable: what to iterate over (or ``None`` and ``total=`` for a manual bar).
        runtime: the job's :class:`Runtime` (``None``: a single process).
        **kwargs: passed to ``tqdm`` (``desc``, ``total``, ``unit``, ``disable`` ...).
    """
    from tqdm.auto import tqdm

    hidden = runtime is not None and not runtime.is_main
    kwargs["disable"] = bool(kwargs.get("disable", False) or hidden)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
