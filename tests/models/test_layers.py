"""TensorFlow "same" padding, the separable block and inference batch norm, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from v4compact.models.nets.layers import (
    ConvBlock,
    SameConv2d,
    SeparableBlock,
    conv_input_gradient,
    same_conv2d,
    same_padding,
)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (112, 5, 2, (1, 2)),  # layer 1 of the compact models: 1 before, 2 after
        (56, 5, 2, (1, 2)),  # layer 2
        (112, 5, 1, (2, 2)),
        (28, 5, 1, (2, 2)),
        (7, 3, 2, (1, 1)),
        (5, 5, 2, (2, 2)),
        (10, 1, 2, (0, 0)),
        (3, 5, 1, (2, 2)),
    ],
)
def test_same_padding_known_values(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_same_padding_output_size(kernel, stride):
    for size in range(1, 30):
        before, after = same_padding(size, kernel, stride)
        out = (size + before + after - kernel) // stride + 1
        assert out == math.ceil(size / stride)
        assert 0 <= after - before <= 1


def _explicit_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Direct TF-"same" convolution: output pixel i reads input (i*stride + t - before)."""
    n, cin, h, wd = x.shape
    cout, _, k, _ = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    top = ((oh - 1) * stride + k - h) // 2
    left = ((ow - 1) * stride + k - wd) // 2
    out = np.zeros((n, cout, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for a in range(k):
                for b in range(k):
                    r, c = i * stride + a - top, j * stride + b - left
                    if 0 <= r < h and 0 <= c < wd:
                        out[:, :, i, j] += x[:, :, r, c] @ w[:, :, a, b].T
    return out


@pytest.mark.parametrize(("size", "stride"), [(12, 2), (11, 2), (9, 1), (8, 1)])
def test_same_conv_matches_explicit_convolution(size, stride):
    torch.manual_seed(0)
    conv = SameConv2d(3, 4, 5, stride=stride, bias=False).double()
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        got = conv(x).numpy()
    want = _explicit_conv(x.numpy(), conv.weight.detach().numpy(), stride)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_stride2_on_even_size_pads_one_before_two_after():
    torch.manual_seed(1)
    conv = SameConv2d(2, 2, 5, stride=2, groups=2, bias=False)
    x = torch.randn(1, 2, 112, 112)
    with torch.no_grad():
        got = conv(x)
        want = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, stride=2, groups=2)
        symmetric = F.conv2d(x, conv.weight, stride=2, padding=2, groups=2)
    assert got.shape == (1, 2, 56, 56)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, symmetric)  # PyTorch's symmetric padding would be wrong


def _set_bn(bn, rng):
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, c)))
        bn.bias.copy_(torch.from_numpy(rng.normal(size=c)))
        bn.running_mean.copy_(torch.from_numpy(rng.normal(size=c)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(1e-4, 1e-2, c)))


def test_separable_block_is_depthwise_then_pointwise_then_bn_relu():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    block = SeparableBlock(4, 3, 5, stride=2, bn_eps=1e-3).double().eval()
    _set_bn(block.bn, rng)
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        got = block(x).numpy()
        dw = F.conv2d(F.pad(x, (1, 2, 1, 2)), block.depthwise.weight, stride=2, groups=4)
        pw = torch.einsum("nchw,oc->nohw", dw, block.pointwise.weight[:, :, 0, 0])
        pw = pw + block.pointwise.bias[None, :, None, None]
        bn = block.bn
        norm = (pw - bn.running_mean[None, :, None, None]) / torch.sqrt(
            bn.running_var[None, :, None, None] + 1e-3)
        want = torch.relu(norm * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])
    assert block.depthwise.bias is None
    assert block.bn.eps == 1e-3
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


def test_linear_block_has_no_relu_and_uses_moving_statistics():
    rng = np.random.default_rng(1)
    block = ConvBlock(3, 5, 5, bn_eps=1e-3, relu=False).double().eval()
    _set_bn(block.bn, rng)
    x = torch.randn(4, 3, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
        conv = block.conv(x)
    assert (y < 0).any()  # no ReLU
    bn = block.bn
    expected = (conv - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + 1e-3) * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("block_type", [ConvBlock, SeparableBlock])
def test_fuse_returns_a_folded_block_with_the_eval_function(block_type):
    """fuse() folds batch norm into a new block; the original keeps its batch norm."""
    rng = np.random.default_rng(2)
    torch.manual_seed(2)
    block = block_type(6, 4, 5, stride=2, bn_eps=1e-3).double().eval()
    _set_bn(block.bn, rng)
    x = torch.randn(3, 6, 14, 14, dtype=torch.float64)
    fused = block.fuse()
    assert fused.bn is None and block.bn is not None
    with torch.no_grad():
        slow = block(x)
        fast = fused(x)
    with torch.inference_mode():
        inference = block(x)  # no hidden folding: the same module path in inference mode
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inference, slow, rtol=0, atol=0)


