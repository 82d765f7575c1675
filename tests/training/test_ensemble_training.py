"""Training ensemble members: the upstream recipe's pieces, resume after a kill, torchrun.

The runs use a tiny configuration on real sessions: a compact model's core as backbone
(3 channels), 2 members of width 8, a few dozen images per session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from v4compact.data.session import load_session
from v4compact.mapping.ridge import RidgeMapping
from v4compact.training.ensemble import (
    PRESETS,
    EnsembleTrainingConfig,
    _Member,
    load_trained_ensemble,
    training_image_indices,
    zscore_responses,
)
from v4compact.training.ensemble_config import VALIDATION_FOLDS
from v4compact.training.ensemble_data import SessionData, fold_ids, out_of_fold_predictions
from v4compact.training.runtime import TORCHRUN_VARIABLES, load_checkpoint, read_metrics

TINY = ["--backbone", "compact/211022/27:layer2", "--sessions", "190925", "210305",
        "--members", "2", "--epochs", "2", "--width", "8", "--inner-width", "4",
        "--num-blocks", "1", "--max-images", "96", "--batch-size", "8", "--quiet"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"  # the same arithmetic in every process
    return env


def _train_command(out: Path, cache: Path, *extra: str) -> list[str]:
    return ["-m", "v4compact", "train", "ensemble", *TINY, "--threads", "1",
            "--cache-dir", str(cache), "--out", str(out), *extra]


def _members(run: Path) -> list[dict]:
    return [load_checkpoint(run / "members" / f"member{k}.pt")["state_dict"] for k in range(2)]


def _final(run: Path) -> list[dict]:
    latest = load_checkpoint(run / "checkpoint" / "latest.pt")
    folder = run / "checkpoint" / latest["folder"]
    return [load_checkpoint(folder / f"member{k}.pt") for k in range(2)]


def _assert_same_weights(a: list[dict], b: list[dict]) -> None:
    for first, second in zip(a, b, strict=True):
        flat_a = dict(_flatten(first))
        flat_b = dict(_flatten(second))
        assert flat_a.keys() == flat_b.keys()
        for name, value in flat_a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, flat_b[name]), name
            else:
                assert value == flat_b[name], name


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif isinstance(tree, list | tuple):
        for index, value in enumerate(tree):
            yield from _flatten(value, f"{prefix}{index}.")
    else:
        yield prefix, tree


def _rows_without_timing(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"}
            for row in read_metrics(run / "metrics.csv")]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny networks on a shared 2-core machine run many times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted tiny run, launched as one torchrun process."""
    root = tmp_path_factory.mktemp("ensemble")
    run = root / "reference"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=1", *_train_command(run, root / "cache")],
                   check=True, env=_env(), capture_output=True, timeout=600)
    return run


def test_we_sessions_skip_the_synthesized_images():
    we = load_session(190925)
    indices = training_image_indices(we)
    assert len(indices) == 900 and indices[599] == 599 and indices[600] == 900
    pe = load_session(210305)
    assert np.array_equal(training_image_indices(pe), np.arange(pe.num_images))


def test_zscore_per_neuron_ddof0_and_constant_neurons():
    responses = np.array([[1.0, 2.0, 3.0, 6.0], [4.0, 4.0, 4.0, 4.0]])
    z = zscore_responses(responses)
    assert z.shape == (4, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z[:, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[:, 0].std(), 1.0, rtol=1e-6)  # ddof 0
    assert np.all(z[:, 1] == 0.0)


def test_validation_ridge_equals_scikit_learn_ridge():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(96, 3, 3, 20)).astype(np.float32)
    responses = embeddings.reshape(96, -1)[:, :5] @ rng.normal(size=(5, 4)) \
        + rng.normal(size=(96, 4))
    folds = fold_ids(96)
    assert np.array_equal(np.bincount(folds), np.full(VALIDATION_FOLDS, 12))
    expected = np.empty_like(responses)
    for fold in range(VALIDATION_FOLDS):
        held = folds == fold
        ridge = RidgeMapping(penalty="heuristic").fit(embeddings[~held], responses[~held])
        expected[held] = ridge.predict(embeddings[held])
    np.testing.assert_allclose(out_of_fold_predictions(embeddings, responses), expected,
                               rtol=1e-9, atol=1e-9)


def _tiny_member(preset: str, neurons: dict[int, int]) -> _Member:
    config = EnsembleTrainingConfig(preset=preset, width=8, inner_width=4, num_blocks=1,
                                    batch_size=8)
    architecture = {"in_channels": 3, "input_size": 14, "width": 8, "inner_width": 4,
                    "num_blocks": 1}
    return _Member(0, config, architecture, neurons, "cpu")


