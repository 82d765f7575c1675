"""Train ensemble members on recorded V4 sessions (SYSTEM.md §6): :func:`train_ensemble`.

Each member (:class:`~v4compact.models.teachers.ensemble.EnsembleMember`) maps backbone features to
an embedding and a readout; members are trained independently on the same session order and
differ by their seed (member ``k``: ``31490 + k``). Backbone features come from the feature
cache (:class:`~v4compact.features.FeatureCache`): the backbone runs once per image, not at
every visit as upstream's script does.

Two presets (:data:`PRESETS`):

``upstream`` (SYSTEM.md §6, as upstream's classes and script intend)
    SGD, momentum 0.75, gradient clipped per element at 0.5 (``clip_grad_value_``), batch
    64; learning rate 2.0 x 0.85 per epoch, a new optimizer each epoch (momentum restarts;
    within an epoch it carries over from session to session, as Keras keeps optimizer slots
    across ``set_weights``); sessions in a shuffled order each epoch, session trained for
    ``p`` passes in epoch ``p`` (1, 2, ...). The member's padded 200-output readout is reset
    before each session: weights and biases zero, then the first N outputs get 0.001 x a
    random permutation of the member's initial readout weights. Loss: Keras' MSE over the 200
    padded outputs, i.e. the sum of squared errors over the session's N neurons / 200 (the
    unused outputs have zero weights, biases and targets, so they contribute and move
    nothing; this scaling is what makes the learning rate 2.0 work).
``modern``
    One readout per session kept across epochs (a ``ModuleDict`` keyed by session, as
    neuralpredictors' multi-readouts), AdamW (learning rate 1e-3, weight decay 1e-4) with a
    linear warm-up over 5% of the steps then a cosine decay to 0, MSE averaged over neurons,
    one pass per session per epoch, no clipping. The member's own padded readout is unused.

Both z-score responses per neuron within a session (s.d. with ddof 0) over the images used,
and for the WE animal's sessions use images 1-600 and 901-1200 only (601-900 were
synthesized). Randomness is explicit: the session order of epoch ``e`` comes from seed
``(31490, e)``, a member's batch order and readout reset from ``(31490 + k, e, position,
pass)``, so a run is reproducible and any member can be trained on any process.

Early stopping: after every session, ridge from each member's embeddings to the validation
session (8-fold cross-validation over its images, folds shuffled with upstream's seed 314159,
upstream's heuristic penalty), predictions averaged over members, median over neurons of
r2_ER when its single-repeat responses exist, raw R^2 otherwise (named in the log). Each time
the score improves the members are saved (no patience, as upstream).

At scale: under ``torchrun`` the members are spread round-robin over the ranks; every rank
computes its members' validation predictions, rank 0 averages them, decides and broadcasts
the decision. Results do not depend on the number of processes.

A run folder holds::

    run.json                      settings, and the summary once finished
    metrics.csv                   one row per member and session visit, per validation, per epoch
    curves.png                    training loss and validation score against SGD steps
    members/member<k>.pt          the members at the best validation score (the result)
    checkpoint/latest.pt          the last completed session (position, best score, RNG state)
    checkpoint/step-<n>/member<k>.pt  members + optimizer (+ per-session readouts) at that point

Checkpoints are written after every session; ``resume=True`` continues from the last one and
gives the same members as an uninterrupted run. Outputs of trained members are in z-scored
units (members are trained on z-scored responses).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import DataNotFoundError, InvalidInputError
from ..features.cache import FEATURE_CACHE_DTYPE
from ..files import atomic_write
from ..mapping.ensemble import ensemble_ridge_predictions
from ..models.nets.layers import keras_init_
from ..models.nets.readouts import FactorizedReadout
from ..models.teachers.ensemble import (
    EnsembleMember,
)
from ..models.teachers.runs import (
    MEMBERS_DIR,
    RUN_FILE,
    describe_run,
    is_run_dir,
    load_trained_ensemble,
    member_file,
    run_backbone,
)
from . import runtime as rt
from .ensemble_config import (
    DEFAULT_BACKBONE,
    PRESETS,
    READOUT_RESET_SCALE,
    VALIDATION_SESSION,
    EnsembleTrainingConfig,
    Preset,
)
from .ensemble_data import (
    Features,
    SessionData,
    default_sessions,
    out_of_fold_predictions,
    training_image_indices,
    validation_metric,
    validation_score,
    zscore_responses,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "FEATURE_CACHE_DTYPE",
    "PRESETS",
    "VALIDATION_SESSION",
    "EnsembleTrainingConfig",
    "Preset",
    "describe_run",
    "ensemble_ridge_predictions",
    "is_run_dir",
    "load_trained_ensemble",
    "run_curves_figure",
    "train_ensemble",
    "training_image_indices",
    "zscore_responses",
]

_METRICS_FILE = "metrics.csv"
_CURVES_FILE = "curves.png"
_CHECKPOINT_DIR = "checkpoint"


# ----------------------------------------------------------------------------- members


def _seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy's SeedSequence: well mixed, stable)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def _to_channels_first(batch: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2)


class _Member:
    """One member in training: the module, its initial readout, readouts, optimizer."""

    def __init__(self, index: int, config: EnsembleTrainingConfig, architecture: dict,
                 sessions: dict[int, int], device) -> None:
        self.index = index
        self.seed = config.seed + index
        self.preset = config.recipe
        self.model = EnsembleMember(**architecture, seed=self.seed).to(device)
        readout = self.model.readout
        self.initial_readout = (readout.mixing.weight.detach().clone(),
                                readout.spatial.weight.detach().clone())
        self.readouts = nn.ModuleDict()
        if self.preset.readout == "per_session":
            for sid, num_neurons in sorted(sessions.items()):
                head = FactorizedReadout(config.width, num_neurons,
                                         size=self.model.embedding_size)
                keras_init_(head, torch.Generator().manual_seed(_seed(self.seed, sid)))
                self.readouts[str(sid)] = head
            self.readouts.to(device)
        self.optimizer: torch.optim.Optimizer | None = None

    def parameters(self) -> list[nn.Parameter]:
        if self.preset.readout == "per_session":
            trunk = [p for name, p in self.model.named_parameters()
                     if not name.startswith("readout.")]
            return trunk + list(self.readouts.parameters())
        return list(self.model.parameters())

    def new_optimizer(self, lr: float) -> None:
        p = self.preset
        if p.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.parameters(), lr=lr, momentum=p.momentum)
        else:
            self.optimizer = torch.optim.AdamW(self.parameters(), lr=lr,
                                               weight_decay=p.weight_decay)

    def reset_readout(self, num_neurons: int, epoch: int, position: int) -> None:
        """Upstream's reset: zeros, then the first N outputs get 0.001 x permuted initial
        weights (each array flattened, permuted, reshaped)."""
        rng = torch.Generator().manual_seed(_seed(self.seed, epoch, position))
        readout = self.model.readout
        with torch.no_grad():
            for layer, initial in zip((readout.mixing, readout.spatial), self.initial_readout,
                                      strict=True):
                permuted = initial.flatten()[torch.randperm(initial.numel(), generator=rng)]
                layer.weight.zero_()
                layer.weight[:num_neurons] = READOUT_RESET_SCALE * permuted.reshape(
                    initial.shape)[:num_neurons]
                layer.bias.zero_()

    def loss(self, features: torch.Tensor, targets: torch.Tensor, session_id: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(objective, mean squared error per neuron)`` of a batch; the objective is the
        preset's (upstream: the squared errors summed over neurons / 200 outputs)."""
        if self.preset.readout == "per_session":
            head = self.readouts[str(session_id)]
            squared = (head(self.model.embed(features)) - targets) ** 2
            return squared.mean() + head.regularizer(), squared.detach().mean()
        squared = (self.model(features)[:, :targets.shape[1]] - targets) ** 2
        return squared.sum(dim=1).mean() / self.model.num_outputs, squared.detach().mean()

    def train_session(self, data: SessionData, passes: int, epoch: int, position: int,
                      lr_at, step: int, device) -> tuple[float, float]:
        """Train ``passes`` passes over one session, from global step ``step``; returns the
        mean objective and mean squared error per neuron (z-scored units²) of the last
        pass."""
        self.model.train()
        self.readouts.train()
        n = len(data.targets)
        batch = self.preset.batch_size
        last = []
        for pass_index in range(passes):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(
                _seed(self.seed, epoch, position, pass_index))).numpy()
            last = []
            for start in range(0, n, batch):
                chosen = np.sort(order[start:start + batch])  # sorted: contiguous reads
                x = _to_channels_first(data.features[chosen], device)
                y = torch.from_numpy(data.targets[chosen]).to(device)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(step)
                loss, mse = self.loss(x, y, data.session_id)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.preset.clip_value is not None:
                    nn.utils.clip_grad_value_(self.parameters(), self.preset.clip_value)
                self.optimizer.step()
                last.append((float(loss.detach()), float(mse)))
                step += 1
        objective, mse = np.mean(last, axis=0)
        return float(objective), float(mse)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "readouts": self.readouts.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state(self, state: dict, with_optimizer: bool, lr: float) -> None:
        self.model.load_state_dict(state["model"])
        self.readouts.load_state_dict(state["readouts"])
        self.new_optimizer(lr)
        if with_optimizer and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])


