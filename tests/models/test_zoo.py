"""The model zoo: ids and their parsing, status on any machine, factories, fetch hints."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import v4compact
from v4compact.cli import main
from v4compact.cli.models import load_selected_model
from v4compact.data.registry import group_names, resolve
from v4compact.errors import (
    DataNotFoundError,
    InvalidInputError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
    V4CompactError,
)
from v4compact.models import families, zoo
from v4compact.models.formats.keras_io import FORMATS

REPO = Path(__file__).resolve().parents[2]
RELEASED = 219 + 56  # compact + shared models in the release


def _list_rows(argv: list[str]) -> tuple[list[list[str]], str]:
    """Run ``v4compact models list`` as a user would; rows split on whitespace, stderr."""
    run = subprocess.run([sys.executable, "-m", "v4compact", "models", "list", *argv],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return [line.split() for line in run.stdout.splitlines()], run.stderr


def _fetched_paths(command: str) -> set[str]:
    """Release paths that a printed ``v4compact data fetch GROUP ...`` command brings."""
    group = command.split("data fetch ", 1)[1].split()[0]
    return {entry.path for entry in resolve(group)}


# -- listing ---------------------------------------------------------------------------------
def test_models_list_on_an_empty_data_directory(tmp_path):
    rows, stderr = _list_rows(["--data-dir", str(tmp_path)])
    ids = [row[0] for row in rows]
    assert ids == zoo.list_models() and len(ids) == RELEASED + 1 + 1 + zoo.NUM_ENSEMBLE_MEMBERS
    assert len([i for i in ids if i.startswith(("compact/", "shared/"))]) == RELEASED
    for row in rows:
        model_id, status, command = row[0], row[1], " ".join(row[2:])
        assert status == "missing"
        assert command.startswith("v4compact data fetch ")
        assert command.endswith(f"--data-dir {tmp_path}")
        family, _ = zoo.parse_model_id(model_id)
        assert set(family.files(model_id)) <= _fetched_paths(command), model_id
    assert f"{len(ids)} models: 0 present, {len(ids)} missing" in stderr
    assert "z-scored units" in stderr


def test_models_list_with_the_real_data(data_dir, capsys):
    assert main(["models", "list"]) == 0  # $V4COMPACT_DATA: the real copy
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    status = {row[0]: row[1] for row in rows}
    assert all(status[i] == "present" for i in zoo.list_models() if not i.startswith("ensemble"))
    missing = {row[0]: " ".join(row[2:]) for row in rows if row[1] == "missing"}
    assert missing["ensemble"] == "v4compact data fetch ensemble-members"  # not in the copy
    assert missing["ensemble/member7"] == "v4compact data fetch ensemble-members:7"
    assert len(missing) == 1 + zoo.NUM_ENSEMBLE_MEMBERS
    assert main(["models", "list", "shared/*/5", "--present", "--data-dir", str(data_dir)]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [f"shared/{t}/5" for t in zoo.SHARED_TEACHERS]


def test_models_list_with_no_match_says_so_and_fails(capsys, tmp_path):
    assert main(["models", "list", "nonsense*"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no model matches 'nonsense*'" in err and "\n" not in err
    assert main(["models", "list", "compact/*", "--present", "--data-dir", str(tmp_path)]) == 1
    assert "in the data directory" in capsys.readouterr().err


def test_model_status_records(data_dir, tmp_path):
    (record,) = zoo.model_status("compact/201025/10", data_dir=data_dir)
    assert record.present and record.status == "present" and record.fetch_command is None
    (record,) = zoo.model_status("shared/from_vgg19/50", data_dir=tmp_path)
    assert record.status == "missing" and record.family == "shared"
    assert record.missing == ("data_shared_compact_models/from_vgg19/"
                              "shared_compact_model_50filters.keras",)
    assert record.fetch_command == (f"v4compact data fetch shared-models:from_vgg19 "
                                    f"--data-dir {tmp_path}")
    assert v4compact.model_status is zoo.model_status and v4compact.list_models is zoo.list_models


# -- ids ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(zoo.FAMILIES.values()), ids=list(zoo.FAMILIES))
def test_every_family_id_round_trips(family):
    ids = family.ids() or [family.format_id(path="models/my model.onnx")]
    for model_id in ids:
        found, fields = zoo.parse_model_id(model_id)
        assert found is family and tuple(fields) == family.id_fields
        assert family.format_id(**fields) == model_id
    assert family.input_size == 112 and family.resize == "center-crop"
    assert family.channel_mean == pytest.approx((116.222, 109.270, 100.381))


def test_family_facts():
    assert [len(f.ids()) for f in zoo.FAMILIES.values()] == [219, 56, 1, 26, 0]
    assert {f.units for f in zoo.FAMILIES.values() if f is not zoo.FILE} == {"z-scored units"}
    assert zoo.COMPACT.neuron_ids("compact/201025/10") == ["201025/10"]
    for model_id in ("shared/from_cornets/25", "population"):
        assert zoo.parse_model_id(model_id)[0].neuron_ids(model_id) == zoo.model_neuron_ids()
    assert zoo.ENSEMBLE.neuron_ids("ensemble") == []  # padded readout columns, not neurons
    assert zoo.COMPACT.files("compact/201025/10") == [
        "data_compact_models/models_keras/compact_model_201025_neuron10.keras",
        "data_compact_models/nums_filters/compact_model_201025_neuron10.npy"]
    assert len(zoo.POPULATION.files("population")) == 2 * 219
    assert zoo.ENSEMBLE.files("ensemble/member24") == [
        "data_ensemble_model/ensemble_model_member24.keras"]  # as in release_manifest.tsv


def test_canonical_neuron_order():
    ids = zoo.model_neuron_ids()
    assert len(ids) == 219 and ids[:2] == ["190923/0", "190923/1"] and ids[33] == "201025/0"
    assert sorted(ids, key=zoo.canonical_key) == ids
    assert [f"{s}/{k}" for s, k in map(zoo.parse_neuron_id, ids)] == ids
    assert zoo.parse_neuron_id("compact/210225/5") == zoo.parse_neuron_id((210225, 5)) == (
        210225, 5)
    assert zoo.session_neuron_ids(211022)[-1] == "211022/41"
    assert zoo.split_neuron_id("210325/49") == (210325, 49)  # any recorded session


@pytest.mark.parametrize(("model_id", "error", "needle"), [
    ("compact/201025", UnknownModelError, "compact/<session>/<neuron>"),
    ("compact/201025/89", UnknownNeuronError, "0-88"),
    ("compact/201025/010", UnknownNeuronError, "no leading zeros: write '10'"),  # one spelling
    ("compact/0201025/1", UnknownSessionError, "no leading zeros: write '201025'"),
    ("compact/201025/\u0661", UnknownNeuronError, "digits 0-9 only"),  # Arabic-Indic one
    ("compact/210224/0", UnknownSessionError, "no compact models"),
    ("shared/from_alexnet/5", UnknownModelError, "from_vgg19"),
    ("shared/from_vgg19/7", UnknownModelError, "200"),
    ("population/1", UnknownModelError, "use population"),
    ("ensemble/member25", UnknownModelError, "k = 0-24"),
    ("ensemble/7", UnknownModelError, "ensemble/member<k>"),
    ("file:", UnknownModelError, "file:<path"),
    ("file:weights.txt", UnknownModelError, ".onnx"),
    ("resnet50", UnknownModelError, "v4compact models list"),
    ("", UnknownModelError, "shared/<teacher>/<F>"),
])
def test_unknown_ids_give_one_line_errors(model_id, error, needle):
    with pytest.raises(error) as err:
        zoo.load_model(model_id)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("neuron", "error"), [
    ("201025", InvalidInputError), ("201025/1/2", InvalidInputError),
    ("a/b", UnknownSessionError), ((201025, True), UnknownNeuronError),
    ((190923, -1), UnknownNeuronError), ((201025, 2.5), UnknownNeuronError),
])
def test_bad_neuron_ids(neuron, error):
    with pytest.raises(error) as err:
        zoo.parse_neuron_id(neuron)
    assert "\n" not in str(err.value)


# -- factories ---------------------------------------------------------------------------------
def test_registering_a_factory_is_one_decorator(monkeypatch):
    monkeypatch.setattr(families, "_FACTORIES", {})  # an empty registry for this test

    @zoo.register_factory("ensemble")
    def load_ensemble_members(member=None, device="cpu", data_dir=None):
        """Which member files a model id names (a factory of real signature, for this test)."""
        return zoo.ENSEMBLE.files(zoo.ENSEMBLE.format_id(member))

    assert zoo.factory("ensemble") is load_ensemble_members
    assert zoo.load_model("ensemble/member2") == [
        "data_ensemble_model/ensemble_model_member2.keras"]
    assert len(zoo.load_model("ensemble")) == zoo.NUM_ENSEMBLE_MEMBERS
    assert zoo.register_factory("ensemble")(load_ensemble_members) is load_ensemble_members

    def another(member=None, device="cpu", data_dir=None):
        return member

    with pytest.raises(InvalidInputError, match="already has the factory"):
        zoo.register_factory("ensemble")(another)


def test_the_family_modules_register_their_factories():
    assert zoo.factory("compact") is v4compact.load_compact_model
    assert zoo.factory("population") is v4compact.load_compact_population
    assert zoo.factory("ensemble").__module__ == zoo.ENSEMBLE.factory_module


def test_a_factory_must_take_the_family_fields():
    def wrong(teacher, device="cpu", data_dir=None):
        return teacher

    with pytest.raises(InvalidInputError, match="num_filters"):
        zoo.register_factory("shared")(wrong)
    with pytest.raises(UnknownModelError, match="compact, shared"):
        zoo.register_factory("alexnet")


def test_user_model_files_load_by_id(tmp_path, data_dir):
    model = v4compact.load_compact_model(201025, 10, data_dir=data_dir)
    path = v4compact.export_model(model, tmp_path / "neuron.safetensors", format="safetensors")
    images = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), np.uint8)
    loaded = zoo.load_model(f"file:{path}")
    assert loaded.model_id == "compact/201025/10" and loaded.neuron_ids == ["201025/10"]
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    selected = load_selected_model(f"file:{path}")
    np.testing.assert_array_equal(selected.predict(images), model.predict(images))
    with pytest.raises(DataNotFoundError, match="v4compact export"):
        zoo.load_model(f"file:{tmp_path / 'absent.onnx'}")


def test_evaluate_takes_file_ids(tmp_path, data_dir):
    model = v4compact.load_compact_model(190923, 0, data_dir=data_dir)
    path = v4compact.export_model(model, tmp_path / "neuron.onnx", format="onnx")
    kwargs = dict(sessions=[190923], data_dir=data_dir, num_boot=0, progress=False)
    by_id = v4compact.evaluate(f"file:{path}", neuron_ids=["190923/0"], **kwargs)
    by_path = v4compact.evaluate(path, neuron_ids=["190923/0"], **kwargs)
    assert [s.value for s in by_id.scored] == [s.value for s in by_path.scored]
    assert len(by_id.scored) == 1 and by_id.scored[0].neuron == 0


# -- fetch hints -------------------------------------------------------------------------------
_HINT = re.compile(r"data fetch +([^\n]*)")


def _hint_groups(text: str) -> list[str]:
    """The group arguments of every ``data fetch`` command written in ``text``."""
    groups = []
    for match in _HINT.finditer(text):
        for raw in match.group(1).split():
            token = raw.split("`")[0].rstrip(".,;)'\"")
            if not token or token.startswith(("-", "#")):
                break
            groups.append(token)
            if token != raw:  # a closing quote, backtick or full stop ends the command
                break
    return groups


def _literal(node) -> str | None:
    """A string literal, with ``{}`` for the formatted parts of an f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _written_hints() -> list[tuple[str, str]]:
    """``(where, group)`` of every fetch group spelled out in the sources and the docs."""
    hints = []
    for path in sorted([*(REPO / "src").rglob("*.py"), *(REPO / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                args = {"require": node.args[2:3], "fetch_command": node.args[:1]}.get(name, [])
                args += [k.value for k in node.keywords if k.arg in ("fetch_group", "what")]
                hints += [(where, text) for a in args if (text := _literal(a)) is not None]
            elif (text := _literal(node)) is not None:
                hints += [(where, group) for group in _hint_groups(text)]
    static = REPO / "src/v4compact/web/static"  # the page code, not the vendored runtime
    for path in sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"),
                        *(p for p in static.rglob("*.*") if "vendor" not in p.parts)]):
        text = path.read_text(encoding="utf-8")
        hints += [(str(path.relative_to(REPO)), group) for group in _hint_groups(text)]
    return hints


def _check_group(group: str) -> None:
    """Raise unless ``group`` (``{}`` / ``<...>`` placeholders allowed) is a real group."""
    if group == "..." or group.startswith(("{", "<")):
        return  # a placeholder for any group
    if "{" in group or "<" in group:
        name = group.split(":")[0]
        if name not in group_names():
            raise InvalidInputError(f"unknown data group {name!r}")
        return
    resolve(group)


def test_check_group_catches_the_group_that_never_existed():
    with pytest.raises(InvalidInputError):
        _check_group("models")
    with pytest.raises(InvalidInputError):
        _check_group("models:{}")
    _check_group("images:{}")
    _check_group("compact-models:201025/10")


def test_every_written_fetch_hint_names_a_real_group():
    hints = _written_hints()
    places = {where.split(":")[0] for where, _ in hints}
    assert len(hints) > 15 and "README.md" in places
    assert any(p.startswith("src/v4compact/data/") for p in places)
    bad = []
    for where, group in hints:
        try:
            _check_group(group)
        except V4CompactError as err:
            bad.append(f"{where}: {group!r} ({err})")
    assert not bad, bad


def test_every_zoo_fetch_group_brings_its_files():
    for family in zoo.FAMILIES.values():
        if family.fetch_group is not None:
            family_files = {e.path for e in resolve(family.fetch_group)}
        for model_id in family.ids():
            files = set(family.files(model_id))
            assert files <= {e.path for e in resolve(family.fetch_group_of(model_id))}
            assert files <= family_files, model_id


def _error_text(call) -> str:
    with pytest.raises(V4CompactError) as err:
        call()
    return str(err.value)


def test_every_fetch_hint_in_an_error_brings_the_missing_file(tmp_path, data_dir):
    """Real errors on an empty (and the real) data directory name groups that fetch the file."""
    from v4compact.web.state import refetch_command

    calls = [lambda fmt=fmt: v4compact.load_compact_model(190923, 0, data_dir=tmp_path,
                                                          format=fmt) for fmt in FORMATS]
    calls += [
        lambda: v4compact.load_shared_model("from_cornets", 35, data_dir=tmp_path),
        lambda: v4compact.load_model("population", data_dir=tmp_path),
        lambda: v4compact.load_session(190923, data_dir=tmp_path),
        lambda: v4compact.load_session(190924, data_dir=data_dir).images,
        lambda: v4compact.load_session(190923, data_dir=data_dir).raw_responses,
    ]
    messages = [_error_text(call) for call in calls]
    for message in messages:
        missing, _, _ = message.partition(" not found")
        command = message.split("fetch it with: ", 1)[1]
        assert missing in _fetched_paths(command), message
    ensemble = _error_text(lambda: zoo.load_model("ensemble/member3", data_dir=tmp_path))
    assert set(zoo.ENSEMBLE.files("ensemble/member3")) <= _fetched_paths(ensemble)
    web_hint = refetch_command(201025, 10)
    assert set(zoo.COMPACT.files("compact/201025/10")) <= _fetched_paths(web_hint)