@pytest.mark.parametrize("block_type", [ConvBlock, SeparableBlock])
def test_batch_norm_trains_with_batch_statistics_and_keras_momentum(block_type):
    """train(): batch statistics, moving averages updated with Keras' momentum 0.99;
    eval(): moving averages, nothing updated; hooks on bn fire in both modes."""
    torch.manual_seed(3)
    block = block_type(3, 4, 5).double()
    calls = []
    block.bn.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(8, 3, 9, 9, dtype=torch.float64)
    block.train()
    pre = (block.conv(x) if block_type is ConvBlock else
           block.pointwise(block.depthwise(x))).detach()
    y = block(x)
    mean = pre.mean(dim=(0, 2, 3))
    var = pre.var(dim=(0, 2, 3), unbiased=False)
    norm = (pre - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-3)
    torch.testing.assert_close(y, torch.relu(norm))
    torch.testing.assert_close(block.bn.running_mean, 0.01 * mean)
    block.eval()
    before = block.bn.running_mean.clone()
    with torch.inference_mode():
        block(x)
    torch.testing.assert_close(block.bn.running_mean, before)
    assert len(calls) == 2


@pytest.mark.parametrize("size", [112, 56, 28, 15])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_conv2d_equals_padding_the_input(size, stride):
    # the zero-row kernel trick (no padded copy) against F.pad + a "valid" convolution,
    # values and both gradients, for depthwise and full convolutions
    gen = torch.Generator().manual_seed(size * 10 + stride)
    for groups, cin, cout in ((1, 3, 4), (6, 6, 6)):
        x = torch.randn(2, cin, size, size, generator=gen, dtype=torch.float64,
                        requires_grad=True)
        w = torch.randn(cout, cin // groups, 5, 5, generator=gen, dtype=torch.float64,
                        requires_grad=True)
        top, bottom = same_padding(size, 5, stride)
        want = F.conv2d(F.pad(x, (top, bottom, top, bottom)), w, None, stride, 0, 1, groups)
        got = same_conv2d(x, w, None, stride, groups)
        assert got.shape == want.shape == (2, cout, -(-size // stride), -(-size // stride))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        g = torch.randn(want.shape, generator=gen, dtype=torch.float64)
        for a, b in zip(torch.autograd.grad(got, (x, w), g),
                        torch.autograd.grad(want, (x, w), g), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kernel", "cin", "size"), [(5, 3, 112), (5, 3, 17), (3, 1, 9),
                                                     (5, 4, 28)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_input_gradient_equals_torch(kernel, cin, size, channels_last):
    # the matmul + shifted-add input gradient against PyTorch's own, float64
    gen = torch.Generator().manual_seed(kernel * 100 + cin * 10 + size)
    w = torch.randn(7, cin, kernel, kernel, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 7, size, size, generator=gen, dtype=torch.float64)
    if channels_last:
        g = g.contiguous(memory_format=torch.channels_last)
    want = torch.nn.grad.conv2d_input((2, cin, size, size), w, g, padding=kernel // 2)
    got = conv_input_gradient(g, w, kernel // 2)
    assert got.shape == (2, cin, size, size) and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_frozen_layer0_gives_the_same_values_and_input_gradient(relu, memory_format):
    # a folded layer-0 block with frozen weights (synthesis) takes the fast input-gradient
    # path; the same block with trainable weights takes PyTorch's: same function
    gen = torch.Generator().manual_seed(3)
    block = ConvBlock(3, 12, relu=relu, batch_norm=False).double()
    with torch.no_grad():
        block.conv.weight.copy_(torch.randn(block.conv.weight.shape, generator=gen))
        block.conv.bias.copy_(torch.randn(12, generator=gen))
    block = block.to(memory_format=memory_format)
    x = torch.randn(3, 3, 20, 20, generator=gen, dtype=torch.float64)
    x = x.contiguous(memory_format=memory_format).requires_grad_(True)
    g = torch.randn(3, 12, 20, 20, generator=gen, dtype=torch.float64)
    want = block(x)
    (want_grad,) = torch.autograd.grad(want, x, g)
    assert want.grad_fn.name() != "_FrozenConvBackward"
    block.requires_grad_(False)
    got = block(x)
    assert got.grad_fn.name() == "_FrozenConvBackward"
    (got_grad,) = torch.autograd.grad(got, x, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)
    assert got_grad.is_contiguous(memory_format=memory_format)
    with torch.no_grad():  # no gradient wanted: the plain path
        assert block(x).grad_fn is None
