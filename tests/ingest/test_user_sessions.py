"""Imported sessions in the rest of the toolkit: evaluation, mapped teachers, make-compact."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import v4compact
from v4compact import evaluate, import_session
from v4compact.cli import main
from v4compact.data.catalog import expand_neurons
from v4compact.errors import InvalidInputError
from v4compact.ingest import SessionImportWarning


@pytest.fixture
def lab_201025(tmp_path, nwb_201025):
    """201025 exported to NWB and imported as ``newlab:m1`` (its catalogue id used nowhere)."""
    path = nwb_201025
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SessionImportWarning)  # no repeats in the copy
        return import_session(path, "newlab:m1", out=tmp_path / "datasets")


@pytest.fixture
def lab_210325(tmp_path, spike_nwb):
    """210325's counts as spike times in NWB, imported as ``lab:s1``."""
    return import_session(spike_nwb, "lab:s1", area="V4", out=tmp_path / "datasets")


def test_released_models_score_the_same_on_an_imported_copy(lab_201025):
    ids = v4compact.models.zoo.session_neuron_ids(201025)[::15]  # 6 of the 89 neurons
    population = v4compact.load_compact_population(ids)
    on_release = evaluate(population, neuron_ids=ids, num_boot=0, progress=False)
    copy_ids = [f"newlab:m1/{i.split('/')[1]}" for i in ids]
    on_copy = evaluate(population, neuron_ids=copy_ids, num_boot=0, progress=False)
    assert {s.session for s in on_copy.scores} == {"newlab:m1"}
    assert [s.metric for s in on_copy.scores] == ["raw_r2"] * 6
    np.testing.assert_allclose(on_copy.values(), on_release.values(), rtol=0, atol=1e-9)


def test_a_ridge_mapped_model_gets_the_same_r2er_on_an_imported_session(lab_210325):
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.ReLU(),
                                   torch.nn.AvgPool2d(2), torch.nn.Flatten()).eval()
    args = {"mapping": "ridge", "num_boot": 0, "progress": False, "name": "features"}
    release = evaluate(features, sessions=[210325], **args)
    imported = evaluate(features, sessions=["lab:s1"], **args)
    assert [s.metric for s in imported.scores] == ["r2_er"] * 50
    np.testing.assert_allclose(imported.values(), release.values(), rtol=0, atol=1e-9)


def test_neuron_patterns_expand_over_every_dataset(lab_210325):
    assert expand_neurons(["lab:s1/[0-2]", "201025/8?"])[:5] == [
        "lab:s1/0", "lab:s1/1", "lab:s1/2", "201025/80", "201025/81"]
    assert len(expand_neurons("lab:*/*")) == 50
    assert expand_neurons(["mylab:s01/3"]) == ["mylab:s01/3"]  # an id is kept as written
    with pytest.raises(InvalidInputError, match="matches no neuron"):
        expand_neurons(["lab:s9/*"])


def test_make_compact_for_neurons_of_an_imported_session(lab_210325, tmp_path, data_dir,
                                                         capsys):
    """A new lab's neurons: a backbone teacher mapped on the session's fit half, then the
    whole recipe (distil, prune, retrain) on a tiny configuration."""
    out = tmp_path / "run"
    status = main([
        "make-compact", "--teacher", "backbone:compact/201025/10:layer4",
        "--neurons", "lab:s1/[03]", "--images",
        str(data_dir / "data_V4_responses/images/images_210305.zip"), "--out", str(out),
        "--num-filters", "4", "--max-images-per-shard", "40", "--holdout", "8",
        "--passes", "1", "--batch-size", "16", "--workers", "1",
    ])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads((out / "report.json").read_text())
    rows = {row["neuron"]: row for row in report["neurons"]}
    assert list(rows) == ["lab:s1/0", "lab:s1/3"]
    for neuron, row in rows.items():
        assert row["released_filters"] is None and "released_heldout_raw_r2" not in row
        assert np.isfinite(row["teacher_heldout_raw_r2"])
        assert np.isfinite(row["heldout_raw_r2_step2"])
        model = v4compact.load_compact_model(out / row["model_file"])
        assert model.neuron_ids == [neuron]
        assert model.provenance["teacher"].startswith("backbone:compact/201025/10:layer4")


def test_train_ensemble_mixes_user_and_release_sessions(lab_210325, spike_nwb, tmp_path,
                                                        capsys):
    """An imported session as a training session (its fit half) beside a release one, and
    another as the validation session of early stopping."""
    import_session(spike_nwb, "lab:val", out=tmp_path / "datasets")
    out = tmp_path / "run"
    assert main(["train", "ensemble", "--backbone", "compact/211022/27:layer2", "--sessions",
                 "lab:s1", "210305", "--validation", "lab:val", "--members", "2", "--epochs",
                 "1", "--width", "8", "--inner-width", "4", "--num-blocks", "1",
                 "--max-images", "64", "--batch-size", "8", "--quiet", "--threads", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["sessions"] == ["lab:s1", 210305] and run["validation_session"] == "lab:val"
    from v4compact.training.ensemble import training_image_indices

    # the imported session trains on its fit half only
    assert np.array_equal(training_image_indices(lab_210325), np.arange(320))


def test_a_population_holds_made_models_of_user_neurons_beside_released_ones():
    from v4compact.models.engines.population import CompactPopulation
    from v4compact.models.nets.compact import CompactModel

    torch.manual_seed(0)
    made = [CompactModel([4] * 5, neuron_id=n) for n in ("lab:s1/3", "lab:s1/0")]
    released = v4compact.load_compact_model(201025, 10)
    population = CompactPopulation([*made, released])
    assert population.neuron_ids == ["201025/10", "lab:s1/0", "lab:s1/3"]
    images = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    together = population.predict(images)
    for column, model in zip([2, 1], made, strict=True):
        np.testing.assert_allclose(together[:, column], model.predict(images), rtol=1e-4,
                                   atol=1e-5)