def test_upstream_readout_reset_and_padded_outputs_stay_zero():
    member = _tiny_member("upstream", {1: 5})
    mixing0, spatial0 = (w.clone() for w in member.initial_readout)
    readout = member.model.readout
    with torch.no_grad():  # as if trained on an earlier session
        readout.mixing.weight.add_(1.0)
        readout.spatial.bias.add_(1.0)
    member.reset_readout(5, epoch=0, position=0)
    for layer, initial in ((readout.mixing, mixing0), (readout.spatial, spatial0)):
        assert torch.all(layer.weight[5:] == 0) and torch.all(layer.bias == 0)
        kept = (layer.weight[:5] / 0.001).flatten()
        # the first 5 outputs hold values drawn from the permuted initial weights
        assert torch.isin(kept, initial.flatten()).float().mean() > 0.99
        assert not torch.equal(layer.weight[:5] / 0.001, initial[:5])
    rng = np.random.default_rng(1)
    data = SessionData(1, rng.normal(size=(16, 14, 14, 3)).astype(np.float32),
                        rng.normal(size=(16, 5)).astype(np.float32), None, None)
    member.new_optimizer(PRESETS["upstream"].learning_rate)
    features = torch.from_numpy(data.features).permute(0, 3, 1, 2)
    targets = torch.from_numpy(data.targets)
    # the loss is Keras' MSE over the 200 padded outputs (zero targets beyond the 5 neurons)
    padded = torch.cat([targets, torch.zeros(16, 195)], dim=1)
    member.model.train()
    expected = ((member.model(features) - padded) ** 2).mean()
    objective, mse = member.loss(features, targets, 1)
    torch.testing.assert_close(objective, expected)
    torch.testing.assert_close(mse, expected * 200 / 5)  # per neuron
    before = [readout.mixing.weight[5:].clone(), readout.spatial.weight[5:].clone()]
    member.train_session(data, passes=2, epoch=0, position=0, lr_at=lambda step: 2.0, step=0,
                         device="cpu")
    assert torch.equal(readout.mixing.weight[5:], before[0])
    assert torch.equal(readout.spatial.weight[5:], before[1])
    assert not torch.equal(readout.mixing.weight[:5], mixing0[:5] * 0.001)  # it trained


def test_training_lowers_the_loss_on_a_real_session():
    session = load_session(210305)
    rng = np.random.default_rng(0)
    indices = np.arange(64)
    features = rng.normal(size=(64, 14, 14, 3)).astype(np.float32)
    # features that carry the responses: a learnable session
    targets = zscore_responses(session.responses[:8, indices])
    features[:, 5:9, 5:9, :] += targets[:, :3][:, None, None, :]
    data = SessionData(210305, features, targets, None, None)
    for preset in PRESETS:
        member = _tiny_member(preset, {210305: 8})
        lr = 1e-2 if preset == "modern" else 0.5
        member.new_optimizer(lr)
        _, first = member.train_session(data, 1, 0, 0, lambda step, lr=lr: lr, 0, "cpu")
        _, later = member.train_session(data, 12, 0, 1, lambda step, lr=lr: lr, 8, "cpu")
        assert later < 0.8 * first, preset


def test_run_folder_metrics_curves_and_loading(reference_run):
    run = json.loads((reference_run / "run.json").read_text())
    assert run["status"] == "finished" and run["validation_metric"] == "raw_r2"
    assert run["config"]["seed"] == 31490 and run["config"]["preset"] == "upstream"
    rows = read_metrics(reference_run / "metrics.csv")
    train = [r for r in rows if r["kind"] == "train"]
    validation = [r for r in rows if r["kind"] == "validation"]
    assert len(train) == 2 * 2 * 2 and len(validation) == 4  # members x epochs x sessions
    # upstream's pass schedule: 1 pass in epoch 0, 2 in epoch 1; 96 images / 8 per batch
    assert [r["passes"] for r in train] == [1.0] * 4 + [2.0] * 4
    assert validation[-1]["step"] == 2 * 12 + 2 * 2 * 12
    assert {r["lr"] for r in train} == {2.0, 2.0 * 0.85}
    best = max(r["validation_score"] for r in validation)
    assert run["best_validation_score"] == pytest.approx(best)
    assert (reference_run / "curves.png").stat().st_size > 0
    ensemble = load_trained_ensemble(reference_run)
    assert len(ensemble.members) == 2 and ensemble.model_id == "run:reference"
    images = np.asarray(load_session(210305).images[:4])
    embeddings = ensemble.embeddings(images)
    assert embeddings.shape == (2, 4, 7, 7, 8) and np.all(np.isfinite(embeddings))


def test_a_damaged_member_file_is_one_clear_error(reference_run, tmp_path):
    import shutil

    from v4compact.errors import CorruptDataError

    run = tmp_path / "damaged"
    shutil.copytree(reference_run, run)
    member = run / "members" / "member1.pt"
    member.write_bytes(member.read_bytes()[:100])  # cut short, as by a full disk
    with pytest.raises(CorruptDataError, match=r"member file .*member1\.pt is unreadable "
                                               r"\(\w+\); train the run again$"):
        load_trained_ensemble(run)


