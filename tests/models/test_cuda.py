"""The accelerator against the CPU: population, routed synthesis, training steps and the whole
make-compact recipe on CUDA give what the CPU gives, within float32 tolerances.

These tests need a CUDA device (marker ``gpu``); ``scripts/device_checks.sh`` runs them on the
lent GPU machine. TF32 is switched off inside them (PyTorch lets cuDNN convolutions use TF32 by
default, a 10-bit mantissa: ~1e-3 relative error), so the comparison is float32 against float32.
``V4COMPACT_TEST_DEVICE=cpu`` runs the same code paths against a second CPU copy (a dry run of
the test code itself, not of CUDA).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

import v4compact
from v4compact.models.nets.stack import CompactStack
from v4compact.synthesis.routing import RoutedModels

DEVICE = os.environ.get("V4COMPACT_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.usefixtures("no_tf32"),
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="needs a CUDA device (run scripts/device_checks.sh on one)"),
]


def _spread(pred: np.ndarray, ref: np.ndarray) -> float:
    """Largest error of any column relative to that column's s.d. over images."""
    return float((np.abs(pred - ref).max(axis=0) / ref.std(axis=0)).max())


def test_population_on_the_device_equals_the_cpu(data_dir, golden_images):
    population = v4compact.load_compact_population(data_dir=data_dir)
    images = np.concatenate([golden_images, golden_images[:, ::-1]])  # 2 x the golden set
    cpu = population.predict(images)
    device = population.predict(images, device=DEVICE)
    assert device.shape == cpu.shape == (len(images), 219)
    assert _spread(device, cpu) < 1e-4


def test_routed_synthesis_gradients_on_the_device(compact_models):
    """The stacked routed pass (the CUDA path) on the device: each image's response and
    input gradient equal the separate models' on the CPU in float64."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 112, 112)
    columns = torch.tensor([1, 0, 2, 1, 0, 2])
    weights = torch.tensor([0.5, -2.0, 1.0, 3.0, 0.25, -1.0])
    routed = RoutedModels([copy.deepcopy(m).to(DEVICE) for m in compact_models])
    routed.cpu_mode = "stack"  # what CUDA runs; on a CPU dry run, the same path
    a = x.to(DEVICE, copy=True).requires_grad_(True)
    y = routed.forward_columns(a, columns.to(DEVICE))
    (y * weights.to(DEVICE)).sum().backward()
    reference = [copy.deepcopy(m).double() for m in compact_models]
    b = x.detach().double().requires_grad_(True)
    ref = torch.stack([reference[int(c)](b[i:i + 1]).reshape(()) for i, c in enumerate(columns)])
    (ref * weights.double()).sum().backward()
    assert routed._stacks
    torch.testing.assert_close(y.detach().cpu().double(), ref.detach(), rtol=1e-4,
                               atol=1e-4 * ref.abs().max().item())
    scale = b.grad.abs().max().item()
    torch.testing.assert_close(a.grad.cpu().double(), b.grad, rtol=0, atol=1e-4 * scale)


def test_synthesis_on_the_device_follows_the_cpu(compact_models):
    """Routed synthesis of 3 neurons on the device, 10 upstream steps from the same seed: the
    images stay within a few grey levels of the CPU's (normalised-gradient steps of 10 grey
    levels amplify float rounding, so bit equality is not expected)."""
    from v4compact.synthesis import synthesize

    routed = RoutedModels(list(compact_models))
    cpu = synthesize(routed, [0, 1, 2], seeds=1, preset="upstream", steps=10, device="cpu",
                     progress=False)
    dev = synthesize(routed, [0, 1, 2], seeds=1, preset="upstream", steps=10, device=DEVICE,
                     progress=False)
    diff = np.abs(cpu.images.astype(int) - dev.images.astype(int))
    assert np.median(diff) <= 1 and np.percentile(diff, 99) <= 10
    np.testing.assert_allclose(dev.target_responses, cpu.target_responses, rtol=0.05)


def _one_adam_step(stack: CompactStack, images: torch.Tensor, targets: torch.Tensor,
                   mixed_precision: bool = False) -> float:
    from v4compact.training.distill import _step
    from v4compact.training.runtime import Runtime

    device = next(stack.parameters()).device
    parameters = list(stack.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-4, eps=1e-7)
    loss = _step(stack, optimizer, parameters, images, targets.numpy(), len(images), device,
                 mixed_precision, Runtime(device=device))
    return float(loss.sum())


#: Parameters whose exact gradient is zero (biases followed by batch norm): their computed
#: gradient is rounding noise, which Adam's first step turns into a full +-lr step of either
#: sign (a CUDA run: 628 of 548k moved weights disagreed in sign, all such biases).
NOISE_DRIVEN = ("conv.bias", "pointwise.bias")


def _exact_gradients(stack: CompactStack, images: torch.Tensor, targets: torch.Tensor) -> dict:
    """The gradients of ``_step``'s loss computed in float64 on the CPU (a copy)."""
    from v4compact.training.distill import _to_input

    exact = copy.deepcopy(stack).double()
    out = exact(_to_input(images, torch.device("cpu")).double())
    ((out - targets.double()).pow(2).sum() / len(images)).backward()
    return {name: p.grad for name, p in exact.named_parameters()}


