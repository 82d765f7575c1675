"""Evaluation of models on the held-out V4 responses (``v4compact evaluate``)."""

from ..models.zoo import SHARED_NUM_FILTERS, SHARED_TEACHERS
from .evaluate import compact_model_ids, evaluate, score_predictions, shared_model_ids
from .predictors import (
    Predictor,
    backbone_predictor,
    ensemble_predictor,
    onnx_predictor,
    torch_predictor,
)
from .result import CSV_COLUMNS, METRIC_LABELS, EvaluationResult, NeuronScore, model_group

__all__ = [
    "CSV_COLUMNS",
    "METRIC_LABELS",
    "SHARED_NUM_FILTERS",
    "SHARED_TEACHERS",
    "EvaluationResult",
    "NeuronScore",
    "Predictor",
    "backbone_predictor",
    "compact_model_ids",
    "ensemble_predictor",
    "evaluate",
    "model_group",
    "score_predictions",
    "onnx_predictor",
    "shared_model_ids",
    "torch_predictor",
]
