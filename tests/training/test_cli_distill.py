"""``v4compact make-compact``, ``distill`` and ``prune`` on a tiny configuration."""

from __future__ import annotations

import json

import numpy as np

import v4compact
from v4compact.cli import main


def test_make_compact_writes_loadable_keras_models_and_a_report(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    status = main([
        "make-compact", "--teacher", "compact/201025/10", "--neurons", "201025/10",
        "--images", str(data_dir / "data_V4_responses/images/images_201025.zip"),
        "--out", str(out), "--num-filters", "4", "--max-images-per-shard", "40",
        "--holdout", "8", "--passes", "1", "--batch-size", "16", "--workers", "1",
    ])
    assert status == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "201025/10" in printed and "z-scored units" in printed
    # the plan comes before the work: 32 training images, 1 pass x batch 16 = 2 steps
    plan = next(line for line in printed.splitlines() if line.startswith("plan:"))
    assert "32 training images (+8 held out of 40)" in plan and "= 2 steps" in plan
    assert "estimated" in plan and printed.index("plan:") < printed.index("teacher ")
    assert "warning: 32 training images, 2 optimizer steps" in captured.err
    assert json.loads((out / "plan.json").read_text())["steps"] == 2
    run = json.loads((out / "run.json").read_text())
    # 201025 is a test session: its held-out half (600 images) is never trained on
    assert run["corpus"]["shards"][0]["excluded_heldout"] == 600
    report = json.loads((out / "report.json").read_text())
    (row,) = report["neurons"]
    assert row["filters_before"] == [4] * 5 and row["released_filters"] == [50, 39, 3, 6, 3]
    assert all(3 <= f <= 4 for f in row["filters_after"])
    assert row["rebuild_error"] < 1e-5
    assert {"teacher_r2_distilled", "teacher_r2_step1", "teacher_r2_step2",
            "heldout_raw_r2_step2", "teacher_heldout_raw_r2",
            "released_heldout_raw_r2"} <= set(row)
    assert row["teacher_heldout_raw_r2"] == row["released_heldout_raw_r2"]  # same model
    model = v4compact.load_compact_model(out / row["model_file"])
    assert model.neuron_ids == ["201025/10"] and model.num_filters == row["filters_after"]
    assert model.provenance["teacher"] == "compact/201025/10"
    assert model.provenance["units"] == "z-scored units"
    responses = model.predict(v4compact.load_session(201025).images[:4])
    assert responses.shape == (4,) and np.isfinite(responses).all()


def test_prune_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    assert main(["prune", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "v4compact distill" in error
    assert len(error.splitlines()) == 1


def test_help_shows_examples(capsys):
    for command in ("distill", "prune", "make-compact"):
        try:
            main([command, "--help"])
        except SystemExit as stop:
            assert stop.code == 0
        assert "examples:" in capsys.readouterr().out


def test_an_unknown_kernel_choice_is_one_line(tmp_path, data_dir, capsys):
    zip_path = data_dir / "data_V4_responses/images/images_210305.zip"
    assert main(["distill", "--teacher", "compact/201025/10", "--neurons", "201025/10",
                 "--images", str(zip_path), "--out", str(tmp_path / "run"),
                 "--kernels", "fast"]) == 1
    err = capsys.readouterr().err.strip()
    assert "kernels 'fast': use 'auto' or POINTWISE/FORMAT" in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_bad_time_budget_is_one_line(tmp_path, data_dir, capsys):
    zip_path = data_dir / "data_V4_responses/images/images_210305.zip"
    assert main(["make-compact", "--teacher", "compact/201025/10", "--neurons", "201025/10",
                 "--images", str(zip_path), "--out", str(tmp_path / "run"),
                 "--minutes", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--minutes must be a positive number, got 0.0" in err and "\n" not in err
    assert not (tmp_path / "run" / "plan.json").exists()
