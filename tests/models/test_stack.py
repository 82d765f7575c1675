"""The trainable stack: K compact models as one module equal K models trained alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import v4compact
from v4compact.errors import InvalidInputError
from v4compact.models.nets.compact import CompactModel
from v4compact.models.nets.stack import KERNEL_CHOICES, CompactStack

RELEASED = [(201025, 10), (201025, 11), (201025, 12)]  # widths differ: masks needed


@pytest.fixture(scope="module")
def released(data_dir):
    return [v4compact.load_compact_model(s, k, data_dir=data_dir) for s, k in RELEASED]


def _images(n: int, seed: int, dtype=torch.float32, models: int | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (n, 3, 112, 112) if models is None else (n, models, 3, 112, 112)
    return (torch.rand(shape, generator=gen, dtype=dtype) * 255 - 110)


def test_released_models_stack_column_by_column(released):
    stack = CompactStack.from_models(released).eval()
    assert stack.widths == [max(m.num_filters[i] for m in released) for i in range(5)]
    assert stack.mask0 is not None  # heterogeneous widths are masked
    assert stack.neuron_ids == ["201025/10", "201025/11", "201025/12"]
    x = _images(3, 0)
    per_model = _images(3, 1, models=3)
    with torch.no_grad():
        got = stack(x)
        want = torch.cat([m(x) for m in released], dim=1)
        got_own = stack(per_model)
        want_own = torch.cat([m(per_model[:, i]) for i, m in enumerate(released)], dim=1)
        maps = stack.forward_to(x, "layer2")
    scale = want.std()
    assert (got - want).abs().max() / scale < 1e-5
    assert (got_own - want_own).abs().max() / scale < 1e-5
    assert maps.shape == (3, 3, stack.widths[2], 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(maps[:, 1, :7], released[1].forward_to(x, "layer2"),
                                   rtol=1e-4, atol=1e-4)
    assert maps[:, 0, 3:].abs().max() == 0  # padding stays zero

    fused = stack.fused()  # batch norm folded, channels-last: the same function
    assert not any(p.requires_grad for p in fused.parameters())
    with torch.no_grad():
        assert (fused(x) - want).abs().max() / scale < 1e-5
        assert (fused(per_model) - want_own).abs().max() / scale < 1e-5


def test_to_models_round_trip_is_exact(released):
    back = CompactStack.from_models(released).to_models()
    for model, rebuilt in zip(released, back, strict=True):
        assert rebuilt.num_filters == model.num_filters
        assert rebuilt.neuron_ids == model.neuron_ids
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(rebuilt.state_dict()[name], tensor, rtol=0, atol=0)


def _train(models_or_stack, optimizer_cls, steps: int, stacked: bool, lr: float):
    """A few steps on the summed per-model MSE; returns the first step's gradients."""
    modules = [models_or_stack] if stacked else models_or_stack
    params = [p for m in modules for p in m.parameters()]
    opt = optimizer_cls(params, lr=lr)
    first_grads = None
    for step in range(steps):
        x = _images(4, 100 + step, dtype=torch.float64)
        target = torch.randn(4, 3, generator=torch.Generator().manual_seed(step),
                             dtype=torch.float64)
        opt.zero_grad()
        if stacked:
            loss = ((models_or_stack(x) - target) ** 2).mean(dim=0).sum()
        else:
            loss = sum(((m(x)[:, 0] - target[:, k]) ** 2).mean()
                       for k, m in enumerate(models_or_stack))
        loss.backward()
        if first_grads is None:
            first_grads = [p.grad.clone() for p in params]
        opt.step()
    return first_grads


#: Biases in front of a training-mode batch norm have a true gradient of zero: Adam turns
#: the float noise of their gradient (~1e-14) into steps of up to ~1e-8 that differ between
#: any two summation orders; they (and the moving means they shift) get an absolute tolerance
#: of 1e-3 of one learning-rate step, everything else a relative one.
_NOISE_DRIVEN = ("conv.bias", "pointwise.bias", "bn.running_mean")


def _assert_same_models(stack: CompactStack, models: list[CompactModel], rtol: float,
                        lr: float = 1e-3) -> None:
    for k, (got, want) in enumerate(zip(stack.to_models(), models, strict=True)):
        for name, tensor in want.state_dict().items():
            other = got.state_dict()[name]
            if tensor.is_floating_point():
                err = (other - tensor).abs().max().item()
                atol = 1e-3 * lr if name.endswith(_NOISE_DRIVEN) and rtol else 0.0
                bound = rtol * tensor.abs().max().item() + atol
                assert err <= bound, f"model {k} {name}: error {err:.2e} > {bound:.2e}"
            else:
                assert torch.equal(other, tensor), f"model {k} {name}"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_step_on_the_stack_equals_a_step_on_each_student(optimizer):
    """Three students (float64; narrow ones, to keep the test fast - width plays no role):
    Adam / SGD steps on the stack with the loss summed over students equal the same steps
    on each student alone - parameters and batch-norm moving statistics included."""
    cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    seeds, widths = [11, 12, 13], [12, 10, 8, 8, 6]
    alone = [CompactModel.student(widths, seed=s).double() for s in seeds]
    stack = CompactStack.students(3, widths, seeds=seeds).double()
    assert stack.training and all(m.training for m in alone)
    assert stack.mask0 is None  # equal widths: no masks
    _assert_same_models(stack, alone, rtol=0)  # the same initialisation, bit for bit
    grads = _train(stack, cls, 2, stacked=True, lr=1e-3)
    grads_alone = _train(alone, cls, 2, stacked=False, lr=1e-3)
    # the first step's gradients of one block-diagonal weight, model by model
    name = "core.layer3.pointwise.weight"
    own_names = [n for n, _ in alone[0].named_parameters()]
    stacked = grads[[n for n, _ in stack.named_parameters()].index(name)]
    for k in range(3):
        own = grads_alone[k * len(own_names) + own_names.index(name)]
        torch.testing.assert_close(stacked[k * 8:(k + 1) * 8], own, rtol=1e-10, atol=1e-14)
    _assert_same_models(stack, alone, rtol=1e-9)
    torch.testing.assert_close(  # moving variances: per student, to float rounding
        stack.core.layer2.bn.running_var[8:16], alone[1].core.layer2.bn.running_var,
        rtol=1e-10, atol=0)
    assert all(int(m.core.layer0.bn.num_batches_tracked) == 2 for m in alone)


