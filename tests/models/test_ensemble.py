"""Ensemble members: the released architecture, a member read from a Keras-written .keras file
equals Keras, the ensemble averages its members, and missing members say how to fetch them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import v4compact
from v4compact.errors import DataNotFoundError, ModelFormatError
from v4compact.models.teachers.ensemble import (
    MEMBER_NUM_PARAMETERS,
    Ensemble,
    EnsembleMember,
    load_ensemble_member,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def ensemble_golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "ensemble_golden.npz") as npz:
        return {name: npz[name] for name in npz.files}


def test_member_has_the_released_architecture():
    member = EnsembleMember(seed=31490)
    assert member.num_parameters == MEMBER_NUM_PARAMETERS == 2_252_248
    stats = sum(b.numel() for n, b in member.named_buffers() if "running" in n)
    assert stats == 5_120
    assert member.initial.bn.eps == 1e-3 and member.initial.bn.momentum == 0.01
    x = torch.randn(2, 1024, 14, 14)
    assert member.embed(x).shape == (2, 512, 7, 7)
    assert member(x).shape == (2, 200)
    small = {"in_channels": 8, "width": 8, "inner_width": 4, "num_outputs": 3}
    first, again = EnsembleMember(**small, seed=31491), EnsembleMember(**small, seed=31491)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def test_member_from_keras_file_equals_keras(ensemble_golden):
    # a member built, randomised, saved and run by Keras (reduced width, same layers)
    member = load_ensemble_member(GOLDEN / "ensemble_member_small.keras")
    assert member.input_shape == (32, 14, 14) and member.num_outputs == 10
    features = ensemble_golden["member_features"]
    for ours, ref in ((member.embeddings(features), ensemble_golden["member_embeddings"]),
                      (member.predict(features), ensemble_golden["member_outputs"])):
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() / ref.std() < 1e-5  # measured 7e-7 and 5e-7


def test_member_file_errors(tmp_path, data_dir):
    with pytest.raises(DataNotFoundError):
        load_ensemble_member(tmp_path / "ensemble_model_member0.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as zf:
        zf.writestr("metadata.json", "{}")
    with pytest.raises(ModelFormatError, match="config.json"):
        load_ensemble_member(tmp_path / "empty.keras")
    compact = data_dir / "data_compact_models/models_keras/compact_model_201025_neuron10.keras"
    with pytest.raises(ModelFormatError, match="not an ensemble member"):
        load_ensemble_member(compact)


def test_missing_members_name_the_fetch_command(data_dir):
    with pytest.raises(DataNotFoundError, match="v4compact data fetch ensemble-members") as err:
        v4compact.load_ensemble()
    assert "\n" not in str(err.value)
    with pytest.raises(DataNotFoundError, match="ensemble-members:3"):
        v4compact.load_model("ensemble/member3")


def test_ensemble_is_the_mean_of_its_members(ensemble_golden):
    member = load_ensemble_member(GOLDEN / "ensemble_member_small.keras")
    other = load_ensemble_member(GOLDEN / "ensemble_member_small.keras")
    with torch.no_grad():
        other.readout.spatial.bias.add_(1.0)
    trunk = nn.Conv2d(3, 32, 8, stride=8)  # any module is a backbone: 112 -> 14
    ensemble = Ensemble(v4compact.load_backbone(trunk), [member, other])
    images = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    out = ensemble.predict(images)
    features = ensemble.backbone.features(images)
    expected = (member.predict(features) + other.predict(features)) / 2
    assert np.allclose(out, expected, atol=1e-5)
    assert ensemble.embeddings(images).shape == (2, 3, 7, 7, 32)
    assert ensemble.neuron_ids[0] == "output0" and ensemble.num_outputs == 10
