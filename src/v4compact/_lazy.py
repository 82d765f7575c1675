"""Lazy attributes for packages whose public names live in heavy submodules (PEP 562)."""

from __future__ import annotations

import importlib
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
