"""Distillation: many compact students trained on one teacher in one pass over the images.

The recipe of SYSTEM.md §9 (the ``upstream`` preset): students with 100 filters per layer
(:data:`~v4compact.models.arch.STUDENT_NUM_FILTERS`, Keras' default initialisation), Adam
(learning rate 1e-4, betas 0.9 / 0.999, epsilon 1e-7, no clipping, state kept across
shards), MSE, batch 64, one pass over the corpus, each shard shuffled; after each shard the
weights are smoothed (:func:`smooth_stack_`), fidelity is measured and a checkpoint saved;
the last save is the result.

All students of a run are one :class:`~v4compact.models.nets.stack.CompactStack` trained on the
loss summed over students (exact: each student gets the gradient it would get alone), so
every image is decoded once and the teacher evaluated once (:class:`TeacherCache`) for all
of them.

Fidelity after each shard (rank 0): raw R^2 of each student against the teacher on the
held-out corpus images, and for recorded neurons the held-out raw R^2 on the real
responses (:func:`v4compact.evaluate`, second half of the session). Rows go to
``metrics.csv`` and a figure ``fidelity.png`` (z-scored units throughout).

At scale (``torchrun``): each process takes its part of every global batch, batch norm is
synchronised over processes (:class:`SyncedBatchNorm2d`: PyTorch's ``SyncBatchNorm`` runs on
GPUs only) and the gradients are summed with one all-reduce per step, so N processes compute
the same steps as one process at the same global batch (to float rounding; gloo on CPU,
NCCL on CUDA)::

    torchrun --nproc_per_node=8 -m v4compact distill --teacher ... --out RUN   # one node
    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m v4compact distill ...                  # each node
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE
from ..models.nets.stack import CompactStack
from . import runtime as rt
from .corpus import ImageCorpus, batch_plan, image_loader, rank_part, steps_per_pass
from .distill_config import LR_SCHEDULES, PRESETS, DistillConfig
from .kernels import CPU_KERNELS, apply_kernels, parse_kernels, tune_kernels
from .stack_tools import (
    SyncedBatchNorm2d,
    all_reduce_gradients,
    load_stack,
    smooth_stack_,
    stack_state,
    synchronise_batch_norms,
)
from .teachers import Teacher, TeacherCache

__all__ = [
    "LR_SCHEDULES",
    "PRESETS",
    "TIMING_COLUMNS",
    "DistillConfig",
    "SyncedBatchNorm2d",
    "TrainingStats",
    "distill",
    "fidelity",
    "holdout_set",
    "load_stack",
    "process_device",
    "smooth_stack_",
    "stack_state",
    "train_stack",
]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
FIGURE = "fidelity.png"
RUN_FILE = "run.json"
#: Metrics columns that hold wall-clock seconds (all other columns of a resumed run equal
#: those of an uninterrupted one).
TIMING_COLUMNS = ("train_seconds", "wall_seconds")


# -- the training loop ------------------------------------------------------------------------
@dataclass
class TrainingStats:
    """What a training pass measured (seconds are wall-clock on this process).

    Attributes:
        images: images trained on by this process (each seen by every student).
        steps: optimizer steps.
        decode_seconds: waiting for the data loader (reading and decoding).
        teacher_seconds: computing teacher responses (cache misses only).
        student_seconds: forward, backward and optimizer steps of the stack.
        other_seconds: smoothing, fidelity, checkpoints.
        fidelity: per neuron, the last fidelity row (see ``metrics.csv``).
        kernels: the stack's kernel choice and, when it was tuned, the seconds per step
            of every choice (:func:`~v4compact.training.kernels.tune_kernels`).
    """

    images: int = 0
    steps: int = 0
    decode_seconds: float = 0.0
    teacher_seconds: float = 0.0
    student_seconds: float = 0.0
    other_seconds: float = 0.0
    fidelity: dict = field(default_factory=dict)
    kernels: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return asdict(self)


def _to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    from ..models.inputs import to_model_input

    pixels = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return to_model_input(pixels)


def train_stack(stack: CompactStack, teacher: Teacher, train: ImageCorpus,
                holdout: ImageCorpus, config: DistillConfig, folder: str | os.PathLike,
                cache_dir: str | os.PathLike, *, resume: bool = False,
                runtime: rt.Runtime | None = None, data_dir=None,
                title: str = "distillation",
                stop_after_shards: int | None = None) -> tuple[CompactStack, TrainingStats]:
    """Train a stack of students on a teacher: the loop of SYSTEM.md §9.

    Args:
        stack: students (column k learns the teacher's column k); trained in place.
        teacher: the :class:`~v4compact.training.teachers.Teacher`.
        train: images to train on; each shard is shuffled per pass.
        holdout: images for fidelity (not trained on).
        config: the settings (a fresh Adam is made here: retraining after pruning gets its
            own, as upstream).
        folder: where ``checkpoint.pt``, ``metrics.csv`` and ``fidelity.png`` go.
        cache_dir: the teacher cache's root.
        resume: continue from ``folder/checkpoint.pt`` (exactly where it stopped).
        runtime: the process's :class:`~v4compact.training.runtime.Runtime` (default:
            single process on the stack's device).
        data_dir: data directory (held-out responses of recorded neurons).
        title: the figure's title.
        stop_after_shards: stop (after its checkpoint) once this many shards are done in
            this call, e.g. to fit a job into a time limit; ``resume=True`` continues.

    Returns:
        ``(stack, stats)``: the trained stack (the state of the last checkpoint) and what
        this process measured.
    """
    folder = Path(folder)
    runtime = runtime or rt.Runtime(device=next(stack.parameters()).device)
    device = runtime.device
    if len(stack.neuron_ids) != len(teacher.neuron_ids):
        raise InvalidInputError(f"{stack.num_models} students for {len(teacher.neuron_ids)} "
                                "teacher columns; give one student per neuron")
    stack.to(device).train()
    kernels = _choose_kernels(stack, config, runtime)
    if runtime.distributed:
        synchronise_batch_norms(stack)
    parameters = list(stack.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, betas=config.betas,
                                 eps=config.adam_eps)
    cache = TeacherCache(cache_dir, teacher)
    cache.prepare(train.shards, runtime.is_main)
    rt.barrier(runtime)
    position, step, rows = (0, 0), 0, None
    clock = {"wall_seconds": 0.0, "train_seconds": 0.0, "since_smoothing": 0}
    if resume and (folder / CHECKPOINT).is_file():
        saved = rt.load_checkpoint(folder / CHECKPOINT, map_location=device)
        stack.load_state_dict(saved["stack"]["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        rt.set_rng_state(saved["rng"])
        position, step, rows = tuple(saved["position"]), saved["step"], saved["metrics_rows"]
        clock.update(saved.get("clock", {}))
    log = rt.MetricsLog(folder / METRICS, enabled=runtime.is_main, keep_rows=rows)
    held_images, held_targets = holdout_set(holdout, cache) if runtime.is_main \
        else (None, None)
    augmentation = config.augmentation()
    stats = TrainingStats(kernels=kernels)
    shards = list(range(len(train.shards)))
    units = [(p, s) for p in range(config.passes) for s in shards]
    total_steps = steps_per_pass(train, config.batch_size) * config.passes
    started = time.perf_counter() - clock["wall_seconds"]
    todo = units[units.index(position):] if position in units else []
    todo = todo[:stop_after_shards] if stop_after_shards is not None else todo
    bar = rt.progress(total=sum(len(train.indices[s]) for _, s in todo), runtime=runtime,
                      desc=title, unit="img")
    for pass_index, shard_index in todo:
        shard = train.shards[shard_index]
        plan = batch_plan(train, shard_index, pass_index, config.batch_size, config.seed)
        parts = [(shard_index, rank_part(b, runtime.rank, runtime.world_size)) for b in plan]
        loader = iter(image_loader(train, parts, pass_index, config.num_workers, augmentation))
        shard_loss = torch.zeros(stack.num_models, dtype=torch.float64)
        shard_started = time.perf_counter()
        for batch, part in zip(plan, parts, strict=True):
            start = time.perf_counter()
            if len(part[1]):
                images, _, indices = next(loader)
            else:  # this rank has no image in a small last batch: it still joins the sums
                images = torch.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
                indices = torch.zeros(0, dtype=torch.int64)
            stats.decode_seconds += time.perf_counter() - start
            start = time.perf_counter()
            if augmentation is None:
                targets = cache.responses(shard, indices.numpy(), images.numpy())
            else:
                targets = teacher(images.numpy()) if len(images) else \
                    np.zeros((0, len(teacher.neuron_ids)), dtype=np.float32)
            stats.teacher_seconds += time.perf_counter() - start
            start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step, total_steps)
            loss_sum = _step(stack, optimizer, parameters, images, targets, len(batch),
                             device, config.mixed_precision, runtime)
            shard_loss += loss_sum
            stats.student_seconds += time.perf_counter() - start
            stats.images += len(images)
            stats.steps += 1
            step += 1
            bar.update(len(batch))
        start = time.perf_counter()
        position = _next(units, (pass_index, shard_index))
        last = position is None
        clock["since_smoothing"] += len(train.indices[shard_index])
        if last or clock["since_smoothing"] >= config.smooth_every_images:
            smooth_stack_(stack, config.smoothing_sigma)
            clock["since_smoothing"] = 0
        clock["train_seconds"] += time.perf_counter() - shard_started
        if runtime.distributed:
            dist.all_reduce(shard_loss)
        mean_loss = (shard_loss / len(train.indices[shard_index])).tolist()
        if runtime.is_main and (last or (units.index((pass_index, shard_index)) + 1)
                                % config.eval_every == 0):
            scores = fidelity(stack, held_images, held_targets, data_dir)
            images_seen = sum(len(train.indices[s]) for _, s in
                              units[:units.index((pass_index, shard_index)) + 1])
            wall = time.perf_counter() - started
            for k, neuron in enumerate(stack.neuron_ids):
                row = {"pass": pass_index, "shard": shard_index, "step": step,
                       "images_seen": images_seen,
                       "student_images": images_seen * stack.num_models,
                       "train_seconds": round(clock["train_seconds"], 3),
                       "wall_seconds": round(wall, 3),
                       "lr": config.lr_at(max(step - 1, 0), total_steps), "neuron": neuron,
                       "train_mse": mean_loss[k], **scores[k]}
                log.log(**row)
                stats.fidelity[neuron] = row
            _figure(log.rows, folder / FIGURE, title)
        cache.flush()
        clock["wall_seconds"] = time.perf_counter() - started
        if runtime.is_main:
            rt.save_checkpoint(folder / CHECKPOINT, {
                "clock": dict(clock),
                "stack": stack_state(stack), "optimizer": optimizer.state_dict(),
                "rng": rt.rng_state(), "position": list(position or (config.passes, 0)),
                "step": step, "metrics_rows": len(log), "done": last,
                "config": config.to_dict(), "teacher": teacher.spec})
        rt.barrier(runtime)
        stats.other_seconds += time.perf_counter() - start
    bar.close()
    log.close()
    stats.teacher_seconds = cache.seconds if augmentation is None else stats.teacher_seconds
    return stack, stats


def _choose_kernels(stack: CompactStack, config: DistillConfig, runtime: rt.Runtime) -> dict:
    """Set the stack's kernels as ``config.kernels`` says (``"auto"``: tuned on CUDA, by
    rank 0 for all ranks; :data:`~v4compact.training.kernels.CPU_KERNELS` on the CPU); on
    CUDA also let cuDNN search its algorithms (the shapes are fixed)."""
    chosen, rows = parse_kernels(config.kernels), []
    if runtime.device.type == "cpu" and chosen is None:
        chosen = dict(CPU_KERNELS)
    elif runtime.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if chosen is None:
            if runtime.is_main:
                per_process = -(-config.batch_size // runtime.world_size)
                chosen, rows = tune_kernels(stack, per_process, runtime.device,
                                            config.mixed_precision)
            chosen, rows = rt.broadcast_object((chosen, rows), runtime)
    if chosen is not None:
        apply_kernels(stack, chosen)
    return {**stack.kernels, "tuning": rows}


def _next(units: list, current: tuple[int, int]) -> tuple[int, int] | None:
    index = units.index(current) + 1
    return units[index] if index < len(units) else None


def _step(stack: CompactStack, optimizer, parameters, images: torch.Tensor,
          targets: np.ndarray, global_count: int, device, mixed_precision: bool,
          runtime: rt.Runtime) -> torch.Tensor:
    """One Adam step on the summed-over-students MSE of a global batch; returns the summed
    squared error per student of this process's images (float64, CPU)."""
    x = _to_input(images, device)
    y = torch.from_numpy(np.asarray(targets, dtype=np.float32)).to(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                        enabled=mixed_precision and device.type == "cuda"):
        out = stack(x)
    squared = (out.float() - y).pow(2)
    # mean over the global batch, summed over students: each process contributes its share
    loss = squared.sum() / global_count
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    if runtime.distributed:
        all_reduce_gradients(parameters)
    optimizer.step()
    return squared.detach().sum(0).double().cpu()


