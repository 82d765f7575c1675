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

from ..errors import InvalidInputError, ModelFormatError
from ..images import recenter


@dataclass
class Predictor:
    """A model ready to be scored.

    Attributes:
        name: the model id or a user-given name, written in the ``model`` column.
        neuron_ids: ``"session/neuron"`` of each output column, or ``None`` for features.
        run: callable ``uint8 (N, 112, 112, 3) -> float (N, K)``.
    """

    name: str
    neuron_ids: list[str] | None
    run: Any

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Outputs for ``images`` as float64 ``(N, K)`` (feature maps are flattened)."""
        out = np.asarray(self.run(images), dtype=np.float64)
        return out.reshape(len(images), -1)


def _batched(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
    chunks = [fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks, axis=0)


def _nchw(images: np.ndarray) -> np.ndarray:
    """``uint8 (N, 112, 112, 3)`` -> float32 re-centred ``(N, 3, 112, 112)``."""
    return np.ascontiguousarray(recenter(images).transpose(0, 3, 1, 2))


def torch_predictor(module, name: str | None = None, neuron_ids=None, batch_size: int = 64,
                    device=None) -> Predictor:
    """Wrap a ``torch.nn.Module`` taking re-centred ``(N, 3, 112, 112)`` float32 input.

    A v4compact model (with ``.neuron_ids`` and ``.predict``) keeps its own neuron ids and
    prediction path; any other module is run in eval mode under ``torch.no_grad()`` on
    ``device`` (default: the device of its first parameter, else CPU).
    """
    import torch

    if hasattr(module, "neuron_ids") and hasattr(module, "predict") and neuron_ids is None:
        def run_v4(images):
            out = module.predict(images, batch_size=batch_size, device=device, progress=False)
            return np.asarray(out).reshape(len(images), -1)

        return Predictor(getattr(module, "model_id", type(module).__name__),
                         list(module.neuron_ids), run_v4)
    if device is None:
        first = next(iter(module.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    module.eval()

    def run(images):
        def one(batch):
            with torch.no_grad():
                x = torch.from_numpy(_nchw(batch)).to(device)
                out = module(x)
            if not isinstance(out, torch.Tensor):
                raise ModelFormatError(
                    f"{type(module).__name__} returned {type(out).__name__}, not a tensor; "
                    "wrap it so that forward() returns one (N, K) or (N, C, H, W) tensor"
                )
            return out.detach().float().cpu().numpy().reshape(len(batch), -1)

        return _batched(one, images, batch_size)

    return Predictor(name or type(module).__name__, neuron_ids, run)


def onnx_predictor(path: str | os.PathLike, name: str | None = None, neuron_ids=None,
                   batch_size: int = 64) -> Predictor:
    """Wrap an ONNX file whose first input is re-centred float32 ``(N, 3, 112, 112)``.

    Runs with onnxruntime on the CPU; the first output is used (flattened per image).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"ONNX file {path} not found; give the path of a .onnx model")
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModelFormatError(
            "scoring an ONNX file needs onnxruntime; install it with "
            "'pip install v4compact[export]'"
        ) from err
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelFormatError(f"{path} is not a valid ONNX model ({err}); re-export it") from err
    input_name = session.get_inputs()[0].name

    def run(images):
        def one(batch):
            return session.run(None, {input_name: _nchw(batch)})[0].reshape(len(batch), -1)

        return _batched(one, images, batch_size)

    return Predictor(name or path.stem, neuron_ids, run)
