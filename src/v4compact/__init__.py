"""v4compact: compact deep-network models of macaque V4 neurons, in PyTorch.

The public API is imported lazily, so ``import v4compact`` stays fast and does not load
torch until a model is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from .errors import (
    CorruptDataError,
    DataNotFoundError,
    DownloadError,
    InvalidInputError,
    ModelFormatError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
    V4CompactError,
)

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "list_sessions": "v4compact.data.catalog",
    "session_info": "v4compact.data.catalog",
    "SessionInfo": "v4compact.data.catalog",
    "load_session": "v4compact.data.session",
    "Session": "v4compact.data.session",
    "list_datasets": "v4compact.data.catalog",
    "import_session": "v4compact.ingest",
    "export_session": "v4compact.ingest",
    "data_dir": "v4compact.config",
    "fetch": "v4compact.data.fetch",
    "data_status": "v4compact.data.fetch",
    "load_model": "v4compact.models.zoo",
    "load_compact_model": "v4compact.models.formats.loaders",
    "load_shared_model": "v4compact.models.formats.loaders",
    "load_compact_population": "v4compact.models.formats.loaders",
    "list_models": "v4compact.models.zoo",
    "model_status": "v4compact.models.zoo",
    "load_backbone": "v4compact.models.teachers.backbones",
    "load_ensemble": "v4compact.models.teachers.ensemble",
    "load_ensemble_member": "v4compact.models.teachers.ensemble",
    "predict": "v4compact.models.predict",
    "fit_calibration": "v4compact.models.calibration",
    "export_model": "v4compact.models.formats.export",
    "load_exported": "v4compact.models.formats.export",
    "evaluate": "v4compact.evaluation",
    "synthesize": "v4compact.synthesis.render",
    "render": "v4compact.synthesis.render",
}

__all__ = [
    "CorruptDataError",
    "DataNotFoundError",
    "DownloadError",
    "InvalidInputError",
    "ModelFormatError",
    "UnknownModelError",
    "UnknownNeuronError",
    "UnknownSessionError",
    "V4CompactError",
    "__version__",
    *sorted(_LAZY),
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from .config import data_dir  # noqa: F401
    from .data.catalog import (  # noqa: F401
        SessionInfo,
        list_datasets,  # noqa: F401
        list_sessions,
        session_info,
    )
    from .ingest import export_session, import_session  # noqa: F401
