"""Lazy attributes for packages whose public names live in heavy submodules (PEP 562), and
the old names of modules that moved (kept importable, with a DeprecationWarning)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable


def lazy_attributes(
    package: str, namespace: dict, names: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Build a package's ``__getattr__`` and ``__dir__`` from ``{name: defining module}``.

    The defining module is imported on first access of a name, and the value is cached in
    ``namespace`` (the package's ``globals()``) so later accesses are plain lookups.

    Args:
        package: the package's ``__name__``, for error messages.
        namespace: the package's ``globals()``.
        names: public name -> absolute name of the module that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.
    """

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Old module names kept importable: ``import old`` gives a thin module whose names are
    the new module's own objects, and warns (DeprecationWarning) once per process."""

    def __init__(self, moved: dict[str, str]) -> None:
        self.moved = dict(moved)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a plain module, filled by exec_module

    def exec_module(self, module) -> None:
        old, new = module.__name__, self.moved[module.__name__]
        warnings.warn(f"{old} moved to {new}; import from {new} (the old name will be removed "
                      "in a future release)", DeprecationWarning, stacklevel=_caller_level())
        target = importlib.import_module(new)

        def __getattr__(name: str):
            return getattr(target, name)

        module.__getattr__ = __getattr__
        module.__dir__ = lambda: dir(target)
        module.__doc__ = f"Moved to :mod:`{new}` (a deprecated alias)."
        module.__all__ = list(getattr(target, "__all__", ()))


def _caller_level() -> int:
    """The stack level of the first frame outside the import machinery (for warnings)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib")
                                 or frame.f_code.co_filename == __file__):
        frame, level = frame.f_back, level + 1
    return level


def moved_modules(moved: dict[str, str]) -> None:
    """Keep the old names of modules that moved importable, with a DeprecationWarning.

    Args:
        moved: old absolute module name -> new absolute module name, e.g.
            ``{"v4compact.models.registry": "v4compact.models.formats.loaders"}``.
    """
    if not any(isinstance(f, _MovedModules) and f.moved == moved for f in sys.meta_path):
        sys.meta_path.append(_MovedModules(moved))
