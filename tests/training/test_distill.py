"""Distillation: smoothing, the training loop, exact resume, and 2 processes = 1 process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import torch

from v4compact.models.arch import READOUT_SIZE
from v4compact.models.nets.stack import CompactStack
from v4compact.training import runtime as rt
from v4compact.training.distill import (
    TIMING_COLUMNS,
    DistillConfig,
    distill,
    load_stack,
    smooth_stack_,
)

TINY = DistillConfig(preset="test", num_filters=(3, 4, 3, 3, 3), batch_size=8, passes=1,
                     holdout_images=8, num_workers=0, eval_every=2)
#: A Gaussian of s.d. 0.5 sampled at -2..2 and normalised: SYSTEM.md §9's taps
#: ~0.0003/0.1065/0.7866/0.1065/0.0003.
TAPS = np.exp(-np.arange(-2, 3) ** 2 / (2 * 0.5**2)) / np.exp(-np.arange(-2, 3) ** 2 / 0.5).sum()


def test_smoothing_follows_upstream_taps_and_leaves_layer0_alone():
    stack = CompactStack.students(2, (3, 3, 3, 3, 3), seeds=[0, 1])
    with torch.no_grad():
        for parameter in stack.parameters():
            parameter.zero_()
        stack.core.layer0.conv.weight[0, 0, 2, 2] = 1.0
        stack.core.layer2.depthwise.weight[4, 0, 2, 2] = 1.0
        readout = stack.readout_weight.view(2, READOUT_SIZE, READOUT_SIZE, 3)
        readout[1, 10, 10, 2] = 1.0
    smooth_stack_(stack, 0.5)
    np.testing.assert_array_equal(TAPS.round(4), [0.0003, 0.1065, 0.7866, 0.1065, 0.0003])
    assert stack.core.layer0.conv.weight.abs().sum() == 1.0  # layer 0 is not smoothed
    np.testing.assert_allclose(stack.core.layer2.depthwise.weight[4, 0].detach().numpy(),
                               np.outer(TAPS, TAPS), atol=2e-6)
    smoothed = stack.readout_weight.detach().view(2, READOUT_SIZE, READOUT_SIZE, 3)[1].numpy()
    np.testing.assert_allclose(smoothed[8:13, 8:13, 2], np.outer(TAPS, TAPS), atol=2e-6)
    assert smoothed[:, :, :2].sum() == 0  # channels are smoothed one by one
    assert stack.readout_weight[0].abs().sum() == 0


def test_a_run_writes_its_log_and_resumes_exactly(tmp_path, corpus, teacher, data_dir):
    cache = tmp_path / "cache"
    whole, _ = distill(teacher, corpus, tmp_path / "whole", TINY, cache_dir=cache,
                       device="cpu")
    run = json.loads((tmp_path / "whole/run.json").read_text())
    assert run["neuron_ids"] == ["201025/10", "201025/40"] and run["units"] == "z-scored units"
    assert run["corpus"]["images"] == 48
    rows = rt.read_metrics(tmp_path / "whole/distill/metrics.csv")
    assert [(r["shard"], r["neuron"]) for r in rows] == [(1, "201025/10"), (1, "201025/40")]
    assert all({"train_mse", "teacher_r2", "heldout_raw_r2"} <= set(r) for r in rows)
    assert (tmp_path / "whole/distill/fidelity.png").stat().st_size > 10_000

    distill(teacher, corpus, tmp_path / "killed", TINY, cache_dir=cache, device="cpu",
            stop_after_shards=1)
    assert not rt.read_metrics(tmp_path / "killed/distill/metrics.csv")
    resumed, _ = distill(teacher, corpus, tmp_path / "killed", TINY, cache_dir=cache,
                         device="cpu", resume=True)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert _untimed(rt.read_metrics(tmp_path / "killed/distill/metrics.csv")) == \
        _untimed(rows)
    assert all(r["student_images"] == 2 * r["images_seen"] and r["wall_seconds"] > 0
               for r in rows)


def _untimed(rows: list[dict]) -> list[dict]:
    """Metrics rows without their wall-clock columns (a resumed run differs only there)."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_two_torchrun_processes_equal_one(tmp_path, data_dir):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from v4compact.training.corpus import open_corpus
        from v4compact.training.distill import DistillConfig, distill
        from v4compact.training.teachers import load_teacher

        config = DistillConfig(num_filters=(3, 4, 3, 3, 3), batch_size=8, holdout_images=4,
                               num_workers=0, eval_every=2)
        corpus = open_corpus("{data_dir}/data_V4_responses/images/images_210305.zip",
                             max_images_per_shard=13)
        teacher = load_teacher("compact/201025/10", ["201025/10"])
        distill(teacher, corpus, sys.argv[1], config, device="cpu")
    """))
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", str(script), str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    assert json.loads((tmp_path / "two/run.json").read_text())["world_size"] == 2
    # 9 training images, global batch 8: steps of 4 + 4 images, then 1 + 0 (rank 1 empty)
    single = rt.load_checkpoint(tmp_path / "one/distill/checkpoint.pt")
    double = rt.load_checkpoint(tmp_path / "two/distill/checkpoint.pt")
    assert single["step"] == double["step"] == 2
    # the gradients (Adam's moments hold them) and the batch statistics are the same
    for moment in ("exp_avg", "exp_avg_sq"):
        pairs = [(state[moment], double["optimizer"]["state"][i][moment])
                 for i, state in single["optimizer"]["state"].items()]
        scale = max(float(one_process.abs().max()) for one_process, _ in pairs)
        for one_process, two_processes in pairs:
            torch.testing.assert_close(two_processes, one_process, rtol=0, atol=1e-4 * scale)
    states = single["stack"]["state_dict"], double["stack"]["state_dict"]
    for name, value in states[0].items():
        if name.endswith("running_var"):
            torch.testing.assert_close(states[1][name], value, rtol=1e-4, atol=0, msg=name)
        elif value.is_floating_point():  # Adam moves a weight by at most ~lr per step
            torch.testing.assert_close(states[1][name], value, rtol=0,
                                       atol=2 * 1e-4 * single["step"], msg=name)
    assert load_stack(double["stack"]).num_models == 1