def fidelity(stack: nn.Module, images: np.ndarray | None, targets: np.ndarray | None,
             data_dir=None) -> list[dict]:
    """How well each student (column) follows its teacher and its neuron.

    Args:
        stack: a :class:`~v4compact.models.nets.stack.CompactStack` (or any model whose column k
            is neuron ``stack.neuron_ids[k]``).
        images: uint8 ``(N, 112, 112, 3)`` held-out corpus images, or ``None``.
        targets: float ``(N, K)`` teacher responses to them.
        data_dir: data directory of the sessions.

    Returns:
        Per student a dict: ``teacher_r2`` (raw R^2 vs the teacher on ``images``) and, for a
        recorded neuron whose session images exist, ``heldout_raw_r2`` (raw R^2 on the real
        repeat-averaged responses of the session's held-out half, by
        :func:`v4compact.evaluate`).
    """
    from ..metrics import raw_r2
    from ..models.predict import predict

    rows = [{} for _ in stack.neuron_ids]
    if images is not None:
        out = predict(stack, images).reshape(len(images), -1)
        for k, value in enumerate(np.atleast_1d(raw_r2(targets.T, out.T))):
            rows[k]["teacher_r2"] = float(value)
    if _recorded(stack.neuron_ids):
        from ..evaluation import evaluate

        result = evaluate(stack, neuron_ids=list(stack.neuron_ids), metric="raw_r2",
                          num_boot=0, progress=False, data_dir=data_dir, name="students")
        scores = {f"{s.session}/{s.neuron}": s.value for s in result.scores
                  if s.metric == "raw_r2"}
        for k, neuron in enumerate(stack.neuron_ids):
            if neuron in scores:
                rows[k]["heldout_raw_r2"] = scores[neuron]
    return rows


