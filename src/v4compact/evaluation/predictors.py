"""Uniform wrappers around everything :func:`~v4compact.evaluation.evaluate` can score.

A predictor maps ``uint8 (N, 112, 112, 3)`` images to float64 ``(N, K)`` outputs and says
which neuron each output column is (``neuron_ids``), or ``None`` when the outputs are
features that still have to be mapped to neurons.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError


@dataclass
class Predictor:
    """A model ready to be scored.

    Attributes:
        name: the model id or a user-given name, written in the ``model`` column.
        neuron_ids: ``"session/neuron"`` of each output column, or ``None`` for features.
        run: callable ``uint8 (N, 112, 112, 3) -> float (N, K)``.
        column_models: the model written in the ``model`` column for each output column,
            when the columns are separate models run together (the fused population of
            compact models); ``None``: :attr:`name` for every column.
        fit_predict: for a model whose mapping to neurons is its own (an ensemble: one
            ridge per member, averaged): callable ``(session, images, fit_indices,
            eval_indices) -> (n_eval, neurons)`` predictions; ``run`` is then unused.
    """

    name: str
    neuron_ids: list[str] | None
    run: Any
    column_models: list[str] | None = None
    fit_predict: Any = None

    def model_of(self, neuron_id: str) -> str:
        """The ``model`` column of the output that predicts ``neuron_id``."""
        if self.column_models is None or self.neuron_ids is None:
            return self.name
        return self.column_models[self.neuron_ids.index(neuron_id)]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Outputs for ``images`` as float64 ``(N, K)`` (feature maps are flattened)."""
        out = np.asarray(self.run(images), dtype=np.float64)
        return out.reshape(len(images), -1)


def _predictor(model, name: str | None, neuron_ids, batch_size: int, device) -> Predictor:
    """A :class:`Predictor` running ``model`` through :func:`v4compact.models.predict.predict`."""
    from ..models.predict import predict

    if neuron_ids is None:  # the model's own ids (v4compact models, exports), else features
        neuron_ids = list(getattr(model, "neuron_ids", None) or []) or None

    def run(images: np.ndarray) -> np.ndarray:
        out = predict(model, images, batch_size=batch_size, device=device)
        return out.reshape(len(images), -1)

    return Predictor(name or getattr(model, "model_id", "") or type(model).__name__,
                     neuron_ids, run)


def torch_predictor(module, name: str | None = None, neuron_ids=None, batch_size: int = 64,
                    device=None) -> Predictor:
    """Wrap a ``torch.nn.Module`` taking re-centred ``(N, 3, 112, 112)`` float32 input.

    A v4compact model keeps its model id and neuron ids; any module runs through
    :func:`~v4compact.models.predict.predict` (in eval mode, flags restored afterwards,
    on ``device`` - default: where the module is).
    """
    return _predictor(module, name, neuron_ids, batch_size, device)


def onnx_predictor(path: str | os.PathLike, name: str | None = None, neuron_ids=None,
                   batch_size: int = 64) -> Predictor:
    """Wrap an ONNX file whose first input is re-centred float32 ``(N, 3, 112, 112)``.

    Runs with onnxruntime on the CPU (:class:`~v4compact.models.formats.onnx.OnnxModel`); the
    first output is used (flattened per image).

    Raises:
        InvalidInputError: the file does not exist.
        ModelFormatError: onnxruntime is missing or cannot read the file.
    """
    from ..models.formats.onnx import OnnxModel

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"ONNX file {path} not found; give the path of a .onnx model")
    return _predictor(OnnxModel(path), name or path.stem, neuron_ids, batch_size, None)


def _session_features(backbone, session, images, batch_size: int) -> np.ndarray:
    """A backbone's features of a session's images: from the feature cache when the backbone
    has a stable identity, else computed."""
    if not backbone.cache_key:
        return backbone.features(images, batch_size=batch_size)
    from ..features import FeatureCache
    from ..features.cache import FEATURE_CACHE_DTYPE

    return FeatureCache(dtype=FEATURE_CACHE_DTYPE).features(
        backbone, images, f"session{session.session_id}", batch_size=batch_size)


def ensemble_predictor(ensemble, name: str | None = None, batch_size: int = 64) -> Predictor:
    """Wrap an :class:`~v4compact.models.teachers.ensemble.Ensemble` (released or a training run).

    Each member's embedding is mapped to a session's neurons by its own cross-validated
    ridge fitted on the fitting images, and the members' predictions are averaged
    (SYSTEM.md §7); backbone features come from the feature cache when the backbone has a
    stable identity.
    """
    from ..mapping.ensemble import ensemble_ridge_predictions

    def fit_predict(session, images, fit, held) -> np.ndarray:
        features = _session_features(ensemble.backbone, session, images, batch_size)
        return ensemble_ridge_predictions(list(ensemble.members), features[fit],
                                          session.responses[:, fit].T, features[held],
                                          batch_size=batch_size)

    return Predictor(name or ensemble.model_id or "ensemble", None, None,
                     fit_predict=fit_predict)


def backbone_predictor(backbone, name: str | None = None, batch_size: int = 64) -> Predictor:
    """Wrap a :class:`~v4compact.models.teachers.backbones.Backbone` (a task-driven DNN cut at a
    layer): its features mapped to a session's neurons by cross-validated ridge fitted on the
    fitting images (features cached on disk when the backbone has a stable identity)."""
    from ..mapping.ridge import RidgeMapping

    def fit_predict(session, images, fit, held) -> np.ndarray:
        features = _session_features(backbone, session, images, batch_size)
        ridge = RidgeMapping().fit(features[fit], session.responses[:, fit].T)
        return ridge.predict(features[held])

    return Predictor(name or backbone.spec, None, None, fit_predict=fit_predict)
