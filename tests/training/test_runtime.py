"""The training runtime: processes, seeds, checkpoints, metrics log, curves, progress."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from v4compact.errors import CorruptDataError, DataNotFoundError
from v4compact.training.runtime import (
    TORCHRUN_VARIABLES,
    MetricsLog,
    Runtime,
    broadcast_object,
    gather_objects,
    init_runtime,
    load_checkpoint,
    progress,
    read_metrics,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    shard,
    training_curves_figure,
)


def _draws() -> tuple:
    return (random.random(), float(np.random.rand()), float(np.random.randn()),  # noqa: NPY002
            torch.rand(3).tolist())


def test_single_process_without_torchrun(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    runtime = init_runtime("cpu")
    assert (runtime.rank, runtime.world_size, runtime.distributed) == (0, 1, False)
    assert runtime.is_main and runtime.device == torch.device("cpu")
    assert broadcast_object({"a": 1}, runtime) == {"a": 1}
    assert gather_objects(7, runtime) == [7]


def test_shard_round_robin_covers_every_item_once():
    items = list(range(7))
    shares = [shard(items, Runtime(rank=r, world_size=3)) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == items


def test_seed_everything_repeats_every_generator():
    seed_everything(5)
    first = _draws()
    seed_everything(5)
    assert _draws() == first
    seed_everything(6)
    assert _draws() != first


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(11)
    _draws()
    state = rng_state()
    expected = _draws()
    save_checkpoint(tmp_path / "ckpt.pt", {"rng": state})
    seed_everything(99)  # scramble every generator
    set_rng_state(load_checkpoint(tmp_path / "ckpt.pt")["rng"])
    assert _draws() == expected


def test_checkpoint_round_trip_and_atomic_failure(tmp_path):
    path = tmp_path / "run" / "ckpt.pt"
    model = torch.nn.Linear(3, 2)
    save_checkpoint(path, {"model": model.state_dict(), "position": {"epoch": 1}})
    before = path.read_bytes()
    loaded = load_checkpoint(path)
    assert loaded["position"] == {"epoch": 1}
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    # a save that fails half-way (an object torch.save cannot pickle) leaves the old file
    with pytest.raises(Exception):  # noqa: B017 - pickling errors differ across versions
        save_checkpoint(path, {"model": model.state_dict(), "bad": lambda: 0})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="--resume"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptDataError, match="unreadable"):
        load_checkpoint(tmp_path / "bad.pt")


def test_metrics_log_grows_columns_and_truncates_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    log.log(step=1, member=0, train_loss=0.5)
    log.log(step=2, member=0, train_loss=0.25)
    log.log(step=2, validation_score=0.125)  # a new column: header widened
    rows = read_metrics(path)
    assert path.read_text().splitlines()[0] == "step,member,train_loss,validation_score"
    assert rows == [{"step": 1.0, "member": 0.0, "train_loss": 0.5},
                    {"step": 2.0, "member": 0.0, "train_loss": 0.25},
                    {"step": 2.0, "validation_score": 0.125}]
    resumed = MetricsLog(path, keep_rows=2)  # the checkpoint had seen 2 rows
    assert len(resumed) == 2 and len(read_metrics(path)) == 2
    resumed.log(step=3, member=0, train_loss=0.2)
    assert read_metrics(path)[-1]["train_loss"] == 0.2
    quiet = MetricsLog(tmp_path / "other.csv", enabled=False)  # a rank other than 0
    quiet.log(step=1, x=1)
    assert len(quiet) == 1 and not (tmp_path / "other.csv").exists()


def test_training_curves_figure_draws_one_line_per_group(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    for step in range(4):
        for member in range(2):
            log.log(step=step, member=member, train_loss=1.0 / (step + 1 + member))
        log.log(step=step, validation_score=0.1 * step)
    fig = training_curves_figure(tmp_path / "metrics.csv", ["train_loss", "validation_score"],
                                 group="member", title="curves")
    loss_axes, score_axes = fig.axes
    assert len(loss_axes.lines) == 2 and len(score_axes.lines) == 1
    np.testing.assert_allclose(score_axes.lines[0].get_ydata(), [0.0, 0.1, 0.2, 0.3])
    fig.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_progress_is_silent_off_rank_zero():
    assert progress(range(3), Runtime(rank=1, world_size=2)).disable
    assert not progress(range(3), Runtime(), disable=False).disable


_GROUP_SCRIPT = textwrap.dedent("""
    import json, sys
    from v4compact.training.runtime import (broadcast_object, gather_objects, init_runtime,
                                            shard, shutdown_runtime)
    runtime = init_runtime("cpu")
    decision = broadcast_object({"best": runtime.rank + 10}, runtime)
    gathered = gather_objects(shard(list(range(5)), runtime), runtime)
    with open(sys.argv[1] + f"/rank{runtime.rank}.json", "w") as f:
        json.dump({"rank": runtime.rank, "world": runtime.world_size,
                   "backend": runtime.backend, "decision": decision,
                   "gathered": gathered}, f)
    shutdown_runtime(runtime)
""")


def test_torchrun_two_processes_share_decisions(tmp_path):
    script = tmp_path / "group.py"
    script.write_text(_GROUP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                    "--standalone", str(script), str(tmp_path)],
                   check=True, env=env, capture_output=True, timeout=120)
    results = [json.loads(Path(tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank, result in enumerate(results):
        assert (result["rank"], result["world"], result["backend"]) == (rank, 2, "gloo")
        assert result["decision"] == {"best": 10}  # rank 0's value everywhere
        assert result["gathered"] == [[0, 2, 4], [1, 3]]
