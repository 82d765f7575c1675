"""Scoring a user's own model (torch module and ONNX export) end to end, Python and CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from v4compact.cli import main
from v4compact.errors import InvalidInputError
from v4compact.evaluation import CSV_COLUMNS, EvaluationResult, evaluate


@pytest.fixture(scope="module")
def tiny_result(tiny_model, data_dir):
    return evaluate(tiny_model, sessions=[190923, 210325, 211022], data_dir=data_dir,
                    num_boot=100, progress=False)


def test_ridge_mapped_user_model_is_scored_per_session(tiny_result):
    by_session = {}
    for row in tiny_result.scores:
        by_session.setdefault(row.session, []).append(row)
    assert [len(by_session[s]) for s in (190923, 210325, 211022)] == [33, 50, 42]
    # the metric follows the data: no single-repeat responses for 190923, but for 210325
    assert {r.metric for r in by_session[190923]} == {"raw_r2"}
    assert {r.metric for r in by_session[210325]} == {"r2_er"}
    for row in by_session[190923] + by_session[210325]:
        assert row.mapping == "ridge" and row.split == "heldout"
        assert np.isfinite(row.value)
    assert by_session[190923][0].num_images == 600 and by_session[210325][0].num_images == 320
    # a random conv layer explains some of V4's variance on held-out images
    assert np.median(tiny_result.values(session=190923)) > 0.02
    inside = [r.ci_low <= r.value <= r.ci_high for r in tiny_result.scored]
    assert np.mean(inside) > 0.9


def test_session_without_images_is_skipped_with_reason(tiny_result):
    skipped = tiny_result.skipped
    assert [s[0] for s in skipped] == [211022]
    assert "images_211022.zip" in skipped[0][2] and "fetch" in skipped[0][2]
    assert "211022" in tiny_result.format_summary().split("skipped")[0].splitlines()[-1]
    assert any("images_211022.zip" in m for m in tiny_result.provenance["missing"])


def test_onnx_export_scores_like_the_module(tiny_model, tiny_onnx, tiny_result, data_dir):
    result = evaluate(tiny_onnx, sessions=[190923, 210325, 211022], data_dir=data_dir,
                      num_boot=100, progress=False)
    assert result.models == ["tiny_features"]
    a = {(r.session, r.neuron): r.value for r in tiny_result.scored}
    b = {(r.session, r.neuron): r.value for r in result.scored}
    assert a.keys() == b.keys()
    assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=1e-4)


def test_direct_mapping_uses_columns_as_neurons(data_dir):
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 14 * 14, 33))
    result = evaluate(head, sessions=190923, data_dir=data_dir, num_boot=0, progress=False,
                      name="linear33")
    assert {r.mapping for r in result.scores} == {"direct"}
    assert len(result) == 33 and np.isnan(result.scores[0].ci_low)
    ids = [f"190923/{k}" for k in range(33)]
    again = evaluate(head, data_dir=data_dir, num_boot=0, progress=False, neuron_ids=ids)
    assert np.allclose(again.values(), result.values())
    with pytest.raises(InvalidInputError, match="ridge"):
        evaluate(head, sessions=201025, mapping="direct", data_dir=data_dir, progress=False)


def test_bad_requests_give_one_line_errors(tiny_model, data_dir):
    with pytest.raises(InvalidInputError, match="heldout"):
        evaluate(tiny_model, sessions=190923, split="fit", data_dir=data_dir, progress=False)
    with pytest.raises(InvalidInputError, match="metric"):
        evaluate(tiny_model, metric="r3", data_dir=data_dir)
    with pytest.raises(InvalidInputError, match="torch.nn.Module"):
        evaluate(3.5, data_dir=data_dir)
    result = evaluate(tiny_model, sessions=190923, metric="r2_er", data_dir=data_dir,
                      progress=False)
    assert {r.metric for r in result.scores} == {"skipped"}
    assert "single-repeat" in result.skipped[0][2]


def test_cli_scores_onnx_file_and_writes_tidy_csv(tiny_onnx, data_dir, tmp_path, capsys):
    out = tmp_path / "results.csv"
    code = main(["evaluate", str(tiny_onnx), "--sessions", "190923", "211022",
                 "--num-boot", "50", "--out", str(out), "--quiet", "--data-dir", str(data_dir)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "median" in printed and "raw_r2" in printed and "skipped" in printed
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 33 + 42
    assert {r["metric"] for r in rows} == {"raw_r2", "skipped"}
    back = EvaluationResult.from_csv(out)
    assert len(back.scored) == 33 and back.skipped[0][0] == 211022


def test_cli_reports_bad_input_as_one_line(tmp_path, capsys, data_dir):
    code = main(["evaluate", str(tmp_path / "missing.onnx"), "--data-dir", str(data_dir)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.onnx" in err and "\n" not in err


def test_split_half_metric_and_model_instance(tiny_model, data_dir):
    result = evaluate(tiny_model, sessions=210325, metric="split_half_r2", num_boot=0,
                      data_dir=data_dir, progress=False)
    assert {r.metric for r in result.scores} == {"split_half_r2"} and len(result) == 50
    auto = evaluate(tiny_model, sessions=210325, num_boot=0, data_dir=data_dir,
                    progress=False)
    # same ridge predictions, two noise corrections: they agree closely on 8-10 repeats
    assert abs(np.median(result.values()) - np.median(auto.values())) < 0.05
