"""The engine of the fused population: several compact models run as one block-diagonal network.

A compact model is conv -> batch norm -> ReLU five times, then a dense readout (SYSTEM.md §4).
Batch norm in inference mode is an affine map per channel, so it folds exactly into the
weights and bias of the convolution in front of it (the pointwise half of a separable conv).
After folding, a *group* of consecutive models becomes one network:

- layer 0: one 5x5 convolution 3 -> sum(K0) (every model's filters side by side);
- layers 1-4: one depthwise 5x5 convolution over all channels (depthwise convs never mix
  channels, so concatenating models is exact), then a 1x1 convolution whose weight is
  block-diagonal (each model's pointwise matrix on the diagonal, zeros elsewhere);
- readout: one matrix ``(28*28*sum(K4), models)``, block-sparse in the same way.

Why groups rather than all 219 models at once: layer 0 of all models writes
``112*112*10201`` floats (512 MB) per image, which is then read back by the depthwise conv;
a group of ~100 channels keeps that map in cache (a few MB), so the convolutions run at
close to the processor's matrix-multiply rate instead of at memory speed. Everything is
kept channels-last (the layout oneDNN's convolutions are fastest in on CPU) and float32.
The forward pass is ordinary differentiable torch code, so gradients with respect to the
input images are exact.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import (
    IMAGE_SIZE,
    KERNEL_SIZE,
    LAYER_STRIDES,
    NUM_LAYERS,
    READOUT_SIZE,
    STAGE_NAMES,
    same_padding,
)
from ..nets.layers import same_conv2d

__all__ = ["STAGE_NAMES", "FusedGroup", "folded_arrays", "plan_groups"]


def folded_arrays(model: nn.Module) -> dict[str, torch.Tensor]:
    """One compact model's weights with batch norm folded in (float64, via ``model.fuse()``).

    Args:
        model: a :class:`~v4compact.models.nets.compact.CompactModel` (any device, unchanged).

    Returns:
        float64 CPU tensors: ``conv0.weight (K0, 3, 5, 5)``, ``conv0.bias (K0,)``, and for
        k = 1..4 ``dwK.weight (K_{k-1}, 1, 5, 5)``, ``pwK.weight (K_{k-1}, K_k)`` (input
        channels first, ready for ``features @ weight``), ``pwK.bias (K_k,)``; then
        ``readout.weight (28*28, K4)`` (rows in (H, W) order) and ``readout.bias ()``.
    """
    fused = copy.deepcopy(model).cpu().double().fuse()
    core = fused.core
    with torch.no_grad():
        out = {"conv0.weight": core.layer0.conv.weight.clone(),
               "conv0.bias": core.layer0.conv.bias.clone()}
        for k in range(1, NUM_LAYERS):
            block = getattr(core, f"layer{k}")
            pw = block.pointwise.weight
            out[f"dw{k}.weight"] = block.depthwise.weight.clone()
            out[f"pw{k}.weight"] = pw.reshape(pw.shape[0], pw.shape[1]).t().contiguous()
            out[f"pw{k}.bias"] = block.pointwise.bias.clone()
        k4 = core.num_filters[-1]
        # cloned like the rest: a same-shape reshape would return the parameter itself
        out["readout.weight"] = fused.readout.weight.reshape(READOUT_SIZE * READOUT_SIZE,
                                                             k4).clone()
        out["readout.bias"] = fused.readout.bias.reshape(()).clone()
    return out


def _block_diagonal(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.block_diag(*blocks)


class FusedGroup(nn.Module):
    """A few compact models folded and concatenated into one block-diagonal network.

    Args:
        folded: per model, the output of :func:`folded_arrays`, in output order.

    Attributes:
        num_models: number of models (output columns) in the group.
        channels: channels of each of the five layers, summed over the group's models.
    """

    def __init__(self, folded: Sequence[Mapping[str, torch.Tensor]]):
        super().__init__()
        if not folded:
            raise ValueError("a FusedGroup needs at least one model")
        self.num_models = len(folded)
        f32 = torch.float32
        cat = torch.cat
        self.register_buffer(
            "conv0_weight",
            cat([m["conv0.weight"] for m in folded]).to(f32).contiguous(
                memory_format=torch.channels_last
            ),
        )
        self.register_buffer("conv0_bias", cat([m["conv0.bias"] for m in folded]).to(f32))
        for k in range(1, 5):
            self.register_buffer(
                f"dw{k}_weight", cat([m[f"dw{k}.weight"] for m in folded]).to(f32).contiguous()
            )
            self.register_buffer(
                f"pw{k}_weight", _block_diagonal([m[f"pw{k}.weight"] for m in folded]).to(f32)
            )
            self.register_buffer(f"pw{k}_bias", cat([m[f"pw{k}.bias"] for m in folded]).to(f32))
        # readout: (28*28, K4_m) per model -> one (28*28*sum K4, models) matrix in (H, W, C) order
        k4 = [m["readout.weight"].shape[1] for m in folded]
        readout = torch.zeros(READOUT_SIZE * READOUT_SIZE, sum(k4), self.num_models,
                              dtype=torch.float64)
        start = 0
        for index, (model, width) in enumerate(zip(folded, k4, strict=True)):
            readout[:, start : start + width, index] = model["readout.weight"]
            start += width
        self.register_buffer("readout_weight", readout.reshape(-1, self.num_models).to(f32))
        self.register_buffer(
            "readout_bias", torch.stack([m["readout.bias"] for m in folded]).to(f32)
        )
        self.channels = [int(self.conv0_weight.shape[0])] + [
            int(getattr(self, f"pw{k}_weight").shape[1]) for k in range(1, 5)
        ]

    @staticmethod
    def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # (N, C, H, W) channels-last == (N, H, W, C) in memory: a 1x1 conv is one matmul
        n, c, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
        out = torch.addmm(bias, flat, weight).relu_()
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)

    def stages(self) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
        """The group's computation as named steps, in order.

        Returns:
            ``(name, fn)`` pairs: the names of :data:`STAGE_NAMES` then ``"output"``; each
            ``fn`` maps the previous step's output to this step's (the first takes the
            images). :meth:`forward` chains them; a profiler can time them one by one.
        """
        pad0 = same_padding(IMAGE_SIZE, KERNEL_SIZE, LAYER_STRIDES[0])[0]
        steps = [("layer0", lambda x: F.conv2d(x, self.conv0_weight, self.conv0_bias,
                                               padding=pad0).relu_())]
        for k in range(1, NUM_LAYERS):
            dw = getattr(self, f"dw{k}_weight")

            def depthwise(y, dw=dw, stride=LAYER_STRIDES[k]):
                return same_conv2d(y, dw, None, stride, groups=dw.shape[0])

            weight, bias = getattr(self, f"pw{k}_weight"), getattr(self, f"pw{k}_bias")

            def pointwise(y, w=weight, b=bias):
                return self._pointwise(y, w, b)

            steps += [(f"layer{k}.depthwise", depthwise), (f"layer{k}", pointwise)]

        def readout(y):
            flat = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)
            return torch.addmm(self.readout_bias, flat, self.readout_weight)

        return [*steps, ("output", readout)]

    def forward(self, x: torch.Tensor, stop: str | None = None) -> torch.Tensor:
        """Run the group.

        Args:
            x: re-centred images ``(N, 3, 112, 112)`` float32, preferably channels-last.
            stop: a name of :data:`STAGE_NAMES` to return that stage's map instead of the
                outputs.

        Returns:
            ``(N, num_models)`` outputs, or the ``(N, C, H, W)`` map (channels-last memory)
            of stage ``stop``.
        """
        y = x
        for name, step in self.stages():
            y = step(y)
            if name == stop:
                break
        return y


def plan_groups(layer0_filters: Sequence[int], group_channels: int) -> list[list[int]]:
    """Split consecutive models into groups of about ``group_channels`` layer-0 channels.

    Args:
        layer0_filters: K0 of each model, in output order.
        group_channels: target number of layer-0 channels per group (a model is never split).

    Returns:
        Lists of model indices; concatenated they give ``range(len(layer0_filters))``.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    width = 0
    for index, k0 in enumerate(layer0_filters):
        if current and width + k0 > group_channels:
            groups.append(current)
            current, width = [], 0
        current.append(index)
        width += int(k0)
    if current:
        groups.append(current)
    return groups
