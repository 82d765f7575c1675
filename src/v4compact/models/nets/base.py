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

import os

import numpy as np
import torch
from torch import nn

from ...errors import InvalidInputError
from ..arch import LAYER_NAMES
from ..predict import predict


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
        return list(LAYER_NAMES)

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

    def predict(self, images, batch_size: int = 64, device: torch.device | str | None = None,
                progress: bool = False, units: str = "z-scored",
                data_dir: str | os.PathLike | None = None) -> np.ndarray:
        """Predicted responses to images (:func:`v4compact.models.predict.predict`).

        Args:
            images: pixels 0-255 in any form :func:`~v4compact.models.inputs.as_image_batch`
                accepts: ``(N, H, W, 3)`` or one ``(H, W, 3)`` uint8 / uint16 / float array,
                a Pillow image, a path, a list of paths or a folder (other sizes are
                centre-cropped and resized to 112x112, with a warning).
            batch_size: images per forward pass.
            device: where to run (default: where the model is); the model is not moved, a
                temporary copy runs elsewhere.
            progress: show a tqdm progress bar.
            units: ``"z-scored"`` (the model's own units) or ``"spikes"`` (spikes per 100 ms
                through :func:`~v4compact.models.calibration.fit_calibration`).
            data_dir: data directory of the sessions used by ``units="spikes"``.

        Returns:
            float32 ``(N,)`` for a one-output model, else ``(N, num_outputs)``, in z-scored
            units unless ``units="spikes"``.
        """
        return predict(self, images, batch_size=batch_size, device=device, progress=progress,
                       units=units, data_dir=data_dir)

    def activations(self, images, layer: str, batch_size: int = 64,
                    device: torch.device | str | None = None,
                    progress: bool = False) -> np.ndarray:
        """Feature maps of one layer, channels-last.

        Args:
            images: as for :meth:`predict`.
            layer: one of :attr:`layer_names`.
            batch_size, device, progress: as for :meth:`predict`.

        Returns:
            float32 ``(N, H, W, C)`` (``(N, num_outputs)`` in z-scored units for
            ``"output"``).
        """
        return predict(self, images, batch_size=batch_size, device=device, progress=progress,
                       layer=layer)

    def extra_repr(self) -> str:
        return f"model_id={self.model_id!r}, num_outputs={self.num_outputs}"
