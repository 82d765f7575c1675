"""One compact model as files a web page can run: ``<stem>.json`` manifest + ``<stem>.bin``.

The page's runtime (``static/v4runtime.js``, TensorFlow.js) reads them. The ``.bin`` holds
little-endian float32 arrays, back to back, with batch norm folded into the convolutions
(the model's own :meth:`~v4compact.models.nets.core.EncoderModel.fuse`, computed in float64 and
rounded once), in TensorFlow.js layouts (channels-last, the Keras layouts of
:meth:`~v4compact.models.nets.core.EncoderModel.layer_weights`):

=====================  ==============================  ==========================================
tensor                 shape                           role
=====================  ==============================  ==========================================
``layer0.kernel``      ``(5, 5, 3, K0)``               ``tf.conv2d`` filter (HWIO)
``layer0.bias``        ``(K0,)``
``layerK.depthwise``   ``(5, 5, K_{k-1}, 1)``          ``tf.depthwiseConv2d`` filter, K = 1..4
``layerK.pointwise``   ``(1, 1, K_{k-1}, K_k)``        1x1 ``tf.conv2d`` filter (or a matmul)
``layerK.bias``        ``(K_k,)``
``readout.weight``     ``(28 * 28 * K4, 1)``           rows in (H, W, C) order: ``matMul`` of
                                                       the NHWC map reshaped to ``(N, -1)``
``readout.bias``       ``(1,)``
=====================  ==============================  ==========================================

The manifest says everything else the runtime needs, so the page restates no constant:
image size, channel means (pixels 0-255 are re-centred inside the model, as
:func:`~v4compact.models.inputs.to_model_input` does), per layer its stride, explicit
TensorFlow "same" pads (:func:`~v4compact.models.arch.same_padding`: 1 before and 2 after
for the stride-2 layers) and ReLU, the stage names, and per tensor its byte range::

    {"format": "v4compact-browser-model", "version": 1, "model_id": "compact/201025/10",
     "neuron_id": "201025/10", "num_filters": [50, 39, 3, 6, 3],
     "image_size": 112, "image_mean": [116.222, 109.27, 100.381], "pixel_scale": [0, 255],
     "layout": "NHWC", "output_units": "z-scored units",
     "stage_names": ["layer0", "layer1.depthwise", ...],
     "layers": [{"name": "layer0", "kind": "conv", "stride": 1, "pads": [[2, 2], [2, 2]],
                 "relu": true}, {"name": "layer1", "kind": "separable", "stride": 2,
                 "pads": [[1, 2], [1, 2]], "relu": true}, ...],
     "weights": "10.bin", "byte_length": 1234,
     "tensors": [{"name": "layer0.kernel", "shape": [5, 5, 3, 50], "dtype": "float32",
                  "byte_offset": 0, "byte_length": 15000}, ...]}
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np

from ..models.arch import (
    IMAGE_MEAN,
    IMAGE_SIZE,
    KERNEL_SIZE,
    LAYER_SIZES,
    LAYER_STRIDES,
    NUM_LAYERS,
    STAGE_NAMES,
    same_padding,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_browser_model"]

#: ``format`` of the manifest; the runtime refuses other names.
FORMAT_NAME = "v4compact-browser-model"
#: ``version`` of the manifest; the runtime refuses other versions.
FORMAT_VERSION = 1
#: The units of the model's output (SYSTEM.md §9).
OUTPUT_UNITS = "z-scored units"


def _folded_tensors(model) -> list[tuple[str, np.ndarray]]:
    """``(name, float32 array)`` pairs in TF.js layouts, batch norm folded (float64 fold)."""
    fused = copy.deepcopy(model).cpu().double().fuse()
    tensors: list[tuple[str, np.ndarray]] = []
    for k in range(NUM_LAYERS):
        weights = fused.layer_weights(k)
        if k == 0:
            tensors.append(("layer0.kernel", weights["kernel"]))
        else:
            tensors += [(f"layer{k}.depthwise", weights["depthwise_kernel"]),
                        (f"layer{k}.pointwise", weights["pointwise_kernel"])]
        tensors.append((f"layer{k}.bias", weights["bias"]))
    readout = fused.readout  # weight (1, 28*28*K4), columns in (H, W, C) order
    tensors += [("readout.weight", readout.weight.detach().float().numpy().T),
                ("readout.bias", readout.bias.detach().float().numpy())]
    return [(name, np.ascontiguousarray(array, dtype="<f4")) for name, array in tensors]


def _layers(relu: bool) -> list[dict]:
    """Per layer: name, kind, stride, explicit "same" pads ``[[top, bottom], [left, right]]``."""
    layers, size = [], IMAGE_SIZE
    for k, stride in enumerate(LAYER_STRIDES):
        pad = list(same_padding(size, KERNEL_SIZE, stride))
        layers.append({"name": f"layer{k}", "kind": "conv" if k == 0 else "separable",
                       "stride": stride, "pads": [pad, pad], "relu": relu})
        size = LAYER_SIZES[k]
    return layers


def write_browser_model(model, folder: str | os.PathLike, stem: str) -> Path:
    """Write one compact model for the page's runtime: ``<folder>/<stem>.json`` + ``.bin``.

    Args:
        model: a :class:`~v4compact.models.nets.compact.CompactModel` (a released model, a made
            one from ``load_compact_model(path)``, fused or not; left unchanged). Its
            eval-mode function is written.
        folder: where to write (created if missing).
        stem: file name without extension, e.g. ``"10"``.

    Returns:
        The manifest's path (see the module docstring for its fields; ``.bin``: the float32
        tensors it lists, little-endian, back to back).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, offset = [], 0
    arrays = _folded_tensors(model)
    for name, array in arrays:
        tensors.append({"name": name, "shape": list(array.shape), "dtype": "float32",
                        "byte_offset": offset, "byte_length": array.nbytes})
        offset += array.nbytes
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_id": model.model_id,
        "neuron_id": model.neuron_ids[0],
        "num_filters": list(model.num_filters),
        "image_size": IMAGE_SIZE,
        "image_mean": [float(str(m)) for m in IMAGE_MEAN],  # float32, shortest
        "pixel_scale": [0, 255],
        "layout": "NHWC",
        "output_units": OUTPUT_UNITS,
        "stage_names": list(STAGE_NAMES),
        "layers": _layers(bool(model.relu)),
        "weights": f"{stem}.bin",
        "byte_length": offset,
        "tensors": tensors,
    }
    with open(folder / f"{stem}.bin", "wb") as file:
        for _, array in arrays:
            array.tofile(file)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(manifest, separators=(",", ":")))
    return path
