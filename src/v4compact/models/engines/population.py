"""``CompactPopulation``: many compact models (up to all 219) run in one forward pass.

The models are folded (batch norm into the convolutions) and packed into groups of
consecutive models, each group one block-diagonal network (:mod:`.fused`). The forward pass
runs every group on a few images at a time, so layer 0's wide feature map stays in cache,
and concatenates the outputs: ``(N, num_models)`` in the order of :attr:`neuron_ids`
(canonical: sessions 190923, 201025, 210225, 211022, neurons in index order).

On CUDA, inference runs differently (:attr:`CompactPopulation.engine`): the groups' many
small launches leave a GPU idle (an H200 ran the 218 CPU-sized groups at 5.7 images/s,
0.3% of its matmul rate), so all models run as one batch-norm-folded
:class:`~v4compact.models.nets.stack.CompactStack` (one launch per layer for all of them, the
pointwise layers as one batched matmul): 180 images/s on the same H200, 32x. The stack is
the same function (tested to float32 rounding); gradients and ``forward_to`` keep the
groups.

The population equals the separate :class:`~v4compact.models.nets.compact.CompactModel` objects
column by column (to float32 rounding) and is differentiable with respect to its input;
when a gradient is recorded each group is checkpointed (recomputed in the backward pass),
so memory stays that of one group rather than of 219 models' feature maps. The folded
weights are buffers, not parameters: train single compact models, not the population.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import InvalidInputError, UnknownNeuronError, UnknownSessionError
from ..arch import IMAGE_SIZE
from ..ids import canonical_key, split_neuron_id
from ..nets.base import V4Model
from ..nets.macs import STAGES, compact_macs
from . import tuning
from .cores import map_on_cores
from .fused import FusedGroup, folded_arrays, plan_groups


def population_key(neuron_id: str) -> tuple:
    """Column order of a population: the release's model neurons in canonical order, then
    neurons of other sessions (made models of imported sessions) by session and index."""
    try:
        return (0, *canonical_key(neuron_id), "")
    except (InvalidInputError, UnknownSessionError, UnknownNeuronError, ValueError):
        session, index = split_neuron_id(neuron_id)
        return (1, str(session), index, "")

#: Serialises the one-time tuning of populations used from several threads (a web server).
_TUNE_LOCK = threading.Lock()


class CompactPopulation(V4Model):
    """Several compact models fused into one module with one output column per model.

    Args:
        models: :class:`~v4compact.models.nets.compact.CompactModel` objects (one output each,
            ReLU networks, distinct ``neuron_ids``); they are sorted into canonical order.
        group_channels: target layer-0 channels per fused group (a tuning knob; results do
            not depend on it beyond float32 rounding); ``None``: the choice tuned for this
            machine (:mod:`.tuning`: timed on the first CPU inference call, then cached).
        micro_batch: images per group call; ``None``: the tuned CPU choice for inference,
            the whole batch on other devices or when a gradient is recorded.

    Attributes:
        model_id: ``"population"``.
        neuron_ids: ``"session/neuron"`` of each output column, canonical order.
        groups: the :class:`~v4compact.models.engines.fused.FusedGroup` modules.
        engine: how inference outputs are computed: ``"groups"`` (the fused groups),
            ``"stack"`` (one folded :class:`~v4compact.models.nets.stack.CompactStack` of all
            models, built on first use) or ``None`` (default: the stack on CUDA, the groups
            elsewhere). Results agree to float32 rounding.
    """

    ENGINES = ("groups", "stack")

    def __init__(self, models: Sequence[nn.Module], group_channels: int | None = None,
                 micro_batch: int | None = None) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise InvalidInputError("a population needs at least one compact model")
        for model in models:
            if len(getattr(model, "neuron_ids", [])) != 1 or not hasattr(model, "bn_eps"):
                raise InvalidInputError(
                    f"{type(model).__name__} is not a compact model; build populations from "
                    "CompactModel objects (v4compact.load_compact_model)"
                )
            if not getattr(model, "relu", True):
                raise InvalidInputError(
                    f"{model.neuron_ids[0]}: a population fuses ReLU networks only"
                )
        ids = [m.neuron_ids[0] for m in models]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise InvalidInputError(f"neurons given twice: {', '.join(dup)}; give each once")
        order = sorted(range(len(models)), key=lambda i: population_key(ids[i]))
        models = [models[i] for i in order]
        if group_channels is not None and (not isinstance(group_channels, int)
                                           or group_channels < 1):
            raise InvalidInputError(
                f"group_channels must be a positive integer or None, got {group_channels!r}"
            )
        if micro_batch is not None and (not isinstance(micro_batch, int) or micro_batch < 1):
            raise InvalidInputError(
                f"micro_batch must be a positive integer or None, got {micro_batch!r}"
            )
        self.model_id = "population"
        self.engine: str | None = None
        self._stack_cache: dict = {}  # device -> stack (a plain dict: not a submodule)
        self.neuron_ids = [m.neuron_ids[0] for m in models]
        self.micro_batch = micro_batch
        self._cpu_micro_batch = tuning.DEFAULT_CPU_MICRO_BATCH
        self._tuned = group_channels is not None or micro_batch is not None
        if group_channels is None:
            cached = tuning.cached_choice(len(models))
            if cached is not None:
                group_channels, self._cpu_micro_batch = cached
                self._tuned = True
        self.group_channels = group_channels or tuning.DEFAULT_GROUP_CHANNELS
        self.filters_per_model = [list(map(int, m.num_filters)) for m in models]
        self.bn_eps_per_model = [float(m.bn_eps) for m in models]
        self._num_parameters = sum(int(m.num_parameters) for m in models)
        # CPU copies of the original weights: export and to_compact_models() rebuild from them
        self._sources = [
            {k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in models
        ]
        self._folded = [folded_arrays(m) for m in models]
        device = next(iter(models[0].state_dict().values())).device
        self.groups = self._make_groups(self.group_channels)
        self.to(device)
        self.eval()

    def _make_groups(self, group_channels: int) -> nn.ModuleList:
        plan = plan_groups([f[0] for f in self.filters_per_model], group_channels)
        return nn.ModuleList(FusedGroup([self._folded[i] for i in g]) for g in plan)

    def regroup(self, group_channels: int) -> None:
        """Re-pack the models into groups of about ``group_channels`` layer-0 channels."""
        if not isinstance(group_channels, int) or group_channels < 1:
            raise InvalidInputError(
                f"group_channels must be a positive integer, got {group_channels!r}")
        device = self.device
        # outside inference mode: the first-use tuning runs inside predict(), and buffers
        # made there would be inference tensors that autograd refuses later
        with torch.inference_mode(False):
            self.groups = self._make_groups(group_channels).to(device)
        self.group_channels = group_channels

    def tune(self, x: torch.Tensor, store: bool = True) -> dict[str, float]:
        """Time the candidate group sizes and micro-batches on ``x``; keep the fastest.

        Args:
            x: a few re-centred images ``(N, 3, 112, 112)`` (2-4 are enough).
            store: remember the choice for this machine (see :mod:`.tuning`).

        Returns:
            Seconds per image of each candidate ``"group_channels/micro_batch"``.
        """
        built: dict[int, nn.ModuleList] = {}  # candidates take turns: pack each size once
        device = self.device

        def run(group_channels: int, micro_batch: int) -> None:
            if group_channels not in built:
                with torch.inference_mode(False):
                    built[group_channels] = self._make_groups(group_channels).to(device)
            self.groups = built[group_channels]
            self._cpu_micro_batch = micro_batch
            with torch.inference_mode():
                self._run_groups(x, None, allow_tuning=False)

        (group_channels, micro_batch), timings = tuning.tune(run, len(x))
        self.groups = built[group_channels]
        self.group_channels = group_channels
        self._cpu_micro_batch = micro_batch
        self._tuned = True
        if store:
            tuning.store_choice(self.num_outputs, group_channels, micro_batch, timings)
        return timings

    # -- V4Model interface ------------------------------------------------------------
    @property
    def num_filters(self) -> list[int]:
        """Filters of each of the five layers, summed over the models."""
        return [int(v) for v in np.sum(self.filters_per_model, axis=0)]

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the separate models, summed (the population has none)."""
        return self._num_parameters

    @property
    def device(self) -> torch.device:
        """The device holding the fused weights."""
        return self.groups[0].conv0_weight.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred float images ``(N, 3, 112, 112)`` -> responses ``(N, num_models)``."""
        return self._run_groups(x, None)

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Feature maps of every model at one layer, concatenated along channels.

        Args:
            x: re-centred images ``(N, 3, 112, 112)``.
            layer: one of :attr:`layer_names`.

        Returns:
            ``(N, sum of the models' channels, H, W)`` (models in :attr:`neuron_ids` order,
            each model's channels in its own order), or ``(N, num_models)`` for ``"output"``.
        """
        self.check_layer(layer)
        return self._run_groups(x, None if layer == "output" else layer)

    # -- extras -----------------------------------------------------------------------
    def macs(self) -> dict[str, int]:
        """Multiply-accumulates per image, stage by stage, summed over the models.

        Returns:
            ``{stage: MACs}`` for each name of :data:`v4compact.models.nets.macs.STAGES` plus
            ``"total"``; counted from the filter counts (the arithmetic of the separate
            models, not the zeros of the block-diagonal matrices).
        """
        out = dict.fromkeys(STAGES, 0)
        for filters in self.filters_per_model:
            for stage, count in compact_macs(filters).items():
                out[stage] += count
        out["total"] = sum(out[s] for s in STAGES)
        return out

    def channel_slices(self, layer: str) -> list[slice]:
        """Which channels of :meth:`forward_to` ``(x, layer)`` belong to each model.

        Args:
            layer: a layer name other than ``"output"``.

        Returns:
            One ``slice`` per model, in :attr:`neuron_ids` order.
        """
        self.check_layer(layer)
        if layer == "output":
            raise InvalidInputError("'output' has one column per model; no channel slices")
        name, _, part = layer.partition(".")
        k = int(name[len("layer"):])
        index = k - 1 if part == "depthwise" else k
        widths = [f[index] for f in self.filters_per_model]
        bounds = np.concatenate([[0], np.cumsum(widths)])
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def to_compact_models(self) -> list[nn.Module]:
        """Rebuild the separate :class:`CompactModel` objects (on the population's device)."""
        from ..nets.compact import CompactModel

        out = []
        for nid, filters, eps, state in zip(self.neuron_ids, self.filters_per_model,
                                            self.bn_eps_per_model, self._sources, strict=True):
            model = CompactModel(filters, eps, model_id=f"compact/{nid}", neuron_id=nid)
            model.load_state_dict(state)
            out.append(model.to(self.device).eval())
        return out

    def extra_repr(self) -> str:
        return (f"model_id={self.model_id!r}, num_outputs={self.num_outputs}, "
                f"groups={len(self.groups)}, group_channels={self.group_channels}")

    # -- internals ----------------------------------------------------------------------
    def _run_groups(self, x: torch.Tensor, stop: str | None,
                    allow_tuning: bool = True) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (3, 112, 112):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(
                f"population input must be a float tensor (N, 3, 112, 112) of re-centred "
                f"images, got {shape}; use .predict() for numpy images"
            )
        if not x.is_floating_point():
            raise InvalidInputError(
                f"population input must be a float tensor, got {x.dtype}; re-centre the "
                "images first (or use .predict())"
            )
        weight = self.groups[0].conv0_weight
        x = x.to(device=weight.device, dtype=weight.dtype).contiguous(
            memory_format=torch.channels_last
        )
        grad = torch.is_grad_enabled() and x.requires_grad
        if stop is None and not grad and self._engine(x.device) == "stack":
            return self._run_stack(x)
        if (allow_tuning and not self._tuned and not grad and x.device.type == "cpu"
                and len(x) and not torch.jit.is_tracing()):
            with _TUNE_LOCK:
                if not self._tuned:
                    self._tuned = True
                    if tuning.tuning_file() is not None:
                        self.tune(x[:4])
        step = self.micro_batch
        if step is None:
            step = self._cpu_micro_batch if x.device.type == "cpu" else max(len(x), 1)
        workers = torch.get_num_threads()
        if grad:
            # recompute each group in the backward pass: memory of one group, not of all;
            # whole batches by default (fewer ops: 3.1-3.6 against 3.6-4.0 s per image for
            # forward + backward of 4 images through all 219 models, measured under load)
            step = self.micro_batch or max(len(x), 1)
            outs = [_run_group(g, x, stop, step, checkpointed=True) for g in self.groups]
        elif (x.device.type == "cpu" and workers > 1 and len(self.groups) > 1
              and not torch.jit.is_tracing()):  # a trace records the calling thread only
            outs = _run_groups_threaded(self.groups, x, stop, step, workers)
        else:
            outs = [_run_group(g, x, stop, step) for g in self.groups]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _engine(self, device: torch.device) -> str:
        if self.engine is None:
            return "stack" if device.type == "cuda" else "groups"
        if self.engine not in self.ENGINES:
            raise InvalidInputError(f"population engine {self.engine!r}: use one of "
                                    f"{', '.join(self.ENGINES)} or None")
        return self.engine

    def _stack(self, device: torch.device):
        """All models as one folded stack on ``device`` (built once per device)."""
        from ..nets.stack import CompactStack

        stack = self._stack_cache.get(str(device))
        if stack is None:
            with torch.inference_mode(False), torch.no_grad():
                models = [m.to(device) for m in self.to_compact_models()]
                stack = CompactStack.from_models(models).fused().set_kernels(
                    "matmul", "contiguous")
            self._stack_cache = {str(device): stack}
        return stack

    def _run_stack(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs through the stack, in batches whose layer-0 maps fit the free memory."""
        stack = self._stack(x.device)
        per_image = 4 * 3 * stack.num_models * stack.widths[0] * IMAGE_SIZE ** 2  # bytes
        step = max(len(x), 1)
        if x.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(x.device)
            step = max(1, min(step, int(0.5 * free // per_image)))
        with torch.no_grad():
            parts = [stack(x[i:i + step]) for i in range(0, max(len(x), 1), step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _run_group(group: FusedGroup, x: torch.Tensor, stop: str | None, step: int,
               checkpointed: bool = False) -> torch.Tensor:
    """One group on the whole batch, ``step`` images at a time (an empty batch runs once).

    (Running only layers 0-1 in micro-batches and the small later layers on the whole batch
    was measured too: no faster.)
    """
    parts = []
    for begin in range(0, max(len(x), 1), step):
        part = x if step >= len(x) else x[begin:begin + step]
        if checkpointed:  # saves only the images; the group is recomputed in backward
            parts.append(checkpoint(group, part, stop, use_reentrant=False))
        else:
            parts.append(group(part, stop))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _run_groups_threaded(groups: Sequence[FusedGroup], x: torch.Tensor, stop: str | None,
                         step: int, workers: int) -> list[torch.Tensor]:
    """Run the groups on ``workers`` threads, each with single-threaded torch ops
    (:func:`map_on_cores`)."""
    inference = torch.is_inference_mode_enabled()

    def work(group: FusedGroup) -> torch.Tensor:
        with torch.inference_mode(inference), torch.no_grad():
            return _run_group(group, x, stop, step)

    return map_on_cores(work, groups, workers)
