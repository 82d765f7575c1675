"""The one predict path: responses of any model to images, as numpy.

:func:`predict` runs every kind of model the package meets - a v4compact
:class:`~v4compact.models.base.V4Model`, any ``torch.nn.Module`` that takes re-centred
``(N, 3, 112, 112)`` images (a user's network, a TorchScript module,
:class:`~v4compact.synthesis.routing.RoutedModels`), and an ONNX model (a ``.onnx`` path or an
:class:`~v4compact.models.export.OnnxModel`) - on images in any form
:func:`~v4compact.models.inputs.as_image_batch` accepts. ``V4Model.predict`` /
``.activations``, ``v4compact predict``, the explorer, evaluation, synthesis and the
in-silico experiments all call it.

The caller's model is left as it was: its device (a different ``device=`` runs a temporary
copy there) and each submodule's train/eval flag (restored afterwards).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInputError, ModelFormatError
from .calibration import UNITS, fit_calibration
from .inputs import as_image_batch, to_model_input

__all__ = ["inference_mode_of", "model_device", "predict"]


@contextmanager
def inference_mode_of(model: torch.nn.Module):
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    (``model.train(was_training)`` would switch submodules that were in eval mode, e.g. the
    members of a freshly built wrapper, into training mode - batch norm would then use
    batch statistics and overwrite its running averages.)
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless module)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def predict(model, images, *, batch_size: int = 64, device: torch.device | str | None = None,
            progress: bool = False, units: str = "z-scored", layer: str | None = None,
            data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Responses of a model to images.

    Args:
        model: a :class:`~v4compact.models.base.V4Model`; any ``torch.nn.Module`` mapping
            re-centred float32 ``(N, 3, 112, 112)`` images to ``(N, K)`` (or ``(N, ...)``,
            flattened); an :class:`~v4compact.models.export.OnnxModel` or the path of an
            ``.onnx`` file with that input.
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
    model = _as_runnable(model)
    if not isinstance(model, torch.nn.Module):
        _check_onnx_call(device, layer)
    source = _ImageSource(images)  # bad images fail here, before any model work
    calibration = fit_calibration(model, data_dir=data_dir) if units == "spikes" else None
    name = getattr(model, "model_id", "") or type(model).__name__
    if isinstance(model, torch.nn.Module):
        with _on_device(model, device) as (runner, target), inference_mode_of(runner), \
                torch.inference_mode():
            out = _run_chunks(_torch_fn(runner, layer), source, batch_size, target, progress,
                              name)
    else:
        out = _run_chunks(model, source, batch_size, torch.device("cpu"), progress, name)
    if layer is not None:
        return out
    out = out.reshape(len(out), -1)
    if calibration is not None:
        out = calibration.apply(out)
    return out[:, 0] if out.shape[1] == 1 else out


def _as_runnable(model):
    """The model itself, or an :class:`~v4compact.models.export.OnnxModel` of a path."""
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if path.suffix.lower() != ".onnx":
            raise InvalidInputError(
                f"predict takes a model object or an .onnx path, not {path.name!r}; load "
                "other models first with v4compact.load_model"
            )
        if not path.is_file():
            raise InvalidInputError(f"ONNX file {path} not found; give the path of a .onnx "
                                    "model")
        from .export import OnnxModel

        return OnnxModel(path)
    if isinstance(model, torch.nn.Module) or _is_onnx(model):
        return model
    raise InvalidInputError(
        f"cannot predict with a {type(model).__name__}; give a v4compact model, a "
        "torch.nn.Module or an ONNX model (path or OnnxModel)"
    )


def _is_onnx(model) -> bool:
    from .export import OnnxModel

    return isinstance(model, OnnxModel)


def _check_onnx_call(device, layer) -> None:
    if layer is not None:
        raise InvalidInputError(f"layer={layer!r} needs a torch model; an ONNX model gives "
                                "only its outputs")
    if device is not None and torch.device(device).type != "cpu":
        raise InvalidInputError(f"ONNX models run on the CPU with onnxruntime; drop "
                                f"device={str(device)!r}")


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are the same device when 0 is the current one."""
    def index(d: torch.device) -> int:
        if d.index is not None or d.type == "cpu":
            return d.index or 0
        backend = getattr(torch, d.type, None)  # torch.cuda, torch.xpu, ...
        return getattr(backend, "current_device", lambda: 0)()

    return a.type == b.type and index(a) == index(b)


@contextmanager
def _on_device(model: torch.nn.Module, device):
    """``(module to run, device)``: the model itself, or a temporary copy on ``device``."""
    here = model_device(model)
    target = here if device is None else torch.device(device)
    if _same_device(here, target):
        yield model, here
        return
    try:
        runner = copy.deepcopy(model).to(target)
    except Exception as err:  # a module that cannot be copied (e.g. holding open handles)
        name = getattr(model, "model_id", "") or type(model).__name__
        raise InvalidInputError(
            f"model {name} is on {here} and could not be copied to {target} "
            f"({type(err).__name__}); move it with model.to({str(target)!r}) or drop device="
        ) from None
    yield runner, target


def _torch_fn(model: torch.nn.Module, layer: str | None) -> Callable:
    """Re-centred batch -> outputs (or channels-last feature maps of ``layer``)."""
    name = getattr(model, "model_id", "") or type(model).__name__
    if layer is None:
        return model
    if not hasattr(model, "forward_to"):
        raise InvalidInputError(f"layer={layer!r} needs a v4compact model (with forward_to); "
                                f"{name} gives only its outputs")
    model.check_layer(layer)

    def run(x: torch.Tensor) -> torch.Tensor:
        y = model.forward_to(x, layer)
        return y.permute(0, 2, 3, 1) if y.ndim == 4 else y

    return run


def _run_chunks(fn: Callable, source: _ImageSource, batch_size: int, device: torch.device,
                progress: bool, name: str) -> np.ndarray:
    chunks = []
    for batch in source.batches(batch_size, progress, name):
        out = fn(to_model_input(batch, device))
        if isinstance(out, torch.Tensor):
            out = out.detach().float().cpu().numpy()
        elif not isinstance(out, np.ndarray):
            raise ModelFormatError(
                f"{name} returned {type(out).__name__}, not a tensor; wrap it so that "
                "forward() returns one (N, K) tensor"
            )
        chunks.append(out.astype(np.float32, copy=False))
    return np.concatenate(chunks, axis=0)


class _ImageSource:
    """The images to predict: converted once by the one image path, or - a lazy array such
    as ``session.images`` - sliced and converted one batch at a time."""

    def __init__(self, images) -> None:
        self.lazy = (not isinstance(images, np.ndarray) and not hasattr(images, "detach")
                     and len(getattr(images, "shape", ())) == 4
                     and hasattr(images, "__getitem__"))
        self.images = images if self.lazy else as_image_batch(images)
        if len(self.images) == 0:
            raise InvalidInputError("no images to predict; give at least one image")

    def batches(self, batch_size: int, progress: bool, name: str) -> Iterator[np.ndarray]:
        """``(<=batch_size, 112, 112, 3)`` pixel batches, in order."""
        starts = range(0, len(self.images), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=name or "predict", unit="batch")
        for start in starts:
            chunk = self.images[start:start + batch_size]
            yield as_image_batch(chunk) if self.lazy else chunk