# ----------------------------------------------------------------------------- run folder


def _architecture(config: EnsembleTrainingConfig, backbone) -> dict:
    """The members' :class:`EnsembleMember` arguments: input shape from the backbone."""
    channels, height, _ = backbone.output_shape
    return {"in_channels": channels, "input_size": height, "width": config.width,
            "inner_width": config.inner_width, "num_blocks": config.num_blocks}


def _write_json(path: Path, payload: dict) -> None:
    with atomic_write(path, "w") as file:
        json.dump(payload, file, indent=1)


def _prepare_folder(out: Path, config: EnsembleTrainingConfig, resume: bool,
                    runtime: rt.Runtime) -> dict | None:
    """Check the run folder; returns the checkpoint to resume from (or ``None``)."""
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise DataNotFoundError(f"{out} holds no training run ({RUN_FILE} missing); "
                                    "start without --resume")
        saved = json.loads(run_file.read_text())["config"]
        mine = config.to_dict()
        differ = [k for k in mine if saved.get(k) != mine[k]]
        if differ:
            raise InvalidInputError(
                f"{out} was started with other settings ({', '.join(differ)}: "
                f"{saved.get(differ[0])!r}); resume with the same settings or use another --out"
            )
        latest = out / _CHECKPOINT_DIR / "latest.pt"
        return rt.load_checkpoint(latest) if latest.is_file() else None
    if run_file.is_file():
        raise InvalidInputError(f"{out} already holds a training run; pass --resume to continue "
                                "it or choose another --out")
    rt.barrier(runtime)  # every rank has checked before rank 0 writes
    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(run_file, {"config": config.to_dict(), "status": "running"})
    return None