def holdout_set(holdout: ImageCorpus, cache: TeacherCache,
                is_main: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The held-out images, uint8 ``(N, 112, 112, 3)``, and their teacher responses
    ``(N, K)`` (through the cache); ``(None, None)`` for an empty hold-out."""
    if not len(holdout):
        return None, None
    images = holdout.images()
    cache.prepare(holdout.shards, is_main)
    targets, start = [], 0
    for shard, idx in zip(holdout.shards, holdout.indices, strict=True):
        targets.append(cache.responses(shard, idx, images[start:start + len(idx)]))
        start += len(idx)
    return images, np.concatenate(targets)


def _recorded(neuron_ids: Sequence[str]) -> bool:
    """True when every neuron id is a recorded neuron of a session whose images exist."""
    from ..models.zoo import split_neuron_id

    try:
        for neuron in neuron_ids:
            split_neuron_id(neuron)
    except (InvalidInputError, ValueError):
        return False
    return True


def _figure(rows: list[dict], path: Path, title: str) -> None:
    columns = [c for c in ("train_mse", "teacher_r2", "heldout_raw_r2")
               if any(c in row for row in rows)]
    labels = {"train_mse": "training MSE (z-scored units^2)",
              "teacher_r2": "raw R^2 vs teacher (held-out corpus)",
              "heldout_raw_r2": "held-out raw R^2 (real responses)",
              "images_seen": "images seen (per student)"}
    figure = rt.training_curves_figure(rows, columns, x="images_seen", group="neuron",
                                       title=title, labels=labels)
    figure.savefig(path, dpi=100)


# -- the distill entry point ------------------------------------------------------------------
def process_device(device=None) -> torch.device:
    """The device this process trains on (as :func:`~v4compact.training.runtime.init_runtime`
    will choose it): ``device``, else CUDA when available; under ``torchrun`` on CUDA, the
    GPU of this process's ``LOCAL_RANK``. Use it to put a teacher where the students are."""
    want = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if want.type == "cuda" and want.index is None and rt.launched_by_torchrun():
        want = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return want


def distill(teacher: Teacher, corpus: ImageCorpus, out: str | os.PathLike,
            config: DistillConfig | None = None, *, resume: bool = False,
            cache_dir: str | os.PathLike | None = None, device=None,
            data_dir=None,
            stop_after_shards: int | None = None) -> tuple[CompactStack, TrainingStats]:
    """Distill one student per teacher column (SYSTEM.md §9), all in one stack.

    Args:
        teacher: the teacher (:func:`~v4compact.training.teachers.load_teacher`).
        corpus: the images (:func:`~v4compact.training.corpus.open_corpus`);
            ``config.holdout_images`` of them are set aside for fidelity.
        out: the run folder: ``run.json`` (settings, teacher, corpus), ``distill/``
            (``checkpoint.pt``, ``metrics.csv``, ``fidelity.png``), ``teacher_cache/``.
        config: the settings (default: the ``upstream`` preset).
        resume: continue a killed run from its last checkpoint (same settings required).
        cache_dir: the teacher cache's root (default ``out/teacher_cache``; share it between
            runs with the same teacher and corpus).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available); under ``torchrun``
            each process takes its own GPU.
        data_dir: data directory.
        stop_after_shards: stop after this many shards (see :func:`train_stack`).

    Returns:
        ``(stack, stats)``: the distilled students (in the teacher's column order) and this
        process's measurements.
    """
    config = (config or PRESETS["upstream"]).check()
    runtime = rt.init_runtime(device)
    try:
        out = Path(out)
        run = _write_run(out, teacher, corpus, config, resume, runtime)
        train, holdout = corpus.split_holdout(config.holdout_count(len(corpus)), config.seed)
        rt.seed_everything(config.seed)
        stack = CompactStack.students(len(teacher.neuron_ids), config.num_filters,
                                      seeds=[config.seed + k for k in
                                             range(len(teacher.neuron_ids))],
                                      neuron_ids=teacher.neuron_ids)
        stack, stats = train_stack(stack, teacher, train, holdout, config, out / "distill",
                                   cache_dir or out / "teacher_cache", resume=resume,
                                   runtime=runtime, data_dir=data_dir, title=run["title"],
                                   stop_after_shards=stop_after_shards)
    finally:
        rt.shutdown_runtime(runtime)
    return stack, stats


def _write_run(out: Path, teacher: Teacher, corpus: ImageCorpus, config: DistillConfig,
               resume: bool, runtime: rt.Runtime) -> dict:
    """Write (or, on resume, check) ``run.json``: the run's provenance."""
    run = {"teacher": teacher.spec, "teacher_spec": teacher.source,
           "neuron_ids": teacher.neuron_ids, "units": teacher.units,
           "config": config.to_dict(), "corpus": corpus.describe(),
           "world_size": runtime.world_size,
           "title": f"distillation from {teacher.spec} ({len(teacher.neuron_ids)} students)"}
    path = out / RUN_FILE
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        given = json.loads(json.dumps(run))  # tuples as the file holds them: lists
        if any(saved.get(key) != given[key] for key in ("config", "teacher", "neuron_ids")):
            raise InvalidInputError(f"{out} was started with other settings, teacher or "
                                    "neurons; resume with the same ones or use a new --out")
        return saved
    if not resume and (out / "distill" / CHECKPOINT).is_file():
        raise InvalidInputError(f"{out} already holds a distillation; pass --resume to "
                                "continue it or choose a new --out folder")
    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=1))
    rt.barrier(runtime)
    return run
