"""Readouts: modules that map a core's feature map ``(N, C, H, W)`` to responses ``(N, K)``.

- :class:`DenseReadout`: the compact model's "Beta" readout - the map flattened in
  channels-last ``(H, W, C)`` order, as Keras' ``Flatten`` does, then a dense layer.
- :class:`FactorizedReadout`: one channel mix and one spatial map per neuron (the shared
  compact model's head, the ensemble member's readout, the factorized mapping of
  SYSTEM.md §7): a 1x1 convolution ``C -> K`` ("mixing_stage"), optionally batch norm, then
  a depthwise ``H x W`` "valid" convolution ("spatial_pool_stage").

Each readout has a ``regularizer()`` (its L2 penalties, a scalar tensor) as in
neuralpredictors, so a training loop adds ``model.regularizer()`` to the loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..arch import BN_MOMENTUM, DEFAULT_BN_EPS, READOUT_SIZE

__all__ = ["DenseReadout", "FactorizedReadout"]


class DenseReadout(nn.Linear):
    """Channels-last flatten of an ``(N, C, size, size)`` map, then a dense layer.

    Args:
        in_channels: channels of the feature map (K4).
        num_outputs: responses predicted (1 for a compact model).
        size: side of the feature map (28 for the compact core).
        l2: weight of the L2 penalty on the weights in :meth:`regularizer`.

    Attributes:
        weight: ``(num_outputs, size * size * in_channels)``, columns in ``(H, W, C)`` order.
        bias: ``(num_outputs,)``.
    """

    def __init__(self, in_channels: int, num_outputs: int = 1, size: int = READOUT_SIZE,
                 l2: float = 0.0) -> None:
        super().__init__(size * size * in_channels, num_outputs)
        self.in_channels = int(in_channels)
        self.size = int(size)
        self.l2 = float(l2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, C, size, size)`` -> ``(N, num_outputs)``."""
        flat = features.permute(0, 2, 3, 1).reshape(features.shape[0], -1)
        return F.linear(flat, self.weight, self.bias)

    def regularizer(self) -> torch.Tensor:
        """``l2`` x the sum of squared weights (a scalar tensor)."""
        return self.l2 * self.weight.pow(2).sum()

    def spatial_map(self) -> np.ndarray:
        """The weights as float32 ``(size, size, C)`` maps, one per output: squeezed to
        ``(size, size, C)`` for one output, else ``(num_outputs, size, size, C)``."""
        w = self.weight.detach().float().cpu().numpy()
        maps = w.reshape(-1, self.size, self.size, self.in_channels)
        return maps[0] if len(maps) == 1 else maps

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, num_outputs={self.out_features}, "
                f"size={self.size}, l2={self.l2}")


class FactorizedReadout(nn.Module):
    """One feature mix and one spatial map per output (factorized readout).

    Args:
        in_channels: channels of the feature map.
        num_outputs: responses predicted (K).
        size: side of the (square) feature map; the spatial map covers all of it.
        batch_norm: batch norm between the mix and the spatial map (the factorized mapping
            of SYSTEM.md §7 has one; the shared models and ensemble members do not).
        feature_l2, spatial_l2: weights of the L2 penalties on the mix and the spatial map.
        bn_eps: batch-norm epsilon when ``batch_norm``.

    Attributes:
        mixing: 1x1 :class:`torch.nn.Conv2d` ``in_channels -> K``, weight ``(K, C, 1, 1)``.
        bn: :class:`torch.nn.BatchNorm2d` over the K mixed maps, or ``None``.
        spatial: depthwise ``size x size`` "valid" :class:`torch.nn.Conv2d`, weight
            ``(K, 1, size, size)``.
    """

    def __init__(self, in_channels: int, num_outputs: int, size: int = READOUT_SIZE,
                 batch_norm: bool = False, feature_l2: float = 0.0, spatial_l2: float = 0.0,
                 bn_eps: float = DEFAULT_BN_EPS) -> None:
        super().__init__()
        self.size = int(size)
        self.feature_l2 = float(feature_l2)
        self.spatial_l2 = float(spatial_l2)
        self.mixing = nn.Conv2d(in_channels, num_outputs, 1)
        self.bn = nn.BatchNorm2d(num_outputs, eps=bn_eps, momentum=BN_MOMENTUM) \
            if batch_norm else None
        self.spatial = nn.Conv2d(num_outputs, num_outputs, size, groups=num_outputs)

    @property
    def num_outputs(self) -> int:
        """Responses predicted."""
        return self.mixing.out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, C, size, size)`` -> ``(N, K)``: channel mix, then spatial pooling."""
        mixed = self.mixing(features)
        if self.bn is not None:
            mixed = self.bn(mixed)
        return self.spatial(mixed).flatten(1)

    def regularizer(self) -> torch.Tensor:
        """L2 penalties on the mix and the spatial map (a scalar tensor)."""
        return (self.feature_l2 * self.mixing.weight.pow(2).sum()
                + self.spatial_l2 * self.spatial.weight.pow(2).sum())

    def spatial_map(self) -> np.ndarray:
        """Spatial maps, float32 ``(size, size, K)`` (one per output)."""
        w = self.spatial.weight.detach().float().cpu().numpy()  # (K, 1, size, size)
        return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))

    def feature_weights(self) -> np.ndarray:
        """Channel mix of each output, float32 ``(C, K)``."""
        w = self.mixing.weight.detach().float().cpu().numpy()  # (K, C, 1, 1)
        return np.ascontiguousarray(w[:, :, 0, 0].T)
