"""Released compact and shared models scored on real held-out data, figures and report."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from v4compact.cli import main
from v4compact.data.session import load_session
from v4compact.evaluation import EvaluationResult, evaluate
from v4compact.figures.performance import fig1h, fig3d, snr_distribution
from v4compact.metrics import raw_r2
from v4compact.models.zoo import load_model
from v4compact.report import build_report

# the cheapest compact model of 190923 (fewest multiply-adds), and one of 211022 (no images)
COMPACT = ["compact/190923/24", "compact/211022/27"]
SHARED = ["shared/from_ensemble_model/5", "shared/from_vgg19/5"]


@pytest.fixture(scope="module")
def compact_result(data_dir):
    return evaluate(COMPACT, data_dir=data_dir, num_boot=100, progress=False)


@pytest.fixture(scope="module")
def shared_result(data_dir):
    return evaluate(SHARED, sessions=[190923], data_dir=data_dir, num_boot=100, progress=False)


@pytest.mark.slow
def test_compact_model_scored_on_held_out_half(compact_result, data_dir):
    scored = compact_result.scored
    assert [(s.session, s.neuron, s.model) for s in scored] == [(190923, 24, COMPACT[0])]
    row = scored[0]
    assert row.metric == "raw_r2" and row.num_images == 600 and row.mapping == "direct"
    session = load_session(190923, data_dir=data_dir)
    _, held = session.heldout_split()
    prediction = load_model(COMPACT[0], data_dir=data_dir).predict(session.images[held])
    assert row.value == pytest.approx(raw_r2(session.responses[24, held], prediction), abs=1e-6)
    assert row.ci_low < row.value < row.ci_high
    assert row.value > 0.2  # a compact model predicts its neuron well above chance
    assert compact_result.skipped[0][:2] == (211022, "compact")


@pytest.mark.slow
def test_shared_models_score_every_neuron_of_the_session(shared_result):
    assert shared_result.models == SHARED
    for model in SHARED:
        values = shared_result.values(model=model)
        assert values.shape == (33,) and np.all(np.isfinite(values))
        assert np.median(values) > 0.1
    summary = shared_result.summary()
    assert [(r["model"], r["metric"], r["num_neurons"]) for r in summary] == [
        (SHARED[0], "raw_r2", 33), (SHARED[1], "raw_r2", 33)]


@pytest.mark.slow
def test_figures_return_figures(compact_result, shared_result, data_dir, tmp_path):
    fig = fig1h(compact_result)
    assert isinstance(fig, Figure)
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "Ensemble-model values not available" in texts
    assert "raw R²" in fig.axes[0].get_ylabel()
    fig3 = fig3d(shared_result)
    assert isinstance(fig3, Figure)
    labels = [t.get_text() for t in fig3.axes[0].get_legend().get_texts()]
    assert labels == ["from_ensemble_model", "from_vgg19"]
    snr_fig = snr_distribution(data_dir=data_dir)
    assert isinstance(snr_fig, Figure) and len(snr_fig.axes) == 2  # 201016 and 210325
    assert "190923" in " ".join(t.get_text() for t in snr_fig.texts)
    for f in (fig, fig3, snr_fig):
        f.savefig(tmp_path / "check.png")
    # with ensemble values (here: the same results standing in), a scatter panel appears
    paired = fig1h(compact_result, ensemble=compact_result)
    assert len(paired.axes) == 2 and "(1 neurons)" in paired.axes[1].get_title()
    assert not any("not available" in t.get_text() for t in paired.texts)


@pytest.mark.slow
def test_report_and_figure_cli_reuse_results(compact_result, shared_result, data_dir,
                                             tmp_path):
    compact_csv = compact_result.to_csv(tmp_path / "in" / "compact.csv")
    shared_csv = shared_result.to_csv(tmp_path / "in" / "shared.csv")
    page = build_report(tmp_path / "report", data_dir=data_dir, compact=compact_result,
                        shared=shared_csv, progress=False)
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert "raw R² vs repeat-averaged responses" in text
    assert "images_211022.zip" in text and "MISSING" in text
    assert "0 of 25 present" in text
    assert EvaluationResult.from_csv(tmp_path / "report" / "shared.csv").models == SHARED
    code = main(["figure", "fig3d", "--results", str(shared_csv), "--out",
                 str(tmp_path / "fig3d.png"), "--data-dir", str(data_dir)])
    assert code == 0 and (tmp_path / "fig3d.png").stat().st_size > 10_000
    # several CSVs (e.g. one per teacher) are merged
    parts = []
    for k, model in enumerate(SHARED):
        rows = [s for s in shared_result.scores if s.model == model]
        parts.append(str(EvaluationResult(scores=rows).to_csv(tmp_path / f"part{k}.csv")))
    code = main(["report", "--out", str(tmp_path / "cli_report"), "--compact-results",
                 str(compact_csv), "--shared-results", *parts, "--quiet",
                 "--data-dir", str(data_dir)])
    assert code == 0 and (tmp_path / "cli_report" / "index.html").is_file()
    merged = EvaluationResult.from_csv(tmp_path / "cli_report" / "shared.csv")
    assert merged.models == SHARED and len(merged) == len(shared_result)
    code = main(["figure", "fig3d", "--results", *parts, "--out", str(tmp_path / "f.svg"),
                 "--data-dir", str(data_dir)])
    assert code == 0 and (tmp_path / "f.svg").is_file()


def test_figure_cli_snr_and_missing_results(tmp_path, data_dir, capsys):
    assert main(["figure", "snr", "--out", str(tmp_path / "snr.png"),
                 "--data-dir", str(data_dir)]) == 0
    assert (tmp_path / "snr.png").is_file()
    code = main(["figure", "fig1h", "--results", str(tmp_path / "nope.csv"),
                 "--out", str(tmp_path / "x.png"), "--data-dir", str(data_dir)])
    assert code == 1 and "nope.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_model_instance_scores_like_its_id(compact_result, data_dir):
    model = load_model(COMPACT[0], data_dir=data_dir)
    result = evaluate(model, data_dir=data_dir, num_boot=100, progress=False)
    assert result.models == [COMPACT[0]]
    assert result.scores[0].value == pytest.approx(compact_result.scored[0].value, abs=1e-9)
    assert result.scores[0].ci_low == pytest.approx(compact_result.scored[0].ci_low, abs=1e-9)