def train_ensemble(out: str | os.PathLike, config: EnsembleTrainingConfig, *,
                   resume: bool = False, data_dir: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                   device: torch.device | str | None = "cpu", progress: bool = True) -> dict:
    """Train ensemble members on sessions, early-stopped on the validation session.

    Runs as one process, or as one of ``torchrun``'s processes (members spread over them);
    see the module docstring for the recipe and the run folder.

    Args:
        out: the run folder.
        config: the settings (:class:`EnsembleTrainingConfig`).
        resume: continue the run in ``out`` from its last checkpoint (same settings).
        data_dir: data directory.
        cache_dir: feature-cache folder (default: the per-user cache).
        use_cache: ``False`` recomputes the backbone's features at every session visit
            (upstream's way; for benchmarks).
        device: torch device (``None``: CUDA when available).
        progress: show a progress bar (rank 0).

    Returns:
        The summary written to ``run.json``: best validation score, its metric and position,
        time per epoch (s), member files.
    """
    from ..features import FeatureCache

    config.check()
    out = Path(out)
    runtime = rt.init_runtime(device)
    try:
        checkpoint = _prepare_folder(out, config, resume, runtime)
        backbone = run_backbone(config.backbone, config.feature_size, runtime.device, data_dir)
        cache = FeatureCache(cache_dir, dtype=config.cache_dtype) if use_cache else None
        source = Features(backbone, cache, config.max_images, data_dir)
        from ..data.catalog import parse_session_id

        session_ids = [parse_session_id(s)
                       for s in config.sessions or default_sessions(data_dir)]

        def load_all(bar: bool) -> tuple[dict, SessionData]:
            ids = rt.progress(session_ids, runtime, desc="session features",
                              disable=not (progress and bar))
            return ({sid: source.load(sid, True, with_features=use_cache) for sid in ids},
                    source.load(parse_session_id(config.validation), False))

        # rank 0 fills the feature cache first, the others then read it
        if runtime.is_main:
            sessions, validation = load_all(True)
        rt.barrier(runtime)
        if not runtime.is_main:
            sessions, validation = load_all(False)
        summary = _train(out, config, runtime, sessions, validation, source,
                         _architecture(config, backbone), checkpoint, progress)
    finally:
        rt.shutdown_runtime(runtime)
    return summary


