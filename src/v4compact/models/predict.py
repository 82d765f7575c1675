"""The one predict path: responses of any model to images, as numpy.

:func:`predict` runs every kind of model the package meets - a v4compact
:class:`~v4compact.models.nets.base.V4Model`, any ``torch.nn.Module`` that takes re-centred
``(N, 3, 112, 112)`` images (a user's network, a TorchScript module,
:class:`~v4compact.synthesis.routing.RoutedModels`), any model of the
:class:`~v4compact.models.runner.ArrayModel` protocol (an ONNX model) and the path of an ONNX
file - on images in any form :func:`~v4compact.models.inputs.as_image_batch` accepts.
``V4Model.predict`` / ``.activations``, ``v4compact predict``, the explorer, evaluation,
synthesis and the in-silico experiments all call it. It checks the arguments, chooses the
units (:mod:`.calibration`) and leaves the running to :func:`~v4compact.models.runner.run_model`,
which leaves the caller's model as it was.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import InvalidInputError
from .calibration import UNITS, fit_calibration
from .runner import (
    ImageSource,
    as_runnable,
    check_call,
    inference_mode_of,
    model_device,
    run_model,
)

__all__ = ["inference_mode_of", "model_device", "predict"]


def predict(model, images, *, batch_size: int = 64, device: torch.device | str | None = None,
            progress: bool = False, units: str = "z-scored", layer: str | None = None,
            data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Responses of a model to images.

    Args:
        model: a :class:`~v4compact.models.nets.base.V4Model`; any ``torch.nn.Module`` mapping
            re-centred float32 ``(N, 3, 112, 112)`` images to ``(N, K)`` (or ``(N, ...)``,
            flattened); an :class:`~v4compact.models.runner.ArrayModel` such as an
            :class:`~v4compact.models.formats.onnx.OnnxModel`, or the path of an ``.onnx``
            file with that input.
        images: pixels 0-255 in any form :func:`~v4compact.models.inputs.as_image_batch`
            accepts (arrays, tensors, Pillow images, files, folders; other sizes are
            centre-cropped and resized); a lazy array such as ``session.images`` is read
            one batch at a time.
        batch_size: images per forward pass.
        device: where to run (default: where the model is). A torch model elsewhere is
            not moved: a temporary copy runs on ``device`` (move the model yourself to
            save that copy). ONNX models run on the CPU.
        progress: show a tqdm progress bar.
        units: ``"z-scored"`` (the models' own output units: the teacher was fitted to
            responses z-scored per neuron) or ``"spikes"`` (spikes per 100 ms, through the
            affine :func:`~v4compact.models.calibration.fit_calibration` of each recorded
            neuron, fitted on the first half of its session).
        layer: instead of the outputs, the feature maps of this layer (one of
            ``model.layer_names``; v4compact models only), channels-last.
        data_dir: data directory of the sessions used by ``units="spikes"``.

    Returns:
        float32 ``(N,)`` for a one-output model, else ``(N, K)``; with ``layer``,
        ``(N, H, W, C)`` (``(N, K)`` for ``"output"``), in z-scored units for outputs.

    Raises:
        InvalidInputError: bad images, batch size, units or layer, or a model kind that
            cannot be run.
        ModelFormatError: a module whose forward does not return one tensor.
        DataNotFoundError: ``units="spikes"`` without the session's images or responses.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if units not in UNITS:
        raise InvalidInputError(f"unknown units {units!r}; choose one of {', '.join(UNITS)}")
    if units != "z-scored" and layer is not None:
        raise InvalidInputError(f"units={units!r} applies to outputs; drop layer= or units=")
    model = as_runnable(model)
    check_call(model, device, layer)
    source = ImageSource(images)  # bad images fail here, before any model work
    calibration = fit_calibration(model, data_dir=data_dir) if units == "spikes" else None
    out = run_model(model, source, batch_size=batch_size, device=device, progress=progress,
                    layer=layer)
    if layer is not None:
        return out
    out = out.reshape(len(out), -1)
    if calibration is not None:
        out = calibration.apply(out)
    return out[:, 0] if out.shape[1] == 1 else out
