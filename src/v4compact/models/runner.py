"""The engine under the one predict path: run any model kind over images, batch by batch.

:func:`run_model` takes a ``torch.nn.Module`` (re-centred ``(N, 3, 112, 112)`` in, ``(N, K)``
out: a :class:`~v4compact.models.nets.base.V4Model`, a user's network, a TorchScript module)
or any object of the :class:`ArrayModel` protocol (an ONNX session), leaving the caller's
model as it was: its device (a different ``device=`` runs a temporary copy there) and each
submodule's train/eval flag. :func:`as_runnable` turns a model file's path into a model
through the zoo's ``file:`` family, so this module imports no file format: the formats plug
in from above. Units, calibration and the public arguments are
:func:`v4compact.models.predict.predict`'s.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import InvalidInputError, ModelFormatError
from .families import FILE
from .inputs import as_image_batch, to_model_input
from .zoo import load_model

__all__ = ["ArrayModel", "ImageSource", "as_runnable", "check_call", "inference_mode_of",
           "model_device", "run_model"]


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


@runtime_checkable
class ArrayModel(Protocol):
    """A model kind that is not a torch module, run on the CPU: called on a batch of
    re-centred float32 images ``(N, 3, 112, 112)`` (a CPU tensor), it returns ``(N, K)``
    outputs (numpy or a tensor).

    :class:`~v4compact.models.formats.onnx.OnnxModel` is one; any object with these
    attributes plugs into :func:`run_model` (and so into :func:`v4compact.predict`, evaluation
    and the explorer) without this module knowing its class.

    Attributes:
        model_id: the model's id (``""`` when unknown).
        neuron_ids: ``"session/neuron"`` of each output column (may be empty).
    """

    model_id: str
    neuron_ids: list[str]

    def __call__(self, x: torch.Tensor) -> np.ndarray: ...


def as_runnable(model):
    """The model itself (a ``torch.nn.Module`` or an :class:`ArrayModel`), or the ONNX model
    an ``.onnx`` path holds, opened by the zoo's ``file:`` family (so this module imports no
    file format).

    Raises:
        InvalidInputError: an object of another kind, or a path that is not ``.onnx`` (other
            model files are loaded first with :func:`v4compact.load_model`).
        DataNotFoundError: a path that does not exist.
    """
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if path.suffix.lower() != ".onnx":
            raise InvalidInputError(
                f"predict takes a model object or an .onnx path, not {path.name!r}; load "
                "other models first with v4compact.load_model"
            )
        return load_model(FILE.format_id(path))
    if isinstance(model, torch.nn.Module | ArrayModel):
        return model
    raise InvalidInputError(
        f"cannot predict with a {type(model).__name__}; give a v4compact model, a "
        "torch.nn.Module or an ONNX model (path or OnnxModel)"
    )


def check_call(model, device, layer) -> None:
    """Refuse, before any work, what a model kind cannot do: a layer or another device for
    an :class:`ArrayModel` (it gives only its outputs, on the CPU).

    Raises:
        InvalidInputError: the one-line reason and the fix.
    """
    if isinstance(model, torch.nn.Module):
        return
    name = getattr(model, "model_id", "") or type(model).__name__
    if layer is not None:
        raise InvalidInputError(f"layer={layer!r} needs a torch model; {name} gives only its "
                                "outputs")
    if device is not None and torch.device(device).type != "cpu":
        raise InvalidInputError(f"{name} runs on the CPU; drop device={str(device)!r}")


def run_model(model, images, *, batch_size: int = 64,
              device: torch.device | str | None = None, progress: bool = False,
              layer: str | None = None) -> np.ndarray:
    """Run a model over images, batch by batch: the engine under :func:`v4compact.predict`.

    Args:
        model: a ``torch.nn.Module`` mapping re-centred float32 ``(N, 3, 112, 112)`` images
            to ``(N, ...)``, or an :class:`ArrayModel` (already :func:`as_runnable`).
        images: pixels 0-255 in any form :func:`~v4compact.models.inputs.as_image_batch`
            accepts (a lazy array such as ``session.images`` is read one batch at a time), or
            an :class:`ImageSource` made of them beforehand.
        batch_size: images per forward pass (a positive integer, checked by the caller).
        device: where to run (default: where the model is; a torch model elsewhere runs as
            a temporary copy there). Array models run on the CPU.
        progress: show a tqdm progress bar.
        layer: the feature maps of this layer (``model.layer_names``; v4compact models only),
            channels-last, instead of the outputs.

    Returns:
        float32 ``(N, ...)`` as the model returns it (z-scored units for the package's
        models); with ``layer``, ``(N, H, W, C)``.

    Raises:
        InvalidInputError: bad images, a layer or device the model cannot take.
        ModelFormatError: a module whose forward does not return one tensor.
    """
    check_call(model, device, layer)
    source = images if isinstance(images, ImageSource) else ImageSource(images)
    name = getattr(model, "model_id", "") or type(model).__name__
    if isinstance(model, torch.nn.Module):
        with _on_device(model, device) as (runner, target), inference_mode_of(runner), \
                torch.inference_mode():
            return _run_chunks(_torch_fn(runner, layer), source, batch_size, target,
                               progress, name)
    return _run_chunks(model, source, batch_size, torch.device("cpu"), progress, name)


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


def _run_chunks(fn: Callable, source: ImageSource, batch_size: int, device: torch.device,
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


class ImageSource:
    """The images to predict: converted once by the one image path, or - a lazy array such
    as ``session.images`` - sliced and converted one batch at a time. Made up front, it
    checks the images before any model work.

    Raises:
        InvalidInputError: images the one image path cannot read, or none.
    """

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