def test_a_training_step_on_the_device_equals_the_cpu():
    """One Adam step of 4 stacked 100-filter students on a batch of 16 images: the losses
    agree to 1e-5; every gradient is as close to the exact (float64) gradient as the CPU's
    float32 one is, within 3x or 1e-4 of the tensor's largest (layer 0's weight gradient sums
    200k products through batch norm's centring: the CPU itself is ~1e-3 off there); every
    weight's step agrees to float32 rounding of Adam's ~lr step, the moving statistics to
    1e-4. Biases before batch norm (exact gradient 0) are left out of the gradient check."""
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(16, 112, 112, 3, generator=gen) * 255).to(torch.uint8)
    targets = torch.randn(16, 4, generator=gen)
    cpu = CompactStack.students(4, (100,) * 5, seeds=[1, 2, 3, 4])
    dev = copy.deepcopy(cpu).to(DEVICE)
    before = {k: v.clone() for k, v in cpu.state_dict().items()}
    exact = _exact_gradients(cpu, images, targets)
    loss_cpu = _one_adam_step(cpu, images, targets)
    loss_dev = _one_adam_step(dev, images, targets)
    assert loss_dev == pytest.approx(loss_cpu, rel=1e-5)
    grads_dev = dict(dev.named_parameters())
    for name, param in cpu.named_parameters():
        if name.endswith(NOISE_DRIVEN):
            continue
        own = exact[name].abs().max().item()
        err_cpu = (param.grad.double() - exact[name]).abs().max().item()
        err_dev = (grads_dev[name].grad.cpu().double() - exact[name]).abs().max().item()
        assert err_dev <= max(3 * err_cpu, 1e-4 * own), \
            f"{name}: device gradient error {err_dev:.2e}, CPU's {err_cpu:.2e}, largest {own:.2e}"
    for name, value in cpu.state_dict().items():
        other = dev.state_dict()[name].cpu()
        if not value.is_floating_point():
            assert torch.equal(value, other), name
        elif "running" in name:  # batch-norm moving statistics: plain float32 arithmetic
            torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-6)
        else:
            torch.testing.assert_close(other - before[name], value - before[name], rtol=0,
                                       atol=2.1e-4)  # |Adam's first step| <= ~lr


@pytest.mark.skipif(DEVICE != "cuda", reason="bfloat16 autocast is a CUDA option")
def test_mixed_precision_step_follows_float32():
    gen = torch.Generator().manual_seed(1)
    images = (torch.rand(32, 112, 112, 3, generator=gen) * 255).to(torch.uint8)
    targets = torch.randn(32, 8, generator=gen)
    full = CompactStack.students(8, (100,) * 5, seeds=list(range(8))).to(DEVICE)
    half = copy.deepcopy(full)
    loss_full = _one_adam_step(full, images, targets)
    loss_half = _one_adam_step(half, images, targets, mixed_precision=True)
    assert np.isfinite(loss_half) and loss_half == pytest.approx(loss_full, rel=0.02)
    assert all(p.dtype == torch.float32 for p in half.parameters())  # master weights


def test_make_compact_on_the_device(tmp_path, data_dir):
    """The whole recipe on the device (teacher, cache, stacked students, smoothing, fidelity,
    pruning, rebuild, retraining, .keras files): its made model, loaded on the CPU, predicts
    what the run's own held-out fidelity says, and the device run follows a CPU run."""
    from v4compact.training.distill import DistillConfig
    from v4compact.training.recipe import make_compact

    settings = DistillConfig(num_filters=(6, 6, 4, 4, 4), batch_size=16, passes=1,
                             holdout_images=32, num_workers=0, eval_every=1)
    zips = data_dir / "data_V4_responses" / "images" / "images_210224.zip"
    neurons = ["201025/10", "201025/40"]
    reports = {}
    for name, device in (("cpu", "cpu"), ("device", DEVICE)):
        out = tmp_path / name
        reports[name] = make_compact("shared/from_ensemble_model/200", neurons, zips, out,
                                       settings, retrain_passes=1, max_images_per_shard=96,
                                       device=device, data_dir=data_dir)
    for cpu_row, dev_row in zip(reports["cpu"]["neurons"], reports["device"]["neurons"],
                                strict=True):
        assert cpu_row["neuron"] == dev_row["neuron"]
        for key in ("teacher_r2_distilled", "teacher_r2_step2"):
            assert abs(cpu_row[key] - dev_row[key]) < 0.05, key
    made = sorted((tmp_path / "device" / "models").glob("*.keras"))
    assert len(made) == 2
    model = v4compact.load_compact_model(made[0])
    images = np.asarray(v4compact.load_session(210224, data_dir=data_dir).images[:8])
    assert np.isfinite(model.predict(images)).all()


@pytest.fixture(scope="module")
def compact_models(data_dir):
    return [v4compact.load_compact_model(201025, k, data_dir=data_dir) for k in (2, 10, 40)]
