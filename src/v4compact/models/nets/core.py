"""The five-layer convolutional core of the compact and shared compact models (SYSTEM.md §4).

``layer0``: 5x5 convolution 3 -> K0, stride 1; ``layer1``, ``layer2``: separable 5x5,
stride 2; ``layer3``, ``layer4``: separable 5x5, stride 1; all TensorFlow "same" padding,
each followed by batch norm and (except for the "linear" teacher) a ReLU. A re-centred
112x112 input gives a ``(N, K4, 28, 28)`` map. A readout (:mod:`.readouts`) turns that map
into responses; :class:`EncoderModel` is core + readout (neuralpredictors' pattern).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ...errors import InvalidInputError
from ..arch import (
    DEFAULT_BN_EPS,
    IN_CHANNELS,
    KERNEL_SIZE,
    LAYER_STRIDES,
    NUM_LAYERS,
    check_num_filters,
    parse_stage,
)
from .base import V4Model
from .layers import ConvBlock, SeparableBlock, keras_init_


class CompactCore(nn.Module):
    """The five convolutional blocks (``layer0`` ... ``layer4``).

    Args:
        num_filters: filters of layers 0-4 (5 positive ints).
        bn_eps: batch-norm epsilon (Keras default 1e-3).
        relu: ReLU after each batch norm.
        batch_norm: False for a folded core (see :meth:`fuse`).
        l2: weight of the L2 penalty on the convolution kernels in :meth:`regularizer`
            (0: none, as in the upstream recipes).
    """

    def __init__(self, num_filters: Sequence[int], bn_eps: float = DEFAULT_BN_EPS,
                 relu: bool = True, batch_norm: bool = True, l2: float = 0.0) -> None:
        super().__init__()
        nf = check_num_filters(num_filters)
        self.num_filters = nf
        self.bn_eps = float(bn_eps)
        self.relu = bool(relu)
        self.l2 = float(l2)
        self.layer0 = ConvBlock(IN_CHANNELS, nf[0], KERNEL_SIZE, LAYER_STRIDES[0], bn_eps,
                                relu, batch_norm)
        for k in range(1, NUM_LAYERS):
            self.add_module(f"layer{k}", SeparableBlock(nf[k - 1], nf[k], KERNEL_SIZE,
                                                        LAYER_STRIDES[k], bn_eps, relu,
                                                        batch_norm))

    @property
    def batch_norm(self) -> bool:
        """Whether the blocks carry batch norm (False once folded)."""
        return self.layer0.bn is not None

    def blocks(self) -> list[nn.Module]:
        """The five convolutional blocks, in order."""
        return [getattr(self, f"layer{k}") for k in range(NUM_LAYERS)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred ``(N, 3, 112, 112)`` -> ``(N, K4, 28, 28)``."""
        for block in self.blocks():
            x = block(x)
        return x

    def forward_to(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Run up to ``stage`` (``"layerK"`` or ``"layerK.depthwise"``); differentiable.

        Returns:
            ``(N, C, H, W)``: the post-ReLU map of ``layerK``, or the depthwise output inside
            ``layerK``'s separable convolution.
        """
        last, depthwise = parse_stage(stage)
        for k, block in enumerate(self.blocks()):
            if k == last and depthwise:
                return block.forward_depthwise(x)
            x = block(x)
            if k == last:
                return x
        raise AssertionError(stage)  # unreachable: parse_stage validated the name

    def regularizer(self) -> torch.Tensor:
        """``l2`` x the sum of squared convolution kernels (a scalar tensor)."""
        kernels = [p for name, p in self.named_parameters()
                   if name.endswith("weight") and p.ndim == 4]
        return self.l2 * torch.stack([k.pow(2).sum() for k in kernels]).sum()

    def reset_parameters(self, generator: torch.Generator | None = None) -> CompactCore:
        """Keras' default initialisation (see :func:`~v4compact.models.nets.layers.keras_init_`)."""
        keras_init_(self, generator)
        return self

    def fuse(self) -> CompactCore:
        """A new core with each batch norm folded into its convolution (eval-mode function)."""
        out = CompactCore(self.num_filters, self.bn_eps, self.relu, batch_norm=False, l2=self.l2)
        for k, block in enumerate(self.blocks()):
            setattr(out, f"layer{k}", block.fuse())
        return out.train(self.training)

    def extra_repr(self) -> str:
        return f"num_filters={self.num_filters}, relu={self.relu}, batch_norm={self.batch_norm}"


class EncoderModel(V4Model):
    """A model made of a :class:`CompactCore` and a readout (``(N, K4, 28, 28)`` -> outputs).

    Subclasses (:class:`~v4compact.models.nets.compact.CompactModel`,
    :class:`~v4compact.models.nets.shared.SharedCompactModel`) fix the readout type.

    Attributes:
        core: the :class:`CompactCore`.
        readout: a module from :mod:`v4compact.models.nets.readouts` with ``regularizer()``.
    """

    def __init__(self, core: CompactCore, readout: nn.Module) -> None:
        super().__init__()
        self.core = core
        self.readout = readout

    # -- architecture -------------------------------------------------------------------
    @property
    def num_filters(self) -> list[int]:
        """Filters in layers 0-4."""
        return list(self.core.num_filters)

    @property
    def bn_eps(self) -> float:
        """Batch-norm epsilon of the core."""
        return self.core.bn_eps

    @property
    def relu(self) -> bool:
        """Whether the core has a ReLU after each batch norm."""
        return self.core.relu

    def blocks(self) -> list[nn.Module]:
        """The core's five convolutional blocks, in order."""
        return self.core.blocks()

    # -- computation --------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Core output: re-centred ``(N, 3, 112, 112)`` -> ``(N, K4, 28, 28)``."""
        return self.core(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred float images ``(N, 3, 112, 112)`` -> responses ``(N, num_outputs)``."""
        return self.readout(self.core(x))

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """See :meth:`V4Model.forward_to`."""
        self.check_layer(layer)
        if layer == "output":
            return self.forward(x)
        return self.core.forward_to(x, layer)

    def regularizer(self) -> torch.Tensor:
        """Core and readout penalties, summed (a scalar tensor)."""
        return self.core.regularizer() + self.readout.regularizer()

    def reset_parameters(self, seed: int | None = None) -> EncoderModel:
        """Re-initialise every weight as Keras does by default.

        Args:
            seed: seed of the random generator (``None``: torch's global generator).
        """
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.core.reset_parameters(generator)
        keras_init_(self.readout, generator)
        return self

    def fuse(self) -> EncoderModel:
        """A copy with batch norm folded into the convolutions: the same function as this
        model in eval mode (to float rounding), faster at inference, without batch-norm
        modules (so it cannot be trained as the original). The original is left unchanged.
        """
        out = copy.deepcopy(self)
        out.core = self.core.fuse()
        return out.eval()

    # -- weights as numpy ---------------------------------------------------------------
    def layer_weights(self, i: int) -> dict[str, np.ndarray]:
        """Weights of layer ``i`` (0-4) as float32 numpy arrays in Keras layouts.

        Returns:
            For layer 0: ``kernel`` ``(5, 5, 3, K0)`` and ``bias`` ``(K0,)``; for layers 1-4:
            ``depthwise_kernel`` ``(5, 5, C, 1)``, ``pointwise_kernel`` ``(1, 1, C, K)``,
            ``bias`` ``(K,)``; unless the model is fused: ``bn_gamma``, ``bn_beta``,
            ``bn_moving_mean``, ``bn_moving_variance`` ``(K,)``.
        """
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < NUM_LAYERS:
            raise InvalidInputError(f"layer index must be 0-{NUM_LAYERS - 1}, got {i!r}")
        block = self.blocks()[i]

        def arr(t: torch.Tensor, axes: tuple[int, ...] | None = None) -> np.ndarray:
            a = t.detach().float().cpu().numpy()
            return np.ascontiguousarray(a.transpose(axes) if axes else a)

        if i == 0:
            out = {"kernel": arr(block.conv.weight, (2, 3, 1, 0)),
                   "bias": arr(block.conv.bias)}
        else:
            out = {"depthwise_kernel": arr(block.depthwise.weight, (2, 3, 0, 1)),
                   "pointwise_kernel": arr(block.pointwise.weight, (2, 3, 1, 0)),
                   "bias": arr(block.pointwise.bias)}
        if block.bn is not None:
            out.update(bn_gamma=arr(block.bn.weight), bn_beta=arr(block.bn.bias),
                       bn_moving_mean=arr(block.bn.running_mean),
                       bn_moving_variance=arr(block.bn.running_var))
        return out

    def load_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Copy a name -> numpy-array state dict (e.g. ``ModelWeights.state_dict``) in.

        ``num_batches_tracked`` counters absent from ``state`` are set to 0; every other
        name and shape must match.
        """
        tensors = {name: torch.from_numpy(np.asarray(value)) for name, value in state.items()}
        for name, tensor in self.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensors.setdefault(name, torch.zeros_like(tensor))
        self.load_state_dict(tensors, strict=True)
