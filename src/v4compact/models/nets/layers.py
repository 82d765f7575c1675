"""Building blocks of the compact models, written to match Keras/TensorFlow exactly.

Three details decide numerical identity with the released Keras models:

- **TensorFlow "same" padding** (:func:`~v4compact.models.arch.same_padding`): with a 5x5
  kernel and stride 2 on an even size it pads 1 pixel before and 2 after, which PyTorch's
  symmetric ``padding=`` cannot express.
- **Keras-order separable convolution**: a 5x5 depthwise convolution without bias, then a
  1x1 pointwise convolution with bias.
- **Batch norm** with the epsilon stored in the file (Keras default 1e-3, not PyTorch's
  1e-5) and Keras' momentum (0.99, i.e. PyTorch ``momentum=0.01``).

Batch norm behaves as in PyTorch: ``train()`` normalises with batch statistics and updates
the moving averages, ``eval()`` uses the moving averages. Folding batch norm into the
convolution before it is explicit: :meth:`ConvBlock.fuse` / :meth:`SeparableBlock.fuse`
return a new block without batch norm that computes the same eval-mode function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import BN_MOMENTUM, DEFAULT_BN_EPS, KERNEL_SIZE, same_padding

__all__ = [
    "ConvBlock",
    "SameConv2d",
    "SeparableBlock",
    "conv_input_gradient",
    "fold_batch_norm",
    "glorot_uniform_",
    "grouped_pointwise",
    "keras_init_",
    "same_conv2d",
    "same_padding",
]


def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor | None,
                    bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold eval-mode batch norm into the convolution before it (the one implementation).

    ``bn(conv(x, w, b)) == conv(x, w * s, (b - mean) * s + beta)`` with
    ``s = gamma / sqrt(moving_var + eps)`` per output channel.

    Args:
        weight: convolution weight ``(Cout, ...)``.
        bias: convolution bias ``(Cout,)`` or ``None``.
        bn: the batch norm that follows (its moving statistics are used).

    Returns:
        ``(weight, bias)`` of the folded convolution, same shapes and dtype as the inputs.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    base = bn.running_mean.neg() if bias is None else bias - bn.running_mean
    return weight * scale.reshape(-1, *([1] * (weight.ndim - 1))), base * scale + bn.bias


def same_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: int | tuple[int, int], groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` with TensorFlow "same" padding, without a padded copy of the input.

    Where TensorFlow pads one pixel more after than before (a 5x5 kernel with stride 2 on
    an even size), the kernel gets one zero row / column in front and the padding becomes
    symmetric (``after`` on both sides): output ``i`` then reads input ``s*i - after + k'``
    with kernel tap ``k' - 1``, i.e. ``s*i - before + k``, the same sum plus exact zeros.
    Padding a channels-last map with ``F.pad`` cost 3-5x the depthwise convolution itself
    (forward + backward of a 64-channel 112x112 map: 9.0 ms padded, 1.8 ms this way).

    Args:
        x: ``(N, Cin, H, W)``.
        weight: ``(Cout, Cin / groups, kH, kW)``.
        bias: ``(Cout,)`` or ``None``.
        stride: one stride or ``(sH, sW)``.
        groups: as for ``F.conv2d``.

    Returns:
        ``(N, Cout, ceil(H / sH), ceil(W / sW))``.
    """
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    kh, kw = weight.shape[-2:]
    top, bottom = same_padding(x.shape[-2], kh, sh)
    left, right = same_padding(x.shape[-1], kw, sw)
    if top == bottom and left == right:
        return F.conv2d(x, weight, bias, (sh, sw), (top, left), 1, groups)
    if bottom - top in (0, 1) and right - left in (0, 1) and not torch.jit.is_tracing():
        # (a traced export, ONNX or TorchScript, keeps the plain padded form: the ONNX
        # exporter refuses convolutions whose kernel is computed in the graph)
        weight = F.pad(weight, (right - left, 0, bottom - top, 0))
        return F.conv2d(x, weight, bias, (sh, sw), (bottom, right), 1, groups)
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, weight, bias, (sh, sw), 0, 1, groups)


