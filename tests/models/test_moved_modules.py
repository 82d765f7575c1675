"""The flat module names of v4compact.models before its subpackages still import, give the
very objects of their new homes, and warn once with the new place."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import v4compact.models
from v4compact.models import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_name_gives_the_new_modules_objects_with_a_warning(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        alias = importlib.import_module(old)
    new = importlib.import_module(MOVED[old])
    names = getattr(new, "__all__", None) or [n for n in vars(new) if not n.startswith("_")]
    assert names
    for name in names:
        assert getattr(alias, name) is getattr(new, name), f"{old}.{name}"
    with pytest.raises(AttributeError):
        alias.no_such_name  # noqa: B018


def test_from_imports_of_the_readme_era_keep_working():
    """What the docs and notebooks of 0.1 wrote, in a fresh interpreter (no module cached)."""
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        "    from v4compact.models.registry import load_compact_model\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "from v4compact.models.registry import load_compact_model\n"
        "from v4compact.models.compact import CompactModel\n"
        "from v4compact.models.population import CompactPopulation\n"
        "from v4compact.models.keras_io import read_model_file, FORMATS\n"
        "import v4compact\n"
        "assert load_compact_model is v4compact.load_compact_model\n"
        "assert CompactModel is v4compact.models.CompactModel\n"
        "assert CompactPopulation is v4compact.models.CompactPopulation\n"
        "print('ok', FORMATS)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "warned: v4compact.models.registry moved to v4compact.models.formats.loaders" in out
    assert out.strip().endswith("ok ('keras', 'weights-h5', 'npy', 'torch', 'h5')")


def test_the_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for new in MOVED.values():
            importlib.import_module(new)
        assert v4compact.models.load_model is importlib.import_module(
            "v4compact.models.zoo").load_model