def test_resume_after_a_kill_gives_the_same_members(reference_run, tmp_path):
    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, *_train_command(run, reference_run.parent /
                                                                "cache")],
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run / "checkpoint" / "latest.pt"
    deadline = time.monotonic() + 300
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)  # the first session is checkpointed: kill the second
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(latest)["visit"]
    assert killed_at < 3  # not finished: 4 session visits in all
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    resumed = subprocess.run([sys.executable, *_train_command(run, reference_run.parent /
                                                              "cache", "--resume")],
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_weights(_members(run), _members(reference_run))
    _assert_same_weights(_final(run), _final(reference_run))
    assert _rows_without_timing(run) == _rows_without_timing(reference_run)


def test_torchrun_two_processes_train_the_same_members(reference_run, tmp_path):
    run = tmp_path / "two"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node=2", *_train_command(run, reference_run.parent / "cache")],
                   check=True, env=_env(), capture_output=True, timeout=600)
    _assert_same_weights(_members(run), _members(reference_run))
    _assert_same_weights(_final(run), _final(reference_run))
    assert _rows_without_timing(run) == _rows_without_timing(reference_run)


def test_resume_refuses_other_settings(reference_run):
    from v4compact.cli import main

    code = main(["train", "ensemble", *TINY[:-1], "--epochs", "3", "--out", str(reference_run),
                 "--resume"])
    assert code == 1


def test_evaluate_scores_a_run_folder(reference_run, tmp_path, monkeypatch, capsys):
    from v4compact.cli import main
    from v4compact.evaluation import EvaluationResult

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the feature cache
    out = tmp_path / "scores.csv"
    assert main(["evaluate", str(reference_run), "--sessions", "210325", "--num-boot", "0",
                 "--quiet", "--out", str(out)]) == 0
    result = EvaluationResult.from_csv(out)
    scores = [s for s in result.scores if s.session == 210325]
    assert len(scores) == 50  # every neuron of the session, mapped by ridge per member
    assert {s.metric for s in scores} == {"r2_er"} and {s.mapping for s in scores} == {"ridge"}
    assert {s.model for s in scores} == {"run:reference"}
    assert all(np.isfinite(s.value) for s in scores)
    assert "210325" in capsys.readouterr().out
    assert list((tmp_path / "cache" / "v4compact" / "features").glob("*/session210325.npy"))


def test_fig1b_and_fig1h_with_a_trained_run(reference_run, tmp_path, monkeypatch):
    from matplotlib.image import imread

    from v4compact.cli import main
    from v4compact.evaluation import backbone_predictor, evaluate
    from v4compact.figures.ensemble import fig1b
    from v4compact.models.teachers.backbones import load_backbone

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = "compact/211022/27:layer2"
    out = tmp_path / "fig1b.png"
    assert main(["figure", "fig1b", "--backbone", spec, "--ensemble", str(reference_run),
                 "--sessions", "210225", "--num-boot", "0", "--out", str(out)]) == 0
    assert imread(out).shape[0] > 300
    # the function behind it names the backbone, the run and the metric on its face
    backbone = evaluate(backbone_predictor(load_backbone(spec, pool_to=7), name="b"),
                        sessions=[210225], num_boot=0, progress=False)
    ensemble = evaluate(str(reference_run), sessions=[210225], num_boot=0, progress=False)
    fig = fig1b(backbone, ensemble, f"{spec}, pooled to 7x7", "trained run 'reference'")
    ax = fig.axes[0]
    assert spec in ax.get_xlabel() and "trained run 'reference'" in ax.get_ylabel()
    assert "raw R²" in ax.get_xlabel()
    assert len(ax.collections[0].get_offsets()) == 55  # every neuron of 210225
    # fig1h: compact models against the trained run, saying the released members are absent
    compact = tmp_path / "compact.csv"
    evaluate("compact/210225/5", sessions=[210225], num_boot=0, progress=False).to_csv(compact)
    out = tmp_path / "fig1h.png"
    assert main(["figure", "fig1h", "--results", str(compact), "--ensemble",
                 str(reference_run), "--num-boot", "0", "--out", str(out)]) == 0
    assert imread(out).shape[1] > 800


def test_figure_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from v4compact.cli import main

    code = main(["figure", "fig1b", "--ensemble", str(tmp_path), "--out",
                 str(tmp_path / "x.png")])
    assert code == 1 and "not a training run folder" in capsys.readouterr().err


def test_evaluate_the_released_ensemble_says_how_to_fetch_it(capsys):
    from v4compact.cli import main

    assert main(["evaluate", "ensemble", "--sessions", "201025", "--num-boot", "0",
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "ensemble_model_member0.keras" in err and "v4compact data fetch" in err


def test_cli_restates_the_library_presets_and_defaults():
    from v4compact.cli import train
    from v4compact.training.ensemble import DEFAULT_BACKBONE, VALIDATION_SESSION

    assert train.PRESET_NAMES == tuple(PRESETS)
    assert train.DEFAULT_BACKBONE_TEXT == DEFAULT_BACKBONE == EnsembleTrainingConfig().backbone
    assert int(train.DEFAULT_VALIDATION_TEXT) == VALIDATION_SESSION