def test_masked_stack_trains_each_model_as_its_own_size(released):
    """Models of different widths (padded + masked) train exactly as the models alone:
    the padding gets no gradient and stays zero."""
    alone = [copy.deepcopy(m).double().train() for m in released]
    stack = CompactStack.from_models(alone)
    assert stack.mask0 is not None and stack.training
    grads = _train(stack, torch.optim.Adam, 2, stacked=True, lr=1e-4)
    _train(alone, torch.optim.Adam, 2, stacked=False, lr=1e-4)
    _assert_same_models(stack, alone, rtol=1e-9, lr=1e-4)
    names = [n for n, _ in stack.named_parameters()]
    pointwise = grads[names.index("core.layer1.pointwise.weight")]
    assert pointwise[39:63].abs().max() == 0  # model 0 has 39 live filters of 63 in layer 1
    assert stack.core.layer1.pointwise.weight[39:63].abs().max() == 0


@pytest.mark.parametrize("pointwise", KERNEL_CHOICES["pointwise"])
@pytest.mark.parametrize("memory_format", KERNEL_CHOICES["memory_format"])
def test_every_kernel_choice_computes_the_same_training_step(released, pointwise,
                                                             memory_format):
    # training mode (batch statistics), shared and per-model images: same outputs and
    # the same weight gradients as the default grouped convolutions
    x, own = _images(4, 7), _images(4, 8, models=3)

    def outputs_and_grads(stack):
        # biases before batch norm have an exact gradient of 0 (rounding noise): left out
        names, params = zip(*[(n, p) for n, p in stack.named_parameters()
                              if not n.endswith(("conv.bias", "pointwise.bias"))], strict=True)
        out = stack(x).sum() + 0.5 * stack(own).sum()
        return stack(x).detach(), torch.autograd.grad(out, params)

    reference = CompactStack.from_models(released).train()
    chosen = copy.deepcopy(reference).set_kernels(pointwise, memory_format)
    assert chosen.kernels == {"pointwise": pointwise, "memory_format": memory_format}
    if memory_format == "channels_last":
        assert chosen.core.layer2.pointwise.weight.is_contiguous(
            memory_format=torch.channels_last)
    want, want_grads = outputs_and_grads(reference)
    got, got_grads = outputs_and_grads(chosen)
    assert (got - want).abs().max() / want.std() < 1e-4  # batch statistics of 4 images
    # the exact step (float64) is the yardstick: the batch-norm gradients of a summed output
    # cancel, so float32 rounding alone moves the default kernels' gradients by up to ~1e-3
    # of their largest entry (with one thread): a kernel choice is as close to it as 1e-4 of
    # the largest entry, or as close as the default kernels are
    x, own = x.double(), own.double()
    _, exact_grads = outputs_and_grads(copy.deepcopy(reference).double())
    for g, w, e in zip(got_grads, want_grads, exact_grads, strict=True):
        floor = (w.double() - e).abs().max()
        assert (g.double() - e).abs().max() <= max(2 * floor, 1e-4 * e.abs().max()) + 1e-12


def test_bad_kernel_choices_are_refused(released):
    stack = CompactStack.from_models(released)
    with pytest.raises(InvalidInputError, match="pointwise kernel 'gemm'"):
        stack.set_kernels(pointwise="gemm")
    with pytest.raises(InvalidInputError, match="memory format 'nhwc'"):
        stack.set_kernels(memory_format="nhwc")


def test_bad_inputs_are_refused(released):
    stack = CompactStack.from_models(released)
    with pytest.raises(InvalidInputError, match=r"\(N, 3, H, W\)"):
        stack(torch.zeros(2, 4, 112, 112))
    with pytest.raises(InvalidInputError, match="at least one"):
        CompactStack.from_models([])
    with pytest.raises(InvalidInputError, match="not an unfused compact model"):
        CompactStack.from_models([released[0].fuse()])
    with pytest.raises(InvalidInputError, match="out of range"):
        stack.model(3)
    assert np.isfinite(stack(_images(1, 5)).detach().numpy()).all()
