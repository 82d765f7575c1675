"""Plain batched forward passes of any v4compact model on uint8 / float pixel images."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ..errors import InvalidInputError
from ..images import IMAGE_MEAN, IMAGE_SIZE


@contextmanager
def inference_mode_of(model: torch.nn.Module):
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    (``model.train(was_training)`` would switch submodules that were in eval mode, e.g. the
    members of a freshly built wrapper, into training mode — batch norm would then use
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
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_images(images) -> np.ndarray:
    """Validate images ``(N, 112, 112, 3)`` (or one ``(112, 112, 3)``) with pixels 0-255.

    Returns:
        The images as an array ``(N, 112, 112, 3)`` (dtype unchanged).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise InvalidInputError(
            f"images must have shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) with pixels 0-255, "
            f"got {arr.shape}; resize them to {IMAGE_SIZE}x{IMAGE_SIZE} RGB first"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(f"images must be numeric pixels 0-255, got dtype {arr.dtype}")
    return arr


def to_model_input(images: np.ndarray, device) -> torch.Tensor:
    """``(N, 112, 112, 3)`` pixels 0-255 -> re-centred float32 ``(N, 3, 112, 112)`` tensor."""
    arr = np.asarray(images, dtype=np.float32) - IMAGE_MEAN
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).to(device)


def predict(model: torch.nn.Module, images, batch_size: int = 64, device=None) -> np.ndarray:
    """Model outputs for pixel images, in chunks, without gradients.

    Args:
        model: any v4compact model (forward on re-centred ``(N, 3, 112, 112)`` tensors).
        images: ``(N, 112, 112, 3)`` uint8 or float pixels 0-255 (numpy-like, sliceable).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).

    Returns:
        float32 ``(N, num_outputs)``.
    """
    device = model_device(model) if device is None else torch.device(device)
    n = len(images)
    chunks = []
    with inference_mode_of(model), torch.no_grad():
        for start in range(0, n, batch_size):
            batch = check_images(images[start: start + batch_size])
            out = model(to_model_input(batch, device))
            chunks.append(out.reshape(out.shape[0], -1).float().cpu().numpy())
    if not chunks:
        raise InvalidInputError("no images to predict; give at least one image")
    return np.concatenate(chunks, axis=0)
