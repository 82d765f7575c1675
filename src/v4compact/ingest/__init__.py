"""A lab's own recordings in and any session out: NWB (pynwb) and plain files.

- :func:`import_session` (also ``v4compact.import_session``): NWB or images + responses ->
  a checked session written atomically in the layout of :mod:`v4compact.data.layout`;
- :func:`export_session`: any session -> an NWB file pynwb's validator accepts.

:mod:`.nwb` is the only module of the package that imports pynwb.
"""

from __future__ import annotations

from .api import (
           DEFAULT_WINDOW_MS,
           SessionImportWarning,
           check_recording,
           export_session,
           import_session,
)

__all__ = ["DEFAULT_WINDOW_MS", "SessionImportWarning", "check_recording", "export_session",
           "import_session"]