def _lr_function(preset: Preset, epoch: int, total_steps: int):
    if preset.lr_decay == "step":
        lr = preset.learning_rate * preset.lr_factor ** epoch
        return lambda step: lr
    warm = max(1, round(preset.warmup * total_steps))

    def cosine(step: int) -> float:
        if step < warm:
            return preset.learning_rate * (step + 1) / warm
        done = (step - warm) / max(1, total_steps - warm)
        return preset.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))

    return cosine


def _session_order(config: EnsembleTrainingConfig, session_ids: list[int], epoch: int):
    rng = np.random.default_rng(_seed(config.seed, epoch))
    return [session_ids[i] for i in rng.permutation(len(session_ids))]


def _train(out: Path, config: EnsembleTrainingConfig, runtime: rt.Runtime,
           sessions: dict[int, SessionData], validation: SessionData, source: Features,
           architecture: dict, checkpoint: dict | None, progress: bool) -> dict:
    preset = config.recipe
    session_ids = list(sessions)
    neurons = {sid: data.targets.shape[1] for sid, data in sessions.items()}
    mine = rt.shard(range(config.members), runtime)
    members = [_Member(k, config, architecture, neurons, runtime.device) for k in mine]
    passes = [(e + 1) if preset.growing_passes else 1 for e in range(config.epochs)]
    steps_per_visit = {sid: -(-len(d.targets) // preset.batch_size) for sid, d in
                       sessions.items()}
    total_steps = sum(p * sum(steps_per_visit.values()) for p in passes)
    metric = validation_metric(validation)
    members_dir, checkpoint_dir = out / MEMBERS_DIR, out / _CHECKPOINT_DIR

    done = -1  # index of the last completed visit (epoch * sessions + position)
    best, step, epoch_seconds = -math.inf, 0, []
    keep_rows = None
    if checkpoint is not None:
        done, best, step = checkpoint["visit"], checkpoint["best_score"], checkpoint["step"]
        epoch_seconds, keep_rows = list(checkpoint["epoch_seconds"]), checkpoint["log_rows"]
        folder = checkpoint_dir / checkpoint["folder"]
        next_epoch, next_position = divmod(done + 1, len(session_ids))
        restart = preset.new_optimizer_each_epoch and next_position == 0
        lr_now = _lr_function(preset, min(next_epoch, config.epochs - 1), total_steps)(step)
        for member in members:
            member.load_state(rt.load_checkpoint(member_file(folder, member.index)),
                              with_optimizer=not restart, lr=lr_now)
        rt.set_rng_state(checkpoint["rng"])
    else:
        rt.seed_everything(config.seed)
    log = rt.MetricsLog(out / _METRICS_FILE, enabled=runtime.is_main, keep_rows=keep_rows)
    visits = config.epochs * len(session_ids)
    bar = rt.progress(total=visits, initial=done + 1, runtime=runtime, unit="session",
                      desc=f"training {config.members} members ({preset.name})",
                      disable=not progress)
    epoch_start = time.perf_counter()
    for visit in range(done + 1, visits):
        epoch, position = divmod(visit, len(session_ids))
        if position == 0:
            epoch_start = time.perf_counter()
        sid = _session_order(config, session_ids, epoch)[position]
        data = sessions[sid] if sessions[sid].features is not None else source.load(sid, True)
        lr_at = _lr_function(preset, epoch, total_steps)
        losses = {}
        for member in members:
            if member.optimizer is None or (preset.new_optimizer_each_epoch and position == 0):
                member.new_optimizer(lr_at(step))
            if preset.readout == "reset":
                member.reset_readout(neurons[sid], epoch, position)
            losses[member.index] = member.train_session(
                data, passes[epoch], epoch, position, lr_at, step, runtime.device)
        step = step + passes[epoch] * steps_per_visit[sid]
        # validation: each rank predicts with its members, rank 0 averages and decides
        predictions = {m.index: out_of_fold_predictions(
            m.model.embeddings(validation.features), validation.targets) for m in members}
        gathered = rt.gather_objects((predictions, losses), runtime)
        decision = None
        if runtime.is_main:
            every = {k: v for part, _ in gathered for k, v in part.items()}
            mean = sum(every[k] for k in sorted(every)) / len(every)
            score = validation_score(mean, validation)
            decision = {"score": score, "improved": score > best}
        decision = rt.broadcast_object(decision, runtime)
        if decision["improved"]:
            best = decision["score"]
            for member in members:
                rt.save_checkpoint(member_file(members_dir, member.index), {
                    "architecture": architecture, "state_dict": member.model.state_dict(),
                    "member": member.index, "seed": member.seed, "epoch": epoch,
                    "session_visit": visit, "validation_score": best,
                    "validation_metric": metric})
        all_losses = {k: v for _, part in gathered for k, v in part.items()}
        for k in sorted(all_losses):
            log.log(kind="train", epoch=epoch, position=position, session=sid, member=k,
                    passes=passes[epoch], step=step, lr=lr_at(step - 1),
                    train_loss=all_losses[k][0], train_mse=all_losses[k][1])
        log.log(kind="validation", epoch=epoch, position=position, session=sid, step=step,
                validation_session=config.validation, validation_metric=metric,
                validation_score=decision["score"], best_score=best,
                improved=int(decision["improved"]))
        if position == len(session_ids) - 1:
            epoch_seconds.append(time.perf_counter() - epoch_start)
            log.log(kind="epoch", epoch=epoch, step=step, epoch_seconds=epoch_seconds[-1])
        _save_progress(checkpoint_dir, members, runtime, {
            "visit": visit, "best_score": best, "step": step, "log_rows": len(log),
            "epoch_seconds": epoch_seconds})
        bar.update(1)
        bar.set_postfix(val=f"{decision['score']:.3f}", best=f"{best:.3f}")
    bar.close()
    log.close()
    summary = {
        "status": "finished", "best_validation_score": best, "validation_metric": metric,
        "validation_session": config.validation, "sessions": session_ids,
        "epoch_seconds": epoch_seconds, "steps_per_member": step,
        "members": [str(member_file(members_dir, k).relative_to(out))
                    for k in range(config.members)],
    }
    if runtime.is_main:
        _write_json(out / RUN_FILE, {"config": config.to_dict(), **summary})
        run_curves_figure(out).savefig(out / _CURVES_FILE, dpi=120, bbox_inches="tight")
    rt.barrier(runtime)
    return summary


def _save_progress(folder: Path, members: list[_Member], runtime: rt.Runtime,
                   position: dict) -> None:
    """Members (each rank its own) into a new step folder, then rank 0 commits latest.pt."""
    name = f"step-{position['visit']}"
    for member in members:
        rt.save_checkpoint(member_file(folder / name, member.index), member.state())
    rt.barrier(runtime)
    if runtime.is_main:
        rt.save_checkpoint(folder / "latest.pt", {**position, "folder": name,
                                                  "rng": rt.rng_state()})
        for old in folder.glob("step-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    rt.barrier(runtime)


# ----------------------------------------------------------------------------- results


def run_curves_figure(run_dir: str | os.PathLike):
    """Training error per neuron (z-scored units squared, one line per member) and the
    validation score of a run, against SGD steps."""
    run_dir = Path(run_dir)
    rows = rt.read_metrics(run_dir / _METRICS_FILE)
    config = json.loads((run_dir / RUN_FILE).read_text())["config"]
    metric = next((r["validation_metric"] for r in rows if "validation_metric" in r), "score")
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "validation"]
    fig = rt.training_curves_figure(
        train + val, ["train_mse", "validation_score"], x="step", group="member",
        title=f"{run_dir.name}: {config['members']} members, preset {config['preset']}, "
              f"backbone {config['backbone']}",
        labels={"step": "SGD steps per member",
                "train_mse": "training MSE per neuron, last pass of each session\n"
                             "(responses z-scored: 1 = predicting the mean)",
                "validation_score": f"validation {config['validation']}: median {metric}"},
        log_columns=["train_mse"])
    return fig
