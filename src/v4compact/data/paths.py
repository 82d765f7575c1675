"""Release-relative paths of every kind of file, and the one way to ask for a local file.

The data directory is laid out like the public release ``cowleygroup/V4_compact_models``
(see ``config.data_dir``). Every path here is relative to that directory and uses ``/``;
:func:`fetch_command` is the command line that downloads a fetch group.
:func:`v4compact.data.local.require` turns a release path into a local path.
"""

from __future__ import annotations

import os

from .. import config

RESPONSES_DIR = "data_V4_responses"
COMPACT_DIR = "data_compact_models"
SHARED_DIR = "data_shared_compact_models"
ENSEMBLE_DIR = "data_ensemble_model"

#: Compact-model file formats of the release: format name -> (folder, file suffix).
COMPACT_FORMATS: dict[str, tuple[str, str]] = {
    "keras": ("models_keras", ".keras"),
    "torch": ("models_torch", ".pt"),
    "weights-h5": ("model_weights_h5", ".weights.h5"),
    "npy": ("model_weights_npy", ".npy"),
    "h5": ("models_h5", ".h5"),
    "summary": ("model_summaries", ".txt"),
}

ENSEMBLE_SUMMARY = f"{ENSEMBLE_DIR}/ensemble_model_summary.txt"


def images_zip(session_id: int) -> str:
    """The zip of a session's JPEG images, e.g. ``data_V4_responses/images/images_190923.zip``."""
    return f"{RESPONSES_DIR}/images/images_{int(session_id)}.zip"


def responses_averaged(session_id: int) -> str:
    """Repeat-averaged responses, float64 ``(neurons, images)`` ``.npy``."""
    return f"{RESPONSES_DIR}/responses_repeat_averaged/responses_{int(session_id)}.npy"


def responses_raw(session_id: int) -> str:
    """Single-repeat responses, float64 ``(neurons, images, repeats)`` NaN-padded ``.npy``."""
    return f"{RESPONSES_DIR}/responses_raw/responses_{int(session_id)}.npy"


def compact_model(session_id: int, neuron: int, fmt: str = "keras") -> str:
    """One neuron's compact model in one of :data:`COMPACT_FORMATS`."""
    try:
        folder, suffix = COMPACT_FORMATS[fmt]
    except KeyError:
        from ..errors import InvalidInputError

        valid = ", ".join(COMPACT_FORMATS)
        raise InvalidInputError(
            f"unknown compact-model format {fmt!r}; choose one of {valid}"
        ) from None
    return f"{COMPACT_DIR}/{folder}/compact_model_{int(session_id)}_neuron{int(neuron)}{suffix}"


def nums_filters(session_id: int, neuron: int) -> str:
    """int array of 5: filters per layer of one neuron's pruned compact model."""
    return f"{COMPACT_DIR}/nums_filters/compact_model_{int(session_id)}_neuron{int(neuron)}.npy"


def shared_model(teacher: str, num_filters: int) -> str:
    """A shared compact model (219 outputs), Keras 3 ``.keras``; the released teachers and
    filter counts are :data:`v4compact.models.zoo.SHARED_TEACHERS` / ``SHARED_NUM_FILTERS``."""
    return f"{SHARED_DIR}/{teacher}/shared_compact_model_{int(num_filters)}filters.keras"


def ensemble_member(member: int) -> str:
    """One trained ensemble-model member (k = 0-24), Keras 3 ``.keras``."""
    return f"{ENSEMBLE_DIR}/ensemble_model_member{int(member)}.keras"


def fetch_command(what: str, data_dir: str | os.PathLike | None = None) -> str:
    """The command line that downloads group ``what`` into the resolved data directory."""
    cmd = f"v4compact data fetch {what}"
    if config.data_dir_source(data_dir) == "argument":
        cmd += f" --data-dir {config.data_dir(data_dir)}"
    return cmd
