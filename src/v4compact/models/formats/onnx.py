"""ONNX models run with onnxruntime on the CPU: one kind of model the predict path runs.

:class:`OnnxModel` is an :class:`~v4compact.models.runner.ArrayModel` (``model_id``,
``neuron_ids``, called on re-centred images), so :func:`v4compact.predict`, evaluation and
the explorer run it without importing this module; :func:`v4compact.load_exported` and the
zoo's ``file:`` ids open ``.onnx`` files with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ...errors import InvalidInputError, ModelFormatError
from ..predict import predict

__all__ = ["OnnxModel"]


class OnnxModel:
    """An exported ONNX model run with onnxruntime (CPU): an
    :class:`~v4compact.models.runner.ArrayModel`, so every predict path takes it.

    Args:
        path: a ``.onnx`` file written by :func:`export_model`, or any ONNX model whose
            first input is re-centred ``(N, 3, 112, 112)`` float32 images (its first output
            is used; model id and neuron ids are then empty).

    Attributes:
        model_id: id of the exported model.
        neuron_ids: ``"session/neuron"`` of each output column.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelFormatError("running ONNX files needs onnxruntime; install it with: "
                                   "pip install 'v4compact[export]'") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path),
                                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelFormatError(f"{Path(path).name} is not a readable ONNX model "
                                   f"({type(err).__name__}); export it again") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.model_id = meta.get("model_id", "")
        self.neuron_ids = json.loads(meta.get("neuron_ids", "[]"))

    def __call__(self, x) -> np.ndarray:
        """Re-centred images ``(N, 3, 112, 112)`` (numpy or tensor) -> float32 ``(N, outputs)``."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, 112, 112):
            raise InvalidInputError(f"ONNX model input must be (N, 3, 112, 112) re-centred "
                                    f"images, got {x.shape}")
        # the first input and output: "images" / "responses" in our exports, any name in a
        # user's file
        return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]

    def predict(self, images, batch_size: int = 64, progress: bool = False,
                units: str = "z-scored", data_dir: str | os.PathLike | None = None
                ) -> np.ndarray:
        """As :meth:`V4Model.predict` (:func:`v4compact.models.predict.predict`): images in
        any accepted form -> float32 ``(N,)`` or ``(N, outputs)``, z-scored units unless
        ``units="spikes"``."""
        return predict(self, images, batch_size=batch_size, progress=progress, units=units,
                       data_dir=data_dir)
