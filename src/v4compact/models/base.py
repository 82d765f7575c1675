"""``V4Model``: what every model of the package offers on top of ``torch.nn.Module``.

A subclass implements :meth:`V4Model.forward` (re-centred ``(N, 3, 112, 112)`` float tensor
-> ``(N, num_outputs)``), :meth:`V4Model.forward_to` and the :attr:`layer_names`,
:attr:`num_filters` properties, and sets :attr:`model_id` and :attr:`neuron_ids`. The base
class turns these into numpy conveniences: :meth:`predict` and :meth:`activations` take
images in any form :func:`~v4compact.models.inputs.as_image_batch` accepts, re-centre them,
run in batches (with a tqdm progress bar when asked) in inference mode (batch norm with its
moving statistics, as Keras does at prediction time) and return float32 numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError
from ..images import IMAGE_MEAN
from .inputs import as_image_batch

#: Layers of the five-layer compact architecture: post-ReLU maps ``layerK``, the depthwise
#: outputs inside the separable convolutions ``layerK.depthwise``, and the model ``output``.
COMPACT_LAYER_NAMES: tuple[str, ...] = (
    "layer0",
    *(name for k in range(1, 5) for name in (f"layer{k}.depthwise", f"layer{k}")),
    "output",
)


class V4Model(nn.Module):
    """Base class of the compact, shared compact and population models.

    Attributes:
        model_id: registry id, e.g. ``"compact/201025/10"``; ``""`` for an unregistered model.
        neuron_ids: ``"session/neuron"`` of each output column.
    """

    model_id: str = ""
    neuron_ids: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.neuron_ids = []

    # -- to implement ---------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Names accepted by :meth:`forward_to` and :meth:`activations`:
        ``["layer0", "layer1.depthwise", "layer1", ..., "layer4", "output"]`` for the
        five-layer compact architecture (every model of this package)."""
        return list(COMPACT_LAYER_NAMES)

    @property
    def num_filters(self) -> list[int]:
        """Filters in each of the five convolutional layers."""
        raise NotImplementedError

    def forward_to(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Run up to ``layer`` (one of :attr:`layer_names`); differentiable.

        Args:
            x: re-centred images, float tensor ``(N, 3, 112, 112)``.
            layer: e.g. ``"layer2"`` (post-ReLU map), ``"layer2.depthwise"`` (depthwise output
                inside the separable convolution) or ``"output"``.

        Returns:
            ``(N, C, H, W)`` feature map, or ``(N, num_outputs)`` for ``"output"``.
        """
        raise NotImplementedError

    # -- provided ---------------------------------------------------------------------
    @property
    def num_outputs(self) -> int:
        """Number of output columns (neurons)."""
        return len(self.neuron_ids)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters (batch-norm moving statistics not counted)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        """The device holding the parameters."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def check_layer(self, layer: str) -> str:
        """Return ``layer`` if it is one of :attr:`layer_names`, else raise InvalidInputError."""
        if layer not in self.layer_names:
            raise InvalidInputError(
                f"model {self.model_id or type(self).__name__} has no layer {layer!r}; "
                f"choose one of {', '.join(self.layer_names)}"
            )
        return layer

    @staticmethod
    def to_input_tensor(images: np.ndarray, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Pixels 0-255 ``(N, 112, 112, 3)`` (numpy) -> re-centred ``(N, 3, 112, 112)`` tensor."""
        images = np.ascontiguousarray(images)
        if not images.flags.writeable:  # torch.from_numpy warns on read-only memory
            images = images.copy()
        x = torch.from_numpy(images).to(device=device, dtype=dtype)
        x = x - torch.as_tensor(IMAGE_MEAN, device=device, dtype=dtype)
        return x.permute(0, 3, 1, 2)

    def predict(self, images, batch_size: int = 64, device: torch.device | str | None = None,
                progress: bool = False) -> np.ndarray:
        """Predicted responses to images.

        Args:
            images: uint8 or float pixels 0-255 ``(N, 112, 112, 3)``, one image
                ``(112, 112, 3)``, a path, a list of paths or a folder (see
                :func:`~v4compact.models.inputs.as_image_batch`; other sizes are resized with
                a warning).
            batch_size: images per forward pass.
            device: run there (the model is moved to it); default: where the model is.
            progress: show a tqdm progress bar.

        Returns:
            float32 ``(N,)`` for a one-output model, else ``(N, num_outputs)``.
        """
        out = self._run(images, self.forward, batch_size, device, progress)
        return out[:, 0] if self.num_outputs == 1 else out

    def activations(self, images, layer: str, batch_size: int = 64,
                    device: torch.device | str | None = None,
                    progress: bool = False) -> np.ndarray:
        """Feature maps of one layer, channels-last.

        Args:
            images: as for :meth:`predict`.
            layer: one of :attr:`layer_names`.
            batch_size, device, progress: as for :meth:`predict`.

        Returns:
            float32 ``(N, H, W, C)`` (``(N, num_outputs)`` for ``"output"``).
        """
        self.check_layer(layer)

        def run(x: torch.Tensor) -> torch.Tensor:
            y = self.forward_to(x, layer)
            return y.permute(0, 2, 3, 1) if y.ndim == 4 else y

        return self._run(images, run, batch_size, device, progress)

    def _run(self, images, fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
             device, progress: bool) -> np.ndarray:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch = as_image_batch(images)
        if device is not None:
            self.to(device)
        target = self.device
        was_training = self.training
        self.eval()
        chunks = []
        starts = range(0, len(batch), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=self.model_id or "predict", unit="batch")
        try:
            with torch.inference_mode():
                for start in starts:
                    x = self.to_input_tensor(batch[start:start + batch_size], target)
                    chunks.append(fn(x).float().cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(chunks, axis=0)

    def extra_repr(self) -> str:
        return f"model_id={self.model_id!r}, num_outputs={self.num_outputs}"
