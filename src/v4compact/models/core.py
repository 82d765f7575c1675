"""The five-layer convolutional core shared by the compact and shared compact models.

``layer0``: 5x5 convolution 3 -> K0, stride 1; ``layer1``, ``layer2``: separable 5x5,
stride 2; ``layer3``, ``layer4``: separable 5x5, stride 1; all TensorFlow "same" padding,
each followed by batch norm and (except for the "linear" teacher) a ReLU. A 112x112 input
gives a ``(N, K4, 28, 28)`` map. Subclasses add the readout in :meth:`head`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import V4Model
from .keras_io import KERNEL_SIZE, LAYER_STRIDES, ModelWeights
from .layers import ConvBlock, SeparableBlock


class FiveLayerModel(V4Model):
    """Base of :class:`CompactModel` and :class:`SharedCompactModel`.

    Args:
        num_filters: filters of layers 0-4 (5 positive ints).
        bn_eps: batch-norm epsilon (Keras default 1e-3).
        relu: ReLU after each batch norm.
    """

    def __init__(self, num_filters: list[int], bn_eps: float = 1e-3, relu: bool = True) -> None:
        super().__init__()
        num_filters = [int(n) for n in num_filters]
        if len(num_filters) != 5 or min(num_filters) < 1:
            raise ValueError(f"num_filters must be 5 positive ints, got {num_filters}")
        self._num_filters = num_filters
        self.bn_eps = float(bn_eps)
        self.relu = bool(relu)
        self.layer0 = ConvBlock(3, num_filters[0], KERNEL_SIZE, LAYER_STRIDES[0], bn_eps, relu)
        for k in range(1, 5):
            block = SeparableBlock(num_filters[k - 1], num_filters[k], KERNEL_SIZE,
                                   LAYER_STRIDES[k], bn_eps, relu)
            self.add_module(f"layer{k}", block)

    @property
    def num_filters(self) -> list[int]:
        """Filters in layers 0-4."""
        return list(self._num_filters)

    def blocks(self) -> list[nn.Module]:
        """The five convolutional blocks, in order."""
        return [getattr(self, f"layer{k}") for k in range(5)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Core output: re-centred ``(N, 3, 112, 112)`` -> ``(N, K4, 28, 28)``."""
        for block in self.blocks():
            x = block(x)
        return x

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Readout: ``(N, K4, 28, 28)`` -> ``(N, num_outputs)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-centred float images ``(N, 3, 112, 112)`` -> responses ``(N, num_outputs)``."""
        return self.head(self.features(x))

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """See :meth:`V4Model.forward_to`."""
        self.check_layer(layer)
        if layer == "output":
            return self.forward(x)
        name, _, part = layer.partition(".")
        last = int(name[len("layer"):])
        for k, block in enumerate(self.blocks()):
            if k == last and part == "depthwise":
                return block.forward_depthwise(x)
            x = block(x)
            if k == last:
                return x
        raise AssertionError(layer)  # unreachable: check_layer validated the name

    def layer_weights(self, i: int) -> dict[str, np.ndarray]:
        """Weights of layer ``i`` (0-4) as float32 numpy arrays in Keras layouts.

        Returns:
            For layer 0: ``kernel`` ``(5, 5, 3, K0)`` and ``bias`` ``(K0,)``; for layers 1-4:
            ``depthwise_kernel`` ``(5, 5, C, 1)``, ``pointwise_kernel`` ``(1, 1, C, K)``,
            ``bias`` ``(K,)``; for all: ``bn_gamma``, ``bn_beta``, ``bn_moving_mean``,
            ``bn_moving_variance`` ``(K,)``.
        """
        if not isinstance(i, int) or not 0 <= i <= 4:
            from ..errors import InvalidInputError

            raise InvalidInputError(f"layer index must be 0-4, got {i!r}")
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
        out.update(bn_gamma=arr(block.bn.weight), bn_beta=arr(block.bn.bias),
                   bn_moving_mean=arr(block.bn.running_mean),
                   bn_moving_variance=arr(block.bn.running_var))
        return out

    def load_weights(self, weights: ModelWeights) -> None:
        """Copy a :class:`ModelWeights` state dict into this model (shapes must match)."""
        state = {name: torch.from_numpy(value) for name, value in weights.state_dict.items()}
        own = self.state_dict()
        for name, tensor in own.items():
            if name.endswith("num_batches_tracked"):
                state.setdefault(name, torch.zeros_like(tensor))
        self.load_state_dict(state, strict=True)
