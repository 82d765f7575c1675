"""Route each image of a batch through the model of its own target neuron only.

A fused population model computes all 219 neurons for every image, which is what
prediction wants; synthesis of 219 neurons x S starts only needs each image's own neuron,
so running every image through every model wastes a factor of 219.
:class:`RoutedModels` wraps per-neuron models (e.g. the 219 compact models) and offers
``forward_columns(x, columns)``, which the ``neuron`` objective uses when available.

When the members are compact models, two ways are offered (``cpu_mode``). On the CPU, by
default (``"threads"``), each targeted model runs alone on its own images, batch norm
folded and channels-last, one model per core on a pool of ``torch.get_num_threads()``
threads with single-threaded ops, its input gradients computed in the same task: 2-5x less
CPU time per step than the stacked chunks (measured side by side for 32 neurons: 0.8 vs 2
CPU-seconds per step), whose grouped convolutions write feature maps far larger than the
cache. On CUDA (and with ``cpu_mode = "stack"``) the targeted ones run as
:class:`~v4compact.models.nets.stack.CompactStack` chunks: each model gets its own images in one
grouped forward (and backward) pass instead of one small pass per model. The stack computes
the same function as the separate models (to float rounding), so synthesis gives the same
images; it runs with batch norm folded and in channels-last memory
(:meth:`~v4compact.models.nets.stack.CompactStack.fused`). Models are chunked
:data:`STACK_CHUNK` at a time, in order of their layer-0 width (the layer that costs most),
so that a chunk pads its members to similar widths.

Each image's response depends on that image alone (batch norm is frozen), so the gradient
of a chunk's summed responses with respect to its images is every image's own gradient.
The forward pass therefore runs each chunk forward *and* backward at once and keeps only
those input gradients (one image's size each); the backward pass of the whole batch is then
a product with the incoming gradient. No activation is kept across chunks and nothing is
recomputed (activation checkpointing would run every forward pass twice), so memory stays
that of one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import InvalidInputError
from ..models.engines.cores import map_on_cores
from ..models.nets.stack import CompactStack

#: Models per stacked chunk in :meth:`RoutedModels.forward_columns` (see the module docstring;
#: measured in ``benchmarks/bench_synthesis.py``).
STACK_CHUNK = 32

__all__ = ["RoutedModels"]


class RoutedModels(nn.Module):
    """Several models side by side; their output columns are concatenated.

    Args:
        models: v4compact models (each with ``neuron_ids`` / ``num_outputs``).
        model_id: id recorded in provenance (default ``"routed[<n> models]"``).

    Attributes:
        neuron_ids: concatenated ids of all members' outputs.
        num_outputs: total number of output columns.
    """

    def __init__(self, models: Sequence[nn.Module], model_id: str | None = None):
        super().__init__()
        if len(models) == 0:
            raise InvalidInputError("RoutedModels needs at least one model")
        self.members = nn.ModuleList(models)
        self.neuron_ids: list = []
        owner, local = [], []
        for m, model in enumerate(models):
            ids = list(getattr(model, "neuron_ids", []) or [])
            count = int(getattr(model, "num_outputs", len(ids) or 1))
            self.neuron_ids += ids or [f"{m}:{k}" for k in range(count)]
            owner += [m] * count
            local += list(range(count))
        self.num_outputs = len(self.neuron_ids)
        self.register_buffer("_owner", torch.tensor(owner), persistent=False)
        self.register_buffer("_local", torch.tensor(local), persistent=False)
        self.model_id = model_id or f"routed[{len(models)} models]"
        self._stacks: dict[tuple[int, ...], CompactStack] = {}
        self._fused: dict[int, nn.Module] = {}
        #: on the CPU: "threads" (each model alone, one per core) or "stack" (grouped chunks)
        self.cpu_mode = "threads"
        self.train(False)  # the members are inference models (batch norm frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All outputs for all images: ``(N, 3, 112, 112)`` re-centred -> ``(N, num_outputs)``."""
        outs = [m(x) for m in self.members]
        return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)

    def _stackable(self) -> bool:
        return all(len(getattr(m, "neuron_ids", [])) == 1 and hasattr(m, "core")
                   and getattr(m.core, "batch_norm", False) for m in self.members)

    def _stack_for(self, owners: tuple[int, ...]) -> CompactStack:
        """The (cached) eval-mode stack of the members ``owners``."""
        key = owners
        stack = self._stacks.get(key)
        if stack is None:
            if len(self._stacks) >= 64:  # a long-lived server targets many subsets
                self._stacks.clear()
            stack = CompactStack.from_models([self.members[m] for m in owners]).fused()
            self._stacks[key] = stack
        return stack

    def forward_columns(self, x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Each image's response at its own column, running only the owning model.

        Args:
            x: re-centred images ``(N, 3, 112, 112)``.
            columns: long ``(N,)`` output columns, one per image.

        Returns:
            ``(N,)`` responses (differentiable with respect to ``x``).
        """
        columns = columns.to(self._owner.device)
        owners = self._owner[columns]
        if self._stackable():
            if x.device.type == "cpu" and self.cpu_mode == "threads":
                return self._forward_threaded(x, owners)
            return self._forward_stacked(x, owners)
        locals_ = self._local[columns]
        out = x.new_zeros(x.shape[0])
        for m in torch.unique(owners).tolist():
            idx = (owners == m).nonzero(as_tuple=True)[0]
            y = self.members[m](x[idx.to(x.device)])
            y = y.reshape(y.shape[0], -1)
            out = out.index_put((idx.to(x.device),),
                                y.gather(1, locals_[idx].to(x.device)[:, None])[:, 0])
        return out

    def _fused_member(self, m: int) -> nn.Module:
        """Member ``m`` with batch norm folded, frozen, channels-last (cached)."""
        model = self._fused.get(m)
        if model is None:
            model = self.members[m].fuse().eval().requires_grad_(False)
            model = model.to(memory_format=torch.channels_last)
            self._fused[m] = model
        return model

    def _forward_threaded(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """CPU: each targeted model on its own images, one model per core at a time.

        The models' ops are small; as in the fused population, whole models run on a pool
        of ``torch.get_num_threads()`` threads with single-threaded ops (no barrier between
        cores, working sets that stay in cache) instead of multi-threaded ops one after the
        other. With gradients, each model's input gradients are computed in the same task.
        """
        owners = owners.to(x.device)
        jobs = [(m, (owners == m).nonzero(as_tuple=True)[0])
                for m in torch.unique(owners).tolist()]
        models = {m: self._fused_member(m) for m, _ in jobs}  # built before the threads
        grad = torch.is_grad_enabled() and x.requires_grad
        images = x.detach()

        def work(job):
            m, idx = job
            own = images[idx].contiguous(memory_format=torch.channels_last)
            return _responses(lambda batch: models[m](batch).reshape(len(idx)), own, grad)

        return _assemble(x, [idx for _, idx in jobs], map_on_cores(work, jobs), grad)

    def _forward_stacked(self, x: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
        """Images grouped by owner into ``(S, K, 3, H, W)`` grids, one stack pass per chunk.

        Model k's images fill column k of the grid (rows 0..count-1); a model with fewer
        images than the busiest one gets zero images in the remaining rows (their outputs are
        discarded).
        """
        owners = owners.to(x.device)
        indices, results = [], []
        targeted = sorted(torch.unique(owners).tolist(),
                          key=lambda m: (self.members[m].core.num_filters[0], m))
        grad = torch.is_grad_enabled() and x.requires_grad
        for start in range(0, len(targeted), STACK_CHUNK):
            chunk = targeted[start:start + STACK_CHUNK]
            index, rows, cols = [], [], []
            for k, m in enumerate(chunk):
                idx = (owners == m).nonzero(as_tuple=True)[0]
                index.append(idx)
                rows.append(torch.arange(len(idx), device=x.device))
                cols.append(torch.full((len(idx),), k, device=x.device))
            index, rows, cols = torch.cat(index), torch.cat(rows), torch.cat(cols)
            stack = self._stack_for(tuple(chunk)).to(x.device)
            shape = (int(rows.max()) + 1, len(chunk), *x.shape[1:])

            def run(images, stack=stack, rows=rows, cols=cols, shape=shape):
                grid = images.new_zeros(shape).index_put((rows, cols), images)
                return stack(grid)[rows, cols]

            indices.append(index)
            results.append(_responses(run, x[index].detach(), grad))
        return _assemble(x, indices, results, grad)


def _responses(fn, images: torch.Tensor, grad: bool):
    """``(fn(images), d fn(images)[i] / d images[i] or None)`` for an ``fn`` whose output
    ``i`` depends on image ``i`` alone: one backward pass of the summed outputs gives every
    image's own gradient, and no graph outlives the call."""
    if not grad:
        with torch.no_grad():
            return fn(images), None
    with torch.enable_grad():
        leaf = images.requires_grad_(True)
        y = fn(leaf)
        (g,) = torch.autograd.grad(y.sum(), leaf)
    return y.detach(), g


def _assemble(x: torch.Tensor, indices, results, grad: bool) -> torch.Tensor:
    """The ``(N,)`` responses from per-part ``(values, grads)`` at image rows ``indices``;
    differentiable with respect to ``x`` through the precomputed gradients."""
    index = torch.cat(indices)
    values = torch.cat([y for y, _ in results])
    if not grad:
        return x.new_zeros(x.shape[0]).index_put((index,), values)
    return _Precomputed.apply(x, index, values, torch.cat([g for _, g in results]))


class _Precomputed(torch.autograd.Function):
    """Outputs ``values`` at rows ``index`` of an ``(N,)`` vector whose gradient with respect
    to ``x`` is known: ``grads[j] = d values[j] / d x[index[j]]`` (each output depends on its
    own image alone)."""

    @staticmethod
    def forward(ctx, x, index, values, grads):
        ctx.save_for_backward(index, grads)
        ctx.shape = x.shape
        return values.new_zeros(x.shape[0]).index_put((index,), values)

    @staticmethod
    def backward(ctx, grad_output):
        index, grads = ctx.saved_tensors
        out = grads.new_zeros(ctx.shape)
        out[index] = grad_output[index].reshape(-1, *[1] * (grads.ndim - 1)) * grads
        return out, None, None, None