def conv_input_gradient(grad: torch.Tensor, weight: torch.Tensor,
                        padding: int) -> torch.Tensor:
    """The input gradient of a stride-1 convolution, as one matrix product and shifted adds.

    For ``y = F.conv2d(x, weight, padding=padding)`` (stride 1, one group, "same" size) this
    is ``d <grad, y> / dx``, the function of ``torch.nn.grad.conv2d_input``. Where ``x`` has
    few channels (an image's 3) the convolution library computes it as a convolution with 3
    output channels, which keeps the CPU's vector units a fraction busy (layer 0 of a compact
    model: ~3 ms per 112x112 image, a third of a synthesis step). Here the work is one
    well-shaped matrix product, ``(Cin*kH*kW, Cout) @ (Cout, H*W)``, whose rows are the
    gradient's contribution through each kernel tap, then ``kW + kH`` shifted additions
    that place the taps (a col2im done separably): 2.5x faster for that layer on one core.

    Args:
        grad: ``(N, Cout, H, W)`` gradient of the output, contiguous or channels-last.
        weight: ``(Cout, Cin, kH, kW)``.
        padding: the symmetric padding of the forward convolution (``kH // 2`` for "same").

    Returns:
        ``(N, Cin, H + kH - 1 - 2 * padding, W + kW - 1 - 2 * padding)`` contiguous.
    """
    n, out_channels, height, width = grad.shape
    in_channels, kh, kw = weight.shape[1:]
    taps = weight.reshape(out_channels, in_channels * kh * kw).t()
    if grad.is_contiguous():
        cols = grad.reshape(n, out_channels, height * width)
    else:  # channels-last: the transposed view of its (N, H*W, Cout) rows, no copy
        cols = grad.permute(0, 2, 3, 1).reshape(n, height * width, out_channels).transpose(1, 2)
    per_tap = torch.matmul(taps, cols).view(n, in_channels * kh, kw, height, width)
    # sum over the horizontal taps, then over the vertical ones, each a shifted add
    rows = per_tap.new_zeros(n, in_channels * kh, height, width + kw - 1)
    for dx in range(kw):
        rows[..., dx:dx + width] += per_tap[:, :, dx]
    rows = rows.view(n, in_channels, kh, height, width + kw - 1)
    full = per_tap.new_zeros(n, in_channels, height + kh - 1, width + kw - 1)
    for dy in range(kh):
        full[:, :, dy:dy + height] += rows[:, :, dy]
    return full[:, :, padding:full.shape[2] - padding,
                padding:full.shape[3] - padding].contiguous()


#: Most input channels for which :class:`_FrozenConv` computes the input gradient itself
#: (its per-tap rows hold ``Cin * kH * kW`` maps of the output's size).
_FROZEN_CONV_MAX_IN = 4


def _frozen_conv_applies(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether :class:`_FrozenConv` may replace ``conv`` on ``x``: an input gradient is
    wanted but no weight gradient (a frozen model, e.g. in synthesis), on the CPU, for a
    stride-1 convolution over few channels with symmetric "same" padding."""
    return (x.requires_grad and torch.is_grad_enabled() and x.device.type == "cpu"
            and not conv.weight.requires_grad
            and (conv.bias is None or not conv.bias.requires_grad)
            and conv.stride == (1, 1) and conv.groups == 1 and conv.dilation == (1, 1)
            and conv.in_channels <= _FROZEN_CONV_MAX_IN
            and conv.kernel_size[0] == conv.kernel_size[1] and conv.kernel_size[0] % 2 == 1
            and not torch.jit.is_tracing())


class _FrozenConv(torch.autograd.Function):
    """``relu?(F.conv2d(x, weight, bias, padding=p))`` with frozen weights, whose backward
    gives the input gradient by :func:`conv_input_gradient` (the ReLU runs in place on the
    fresh convolution output; its mask is applied in backward)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, relu: bool):
        y = F.conv2d(x, weight, bias, 1, padding)
        if relu:
            y = F.relu_(y)
        ctx.save_for_backward(weight, y if relu else None)
        ctx.padding = padding
        ctx.memory_format = (torch.channels_last
                             if x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous() else torch.contiguous_format)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        weight, y = ctx.saved_tensors
        if y is not None:
            grad = torch.ops.aten.threshold_backward(grad, y, 0.0)
        out = conv_input_gradient(grad, weight, ctx.padding)
        return out.contiguous(memory_format=ctx.memory_format), None, None, None, None


def _relu(x: torch.Tensor) -> torch.Tensor:
    # in place when no graph is recorded (x is a fresh convolution / batch-norm output):
    # saves one full-size memory pass per layer at inference
    return F.relu_(x) if torch.is_inference_mode_enabled() else F.relu(x)


