"""Building blocks of the compact models, written to match Keras/TensorFlow exactly.

Three details decide numerical identity with the released Keras models:

- **TensorFlow "same" padding.** The output has ``ceil(size / stride)`` pixels and the total
  padding ``max((out - 1) * stride + kernel - size, 0)`` is split with the smaller half
  *before*. With a 5x5 kernel and stride 2 on an even size (112 -> 56, 56 -> 28) that is
  1 pixel before and 2 after, which PyTorch's symmetric ``padding=`` cannot express.
- **Keras-order separable convolution**: a 5x5 depthwise convolution without bias, then a
  1x1 pointwise convolution with bias.
- **Batch norm in inference mode** with the epsilon stored in the file (Keras default 1e-3,
  not PyTorch's 1e-5), using the moving mean and variance.

Under ``torch.inference_mode()`` (what ``predict`` and ``activations`` use) and in eval mode,
the blocks fold the batch norm into the convolution's weights on the fly and apply the ReLU
in place: the same function up to float rounding (~1e-7 relative), about 20% faster on CPU.
Everywhere else (training, gradients, ``torch.no_grad``) they run conv -> batch norm -> ReLU
as separate modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis.

    Args:
        size: input length (pixels).
        kernel: kernel length (pixels).
        stride: stride (pixels).

    Returns:
        ``(before, after)`` padding in pixels; the output length is ``ceil(size / stride)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor | None,
                    bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold inference batch norm into the convolution before it.

    ``bn(conv(x, w, b)) == conv(x, w * s, (b - mean) * s + beta)`` with
    ``s = gamma / sqrt(moving_var + eps)`` per output channel.

    Returns:
        ``(weight, bias)`` of the folded convolution, same shapes as the convolution's.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    base = bn.running_mean.neg() if bias is None else bias - bn.running_mean
    return weight * scale.reshape(-1, *([1] * (weight.ndim - 1))), base * scale + bn.bias


def _fast_path(module: nn.Module) -> bool:
    # predict()/activations() run in inference mode: no gradient, eval batch norm
    return torch.is_inference_mode_enabled() and not module.training


def _relu(x: torch.Tensor) -> torch.Tensor:
    # in place when no gradient is recorded (x is a fresh batch-norm output): saves one
    # full-size memory pass per layer in predict()
    return F.relu_(x) if torch.is_inference_mode_enabled() else F.relu(x)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding (asymmetric where TensorFlow is).

    Same parameters and state-dict names as :class:`torch.nn.Conv2d` (``weight`` of shape
    ``(out_channels, in_channels / groups, kH, kW)``, ``bias``). Input and output are
    ``(N, C, H, W)`` float tensors.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True, **kwargs) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=bias, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_with(x, self.weight, self.bias)

    def conv_with(self, x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
        """The same convolution with other weights (e.g. batch norm folded in)."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top == bottom and left == right:
            # symmetric: let the convolution pad (no extra copy of the input)
            return F.conv2d(x, weight, bias, self.stride, (top, left), 1, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, weight, bias, self.stride, 0, 1, self.groups)


class ConvBlock(nn.Module):
    """Full convolution -> batch norm -> optional ReLU (layer 0 of the compact models).

    Attributes:
        conv: :class:`SameConv2d` ``in_channels -> out_channels``, with bias.
        bn: :class:`torch.nn.BatchNorm2d` with the file's epsilon.
        relu: whether a ReLU follows the batch norm (False for the "linear" teacher).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 stride: int = 1, bn_eps: float = 1e-3, relu: bool = True) -> None:
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, kernel_size, stride=stride)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, Cin, H, W)`` -> ``(N, Cout, H / stride, W / stride)``."""
        if _fast_path(self):
            x = self.conv.conv_with(x, *fold_batch_norm(self.conv.weight, self.conv.bias,
                                                        self.bn))
        else:
            x = self.bn(self.conv(x))
        return _relu(x) if self.relu else x


class SeparableBlock(nn.Module):
    """Keras-order separable convolution -> batch norm -> optional ReLU (layers 1-4).

    Attributes:
        depthwise: depthwise :class:`SameConv2d`, weight ``(Cin, 1, k, k)``, no bias.
        pointwise: 1x1 convolution ``Cin -> Cout``, weight ``(Cout, Cin, 1, 1)``, with bias.
        bn: :class:`torch.nn.BatchNorm2d` with the file's epsilon.
        relu: whether a ReLU follows the batch norm.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 stride: int = 1, bn_eps: float = 1e-3, relu: bool = True) -> None:
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, kernel_size, stride=stride,
                                    groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.relu = relu

    def forward_depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise stage alone: ``(N, Cin, H, W)`` -> ``(N, Cin, H / s, W / s)``."""
        return self.depthwise(x)

    def forward_from_depthwise(self, d: torch.Tensor) -> torch.Tensor:
        """Pointwise, batch norm and ReLU applied to a depthwise output."""
        if _fast_path(self):
            weight, bias = fold_batch_norm(self.pointwise.weight, self.pointwise.bias, self.bn)
            x = F.conv2d(d, weight, bias)
        else:
            x = self.bn(self.pointwise(d))
        return _relu(x) if self.relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, Cin, H, W)`` -> ``(N, Cout, H / stride, W / stride)``."""
        return self.forward_from_depthwise(self.forward_depthwise(x))
