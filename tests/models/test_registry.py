"""The release-model loaders and what the zoo lists of them (see also test_zoo.py)."""

from __future__ import annotations

import pytest

import v4compact
from v4compact.data.catalog import MODEL_SESSIONS, session_info
from v4compact.errors import (
    DataNotFoundError,
    InvalidInputError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
)
from v4compact.models.formats.loaders import load_compact_model, load_shared_model
from v4compact.models.nets.compact import CompactModel
from v4compact.models.nets.shared import SharedCompactModel
from v4compact.models.zoo import (
    NUM_ENSEMBLE_MEMBERS,
    SHARED_NUM_FILTERS,
    SHARED_TEACHERS,
    list_models,
    load_model,
    model_neuron_ids,
)


def test_list_models_lists_every_known_model_without_data():
    ids = list_models()
    compact = [i for i in ids if i.startswith("compact/")]
    shared = [i for i in ids if i.startswith("shared/")]
    assert len(compact) == 219 and len(shared) == 56
    assert compact[0] == "compact/190923/0" and compact[-1] == "compact/211022/41"
    assert ids[275:277] == ["population", "ensemble"]
    assert ids[277:] == [f"ensemble/member{k}" for k in range(NUM_ENSEMBLE_MEMBERS)]
    assert len(set(ids)) == len(ids) == 275 + 1 + 1 + NUM_ENSEMBLE_MEMBERS


def test_list_models_present_only(data_dir, tmp_path):
    present = list_models(data_dir=data_dir, present_only=True)
    assert present == list_models()[:276]  # the data copy has every model but the ensemble
    assert list_models(data_dir=tmp_path, present_only=True) == []
    assert list_models(data_dir=tmp_path) == list_models()


def test_list_models_pattern(data_dir):
    assert len(list_models("compact/201025/*", data_dir=data_dir)) == 89
    assert list_models("shared/*/200", data_dir=data_dir) == [
        f"shared/{t}/200" for t in SHARED_TEACHERS]
    assert list_models("nothing*", data_dir=data_dir) == []


def test_model_neuron_ids_follow_the_catalogue():
    ids = model_neuron_ids()
    assert len(ids) == sum(session_info(s).num_neurons for s in MODEL_SESSIONS) == 219
    assert ids[:2] == ["190923/0", "190923/1"] and ids[33] == "201025/0"


def test_load_model_by_id():
    model = load_model("compact/201025/10")
    assert isinstance(model, CompactModel)
    assert model.model_id == "compact/201025/10" and model.neuron_ids == ["201025/10"]
    assert model.num_filters == [50, 39, 3, 6, 3]  # SYSTEM.md §4 example
    assert not model.training
    shared = load_model("shared/linear_from_ensemble_model/5")
    assert isinstance(shared, SharedCompactModel)
    assert shared.num_filters == [5, 5, 5, 100, 100] and not shared.relu
    assert shared.neuron_ids == model_neuron_ids() and shared.num_outputs == 219


def test_public_api_names():
    assert v4compact.load_compact_model is load_compact_model
    assert v4compact.load_shared_model is load_shared_model
    assert v4compact.list_models is list_models


def test_loaders_accept_strings():
    model = load_compact_model("210225", "5")
    assert model.model_id == "compact/210225/5"
    assert load_shared_model("from_vgg19", "10").model_id == "shared/from_vgg19/10"


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: load_compact_model(190923, 33), UnknownNeuronError, "0-32"),
        (lambda: load_compact_model(201025, -1), UnknownNeuronError, "89 neurons"),
        (lambda: load_compact_model(210224, 0), UnknownSessionError, "190923"),
        (lambda: load_compact_model(190923, 0, format="onnx"), InvalidInputError, "keras"),
        (lambda: load_shared_model("from_alexnet", 5), UnknownModelError, "from_vgg19"),
        (lambda: load_shared_model("from_vgg19", 7), UnknownModelError, "200"),
        (lambda: load_model("compact/201025"), UnknownModelError, "compact/<session>"),
        (lambda: load_model("foo/bar/baz"), UnknownModelError, "shared/<teacher>"),
        (lambda: load_compact_model("0201025", 1), UnknownSessionError, "no compact models"),
        (lambda: load_compact_model(190923, 0, device="not-a-device"), InvalidInputError,
         "device"),
    ],
)
def test_unknown_models_give_one_clear_error(call, error, text):
    with pytest.raises(error) as err:
        call()
    assert text in str(err.value) and "\n" not in str(err.value)


def test_missing_files_name_the_fetch_command(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_compact_model(190923, 0, data_dir=tmp_path)
    message = str(err.value)
    assert "compact_model_190923_neuron0.keras" in message and str(tmp_path) in message
    assert f"v4compact data fetch compact-models:190923/0 --data-dir {tmp_path}" in message
    with pytest.raises(DataNotFoundError, match="v4compact data fetch shared-models:from_vgg19"):
        load_shared_model("from_vgg19", 5, data_dir=tmp_path)
    with pytest.raises(DataNotFoundError, match="v4compact data fetch compact-models-npy:190923/1"):
        load_compact_model(190923, 1, format="npy")  # the copy has 3 neurons in .npy only


def test_every_teacher_and_filter_count_is_released(data_dir):
    for teacher in SHARED_TEACHERS:
        for nf in SHARED_NUM_FILTERS:
            path = (data_dir / "data_shared_compact_models" / teacher
                    / f"shared_compact_model_{nf}filters.keras")
            assert path.is_file()