def _batch_norm(channels: int, eps: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps, momentum=BN_MOMENTUM)


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
                  bias: torch.Tensor | None, groups: int | None = None) -> torch.Tensor:
        """The same convolution with other weights (e.g. stacked or folded ones)."""
        return same_conv2d(x, weight, bias, self.stride,
                           self.groups if groups is None else groups)


def grouped_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      groups: int) -> torch.Tensor:
    """A grouped 1x1 convolution computed as one batched matrix product.

    The same function as ``F.conv2d(x, weight, bias, groups=groups)``; for the pointwise
    layers of a :class:`~v4compact.models.nets.stack.CompactStack` (one group per model) it is a
    second implementation whose speed differs by device and layout, so training can pick
    the faster (:mod:`v4compact.training.kernels`).

    Args:
        x: ``(N, G*Cin, H, W)``, contiguous or channels-last memory.
        weight: ``(G*Cout, Cin, 1, 1)`` (PyTorch's grouped layout).
        bias: ``(G*Cout,)`` or ``None``.
        groups: G.

    Returns:
        ``(N, G*Cout, H, W)`` in the memory format of ``x``.
    """
    n, channels, height, width = x.shape
    out_channels = weight.shape[0]
    per_group = weight.view(groups, out_channels // groups, channels // groups)
    if x.is_contiguous():
        # (G, Co, Ci) @ (N, G, Ci, HW): no copy of the activations in or out
        y = torch.matmul(per_group, x.view(n, groups, channels // groups, height * width))
        y = y.view(n, out_channels, height, width)
        return y if bias is None else y + bias.view(1, -1, 1, 1)
    rows = x.permute(0, 2, 3, 1).reshape(n * height * width, groups, channels // groups)
    y = torch.einsum("pgi,goi->pgo", rows, per_group)
    if bias is not None:
        y = y + bias.view(groups, -1)
    return y.reshape(n, height, width, out_channels).permute(0, 3, 1, 2)


class ConvBlock(nn.Module):
    """Full convolution -> batch norm -> optional ReLU (layer 0 of the compact models).

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: kernel side (pixels).
        stride: stride (pixels), TensorFlow "same" padding.
        bn_eps: batch-norm epsilon.
        relu: whether a ReLU follows the batch norm (False for the "linear" teacher).
        batch_norm: False for a folded block (see :meth:`fuse`).

    Attributes:
        conv: :class:`SameConv2d` ``in_channels -> out_channels``, with bias.
        bn: :class:`torch.nn.BatchNorm2d`, or ``None`` in a folded block.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = KERNEL_SIZE,
                 stride: int = 1, bn_eps: float = DEFAULT_BN_EPS, relu: bool = True,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.conv = SameConv2d(in_channels, out_channels, kernel_size, stride=stride)
        self.bn = _batch_norm(out_channels, bn_eps) if batch_norm else None
        self.relu = relu
        self.bn_eps = float(bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, Cin, H, W)`` -> ``(N, Cout, H / stride, W / stride)``.

        A folded block with frozen weights whose input gradient is wanted (synthesis on the
        CPU) runs as one function whose backward is :func:`conv_input_gradient`.
        """
        if self.bn is None and _frozen_conv_applies(x, self.conv):
            return _FrozenConv.apply(x, self.conv.weight, self.conv.bias,
                                     self.conv.kernel_size[0] // 2, self.relu)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return _relu(x) if self.relu else x

    def fuse(self) -> ConvBlock:
        """A new block without batch norm computing this block's eval-mode function."""
        conv = self.conv
        out = ConvBlock(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                        conv.stride[0], self.bn_eps, self.relu, batch_norm=False)
        out.to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            weight, bias = (conv.weight, conv.bias) if self.bn is None else \
                fold_batch_norm(conv.weight, conv.bias, self.bn)
            out.conv.weight.copy_(weight)
            out.conv.bias.copy_(bias)
        return out.train(self.training)


class SeparableBlock(nn.Module):
    """Keras-order separable convolution -> batch norm -> optional ReLU (layers 1-4).

    Args: as for :class:`ConvBlock`, and ``pointwise_groups``: groups of the 1x1 convolution
        (1 for one model; the number of models in a
        :class:`~v4compact.models.nets.stack.CompactStack`, whose pointwise is block-diagonal).

    Attributes:
        depthwise: depthwise :class:`SameConv2d`, weight ``(Cin, 1, k, k)``, no bias.
        pointwise: 1x1 convolution ``Cin -> Cout``, weight ``(Cout, Cin / groups, 1, 1)``,
            with bias.
        bn: :class:`torch.nn.BatchNorm2d`, or ``None`` in a folded block.
        pointwise_impl: ``"conv"`` (``F.conv2d``) or ``"matmul"``
            (:func:`grouped_pointwise`) for a grouped pointwise layer; the same function.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = KERNEL_SIZE,
                 stride: int = 1, bn_eps: float = DEFAULT_BN_EPS, relu: bool = True,
                 batch_norm: bool = True, pointwise_groups: int = 1) -> None:
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, kernel_size, stride=stride,
                                    groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True,
                                   groups=pointwise_groups)
        self.bn = _batch_norm(out_channels, bn_eps) if batch_norm else None
        self.relu = relu
        self.bn_eps = float(bn_eps)
        self.pointwise_impl = "conv"

    def forward_depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise stage alone: ``(N, Cin, H, W)`` -> ``(N, Cin, H / s, W / s)``."""
        return self.depthwise(x)

    def forward_from_depthwise(self, d: torch.Tensor) -> torch.Tensor:
        """Pointwise, batch norm and ReLU applied to a depthwise output."""
        pw = self.pointwise
        if self.pointwise_impl == "matmul" and pw.groups > 1:
            x = grouped_pointwise(d, pw.weight, pw.bias, pw.groups)
        else:
            x = pw(d)
        if self.bn is not None:
            x = self.bn(x)
        return _relu(x) if self.relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, Cin, H, W)`` -> ``(N, Cout, H / stride, W / stride)``."""
        return self.forward_from_depthwise(self.forward_depthwise(x))

    def fuse(self) -> SeparableBlock:
        """A new block without batch norm computing this block's eval-mode function."""
        dw, pw = self.depthwise, self.pointwise
        out = SeparableBlock(pw.in_channels, pw.out_channels, dw.kernel_size[0], dw.stride[0],
                             self.bn_eps, self.relu, batch_norm=False,
                             pointwise_groups=pw.groups)
        out.pointwise_impl = self.pointwise_impl
        out.to(device=pw.weight.device, dtype=pw.weight.dtype)
        with torch.no_grad():
            weight, bias = (pw.weight, pw.bias) if self.bn is None else \
                fold_batch_norm(pw.weight, pw.bias, self.bn)
            out.depthwise.weight.copy_(dw.weight)
            out.pointwise.weight.copy_(weight)
            out.pointwise.bias.copy_(bias)
        return out.train(self.training)


def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Keras' default kernel initialiser: uniform in ``+-sqrt(6 / (fan_in + fan_out))``.

    Args:
        weight: tensor to fill in place.
        fan_in, fan_out: the fans Keras computes from *its* kernel layout (see
            :func:`keras_init_`).
        generator: random generator (seeded by the caller for reproducible models).
    """
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        noise = torch.rand(weight.shape, generator=generator, dtype=torch.float64)
        weight.copy_((noise * 2 - 1) * limit)
    return weight


def keras_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every convolution, dense layer and batch norm as Keras does by default.

    Glorot-uniform kernels with Keras' fans (a conv kernel ``(kh, kw, Cin, Cout)`` has fans
    ``kh*kw*Cin`` / ``kh*kw*Cout``; a depthwise kernel ``(kh, kw, C, 1)`` has ``kh*kw*C`` /
    ``kh*kw``; a dense kernel ``(in, out)`` has ``in`` / ``out``), zero biases, batch-norm
    gamma 1, beta 0, moving mean 0, moving variance 1. Modules are visited in
    registration order, so a seeded generator gives the same model every time.

    Returns:
        ``module``, initialised in place.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            out_channels, in_per_group, kh, kw = sub.weight.shape
            taps = kh * kw
            if sub.groups > 1 and in_per_group == 1 and sub.groups == sub.in_channels:
                fan_in, fan_out = taps * sub.in_channels, taps * out_channels // sub.groups
            else:
                fan_in, fan_out = taps * in_per_group, taps * out_channels // sub.groups
            glorot_uniform_(sub.weight, fan_in, fan_out, generator)
        elif isinstance(sub, nn.Linear):
            glorot_uniform_(sub.weight, sub.in_features, sub.out_features, generator)
        elif isinstance(sub, nn.BatchNorm2d):
            sub.reset_running_stats()
            with torch.no_grad():
                sub.weight.fill_(1.0)
                sub.bias.fill_(0.0)
            continue
        else:
            continue
        if sub.bias is not None:
            with torch.no_grad():
                sub.bias.zero_()
    return module
