"""Kernel choices of the student stack: tuning, parsing, and a run with a chosen one."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from v4compact.errors import InvalidInputError
from v4compact.models.nets.stack import CompactStack
from v4compact.training.distill import DistillConfig, distill
from v4compact.training.kernels import CPU_KERNELS, choices, parse_kernels, tune_kernels


def test_tuning_times_every_choice_on_a_copy():
    stack = CompactStack.students(2, (4, 4, 3, 3, 3))
    before = copy.deepcopy(stack.state_dict())
    best, rows = tune_kernels(stack, batch_size=2, device="cpu", steps=1)
    assert [{k: r[k] for k in ("pointwise", "memory_format")} for r in rows[1:]] == choices()
    assert rows[0]["memory_format"] == "as given"
    assert all(math.isfinite(r["seconds"]) and r["seconds"] > 0 for r in rows)
    fastest = min(rows, key=lambda r: r["seconds"])
    assert best == {"pointwise": fastest["pointwise"], "memory_format": fastest["memory_format"]}
    # the stack itself is untouched: weights, batch statistics and kernels
    for name, value in stack.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert stack.kernels == {"pointwise": "conv", "memory_format": "as given"}


def test_kernel_settings_are_parsed_or_refused():
    assert parse_kernels("auto") is None
    assert parse_kernels("matmul/channels_last") == {"pointwise": "matmul",
                                                     "memory_format": "channels_last"}
    with pytest.raises(InvalidInputError, match="use 'auto' or POINTWISE/FORMAT"):
        parse_kernels("fast")
    with pytest.raises(InvalidInputError, match="kernels 'conv/nhwc'"):
        DistillConfig(kernels="conv/nhwc").check()


def test_a_run_with_chosen_kernels_records_them_and_trains_the_same(tmp_path, data_dir):
    from v4compact.training.corpus import open_corpus
    from v4compact.training.teachers import load_teacher

    corpus = open_corpus(data_dir / "data_V4_responses/images/images_210305.zip",
                         max_images_per_shard=16)
    teacher = load_teacher("compact/201025/10", ["201025/10"])
    config = DistillConfig(num_filters=(3, 4, 3, 3, 3), batch_size=8, holdout_images=4,
                           num_workers=0, eval_every=2)
    runs = {}
    for kernels in ("auto", "matmul/channels_last"):
        stack, stats = distill(teacher, corpus, tmp_path / kernels.replace("/", "-"),
                               DistillConfig(**{**config.to_dict(), "kernels": kernels}),
                               cache_dir=tmp_path / "cache", device="cpu")
        runs[kernels] = stack
        assert stats.kernels["tuning"] == []  # nothing is timed on the CPU
        if kernels == "auto":
            assert {k: stats.kernels[k] for k in CPU_KERNELS} == CPU_KERNELS
    assert stats.kernels["pointwise"] == "matmul"
    assert stats.kernels["memory_format"] == "channels_last"
    for name, value in runs["auto"].state_dict().items():
        torch.testing.assert_close(runs["matmul/channels_last"].state_dict()[name], value,
                                   rtol=1e-4, atol=1e-5, msg=name)
