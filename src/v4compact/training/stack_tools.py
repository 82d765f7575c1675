"""Tools for a stack of students: the Gaussian smoothing of SYSTEM.md §9
(:func:`smooth_stack_`), batch norm synchronised over processes (:class:`SyncedBatchNorm2d`;
PyTorch's ``SyncBatchNorm`` runs on GPUs only) with one gradient all-reduce per step, and a
stack saved and read back with its architecture (:func:`stack_state`, :func:`load_stack`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..models.arch import NUM_LAYERS, READOUT_SIZE
from ..models.nets.stack import CompactStack

__all__ = ["SMOOTHING_MODE", "SyncedBatchNorm2d", "all_reduce_gradients", "load_stack",
           "smooth_stack_", "stack_state", "synchronise_batch_norms"]

#: Smoothing of SYSTEM.md §9: Gaussian s.d. (taps) and scipy mode.
SMOOTHING_MODE = "reflect"


# -- smoothing --------------------------------------------------------------------------------
def smooth_stack_(stack: CompactStack, sigma: float = 0.5) -> CompactStack:
    """Smooth the weights in place as upstream does after each shard (SYSTEM.md §9).

    A Gaussian of s.d. ``sigma`` (scipy ``gaussian_filter``, mode "reflect", taps
    ~0.0003/0.1065/0.7866/0.1065/0.0003 for 0.5) over the two spatial axes of the depthwise
    kernels of layers 1-4 and of each readout reshaped to ``(28, 28, K4)``; layer 0 is not
    smoothed. Every channel is smoothed on its own, so padded or pruned channels stay zero.
    """
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return stack
    with torch.no_grad():
        for layer in range(1, NUM_LAYERS):
            weight = getattr(stack.core, f"layer{layer}").depthwise.weight  # (C, 1, 5, 5)
            _smooth_(weight, (0, 0, sigma, sigma), gaussian_filter)
        readout = stack.readout_weight.view(stack.num_models, READOUT_SIZE, READOUT_SIZE, -1)
        _smooth_(readout, (0, sigma, sigma, 0), gaussian_filter)
    return stack


def _smooth_(tensor: torch.Tensor, sigmas: tuple, gaussian_filter) -> None:
    values = tensor.detach().double().cpu().numpy()
    smoothed = gaussian_filter(values, sigma=sigmas, mode=SMOOTHING_MODE)
    tensor.copy_(torch.from_numpy(smoothed).to(tensor.device, tensor.dtype))


# -- synchronised batch norm ------------------------------------------------------------------
class SyncedBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics cover the batch of every process.

    In training mode the per-channel mean and (biased) variance are computed over the
    images of all processes with differentiable all-reduces, the moving averages are
    updated as PyTorch does (unbiased variance, ``momentum``), so a step of N processes
    equals a step of one process on the whole batch. In eval mode, and without a process
    group, it is :class:`torch.nn.BatchNorm2d`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        local = x.new_tensor([x.shape[0] * x.shape[2] * x.shape[3]])
        sums = all_reduce(torch.cat([x.sum((0, 2, 3)), local]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.pow(2).sum((0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def synchronise_batch_norms(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` of ``module`` by a :class:`SyncedBatchNorm2d` (same state)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                synced = SyncedBatchNorm2d(child.num_features, child.eps, child.momentum)
                synced.load_state_dict(child.state_dict())
                setattr(parent, name, synced.to(child.weight.device).train(child.training))


def all_reduce_gradients(parameters: list[nn.Parameter]) -> None:
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    grads = [p.grad for p in parameters]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        grad.copy_(reduced)


# -- saving stacks ----------------------------------------------------------------------------
def stack_state(stack: CompactStack) -> dict:
    """Everything that rebuilds a stack: its shape, names and state dict (CPU tensors)."""
    return {"num_models": stack.num_models, "widths": list(stack.widths),
            "bn_eps": stack.bn_eps, "relu": stack.relu, "masks": stack.mask0 is not None,
            "neuron_ids": list(stack.neuron_ids), "model_ids": list(stack.model_ids),
            "state_dict": {k: v.detach().cpu() for k, v in stack.state_dict().items()}}


def load_stack(state: dict, device="cpu") -> CompactStack:
    """The stack saved by :func:`stack_state`, in training mode."""
    stack = CompactStack(state["num_models"], state["widths"], state["bn_eps"], state["relu"],
                         state["masks"])
    stack.load_state_dict(state["state_dict"])
    stack.neuron_ids = list(state["neuron_ids"])
    stack.model_ids = list(state["model_ids"])
    return stack.to(device).train()
