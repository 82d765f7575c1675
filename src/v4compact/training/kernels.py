"""The fastest way to run a student stack's training step on this device, measured.

A :class:`~v4compact.models.nets.stack.CompactStack` computes the same function with either
grouped convolutions or one batched matrix product for its pointwise layers, in contiguous
or channels-last memory (:meth:`~v4compact.models.nets.stack.CompactStack.set_kernels`). Which
is faster depends on the device, its library versions and the stack's shape (on an H200
the stacked students ran at 0.3% of the chip's bfloat16 rate with the defaults), so a
training run on CUDA times one step of every choice on a copy of its stack, with its own
batch size and precision, and keeps the fastest (:func:`tune_kernels`): seconds for a few
students, about a minute for 219 (each choice's first step includes cuDNN's algorithm
search, ~15 s at 21,900 channels on an H200), against hours of training. cuDNN's own
algorithm search (``cudnn.benchmark``) is switched on in the training process (a
process-wide setting, left on): the shapes never change within a run.

On the CPU nothing is timed (a step there is seconds long): ``"auto"`` means
:data:`CPU_KERNELS`, grouped convolutions in channels-last memory, which
``benchmarks/bench_student_step.py`` measured 1.4-2x faster than the default for 1 to
32 students of 100 filters on the project's 2-core machine (docs/distillation.md).
"""

from __future__ import annotations

import copy
import itertools
import time

import torch

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE
from ..models.arch import IN_CHANNELS
from ..models.nets.stack import KERNEL_CHOICES, CompactStack

__all__ = ["CPU_KERNELS", "DEFAULT_KERNELS", "apply_kernels", "choices", "parse_kernels",
           "time_step", "tune_kernels"]

#: What a stack runs with unless told otherwise.
DEFAULT_KERNELS = {"pointwise": "conv", "memory_format": "as given"}
#: What training on the CPU runs with for ``kernels="auto"`` (measured, see above).
CPU_KERNELS = {"pointwise": "conv", "memory_format": "channels_last"}


def choices() -> list[dict[str, str]]:
    """Every :meth:`~v4compact.models.nets.stack.CompactStack.set_kernels` combination."""
    return [{"pointwise": p, "memory_format": f} for f, p in
            itertools.product(KERNEL_CHOICES["memory_format"], KERNEL_CHOICES["pointwise"])]


def apply_kernels(stack: CompactStack, choice: dict[str, str]) -> CompactStack:
    """``stack.set_kernels`` from a choice dict (``memory_format`` ``"as given"``: inputs are
    not converted, parameters stay as they are); returns ``stack``."""
    fmt = choice["memory_format"]
    return stack.set_kernels(choice["pointwise"], None if fmt == "as given" else fmt)


def parse_kernels(text: str) -> dict[str, str] | None:
    """``"auto"`` -> ``None`` (tune on CUDA); ``"matmul/channels_last"`` -> the choice.

    Raises:
        InvalidInputError: anything else, naming the accepted values.
    """
    if text == "auto":
        return None
    pointwise, _, memory_format = text.partition("/")
    if pointwise not in KERNEL_CHOICES["pointwise"] \
            or memory_format not in KERNEL_CHOICES["memory_format"]:
        raise InvalidInputError(
            f"kernels {text!r}: use 'auto' or POINTWISE/FORMAT with POINTWISE one of "
            f"{', '.join(KERNEL_CHOICES['pointwise'])} and FORMAT one of "
            f"{', '.join(KERNEL_CHOICES['memory_format'])}")
    return {"pointwise": pointwise, "memory_format": memory_format}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(stack: CompactStack, batch_size: int, device: torch.device,
              mixed_precision: bool = False, steps: int = 3, warmup: int = 1,
              optimizer: torch.optim.Optimizer | None = None) -> float:
    """Seconds per training step of ``stack`` (forward, summed MSE, backward and, when an
    optimizer is given, its step) on random re-centred images, best of ``steps`` after
    ``warmup`` untimed ones. The stack is changed (batch statistics, gradients, and
    weights if an optimizer steps): time a copy."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand((batch_size, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE), generator=gen,
                   device=device) * 255 - 110
    y = torch.randn((batch_size, stack.num_models), generator=gen, device=device)
    stack.train()
    best = float("inf")
    for index in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=mixed_precision and device.type == "cuda"):
            out = stack(x)
        loss = (out.float() - y).pow(2).sum() / batch_size
        stack.zero_grad(set_to_none=False)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        _sync(device)
        if index >= warmup:
            best = min(best, time.perf_counter() - start)
    return best


def tune_kernels(stack: CompactStack, batch_size: int, device: torch.device | str,
                 mixed_precision: bool = False, steps: int = 2) -> tuple[dict, list[dict]]:
    """Time one training step of every kernel choice on a copy of ``stack``.

    Args:
        stack: the students (not changed).
        batch_size: images per step on this process.
        device: where the training runs.
        mixed_precision: time under bfloat16 autocast (as the training will run).
        steps: timed steps per choice (after one warm-up step).

    Returns:
        ``(best, rows)``: the fastest choice (a ``set_kernels`` keyword dict) and one row per
        choice with its ``seconds`` per step; ``memory_format`` ``"as given"`` is the default.
    """
    device = torch.device(device)
    rows = []
    for choice in [dict(DEFAULT_KERNELS), *choices()]:
        trial = apply_kernels(copy.deepcopy(stack).to(device), choice)
        try:
            seconds = time_step(trial, batch_size, device, mixed_precision, steps)
        except torch.OutOfMemoryError:
            seconds = float("inf")
        rows.append({**choice, "seconds": seconds})
        del trial
        if device.type == "cuda":
            torch.cuda.empty_cache()
    best = min(rows, key=lambda r: r["seconds"])
    return {"pointwise": best["pointwise"], "memory_format": best["memory_format"]}, rows
