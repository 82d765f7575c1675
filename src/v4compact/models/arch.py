"""The compact architecture's facts, in one place (SYSTEM.md §3-§5, §9).

Everything that describes the five-layer compact / shared compact network - layer names,
kernel size, strides, padding, feature-map sizes, batch-norm settings, the readout grid,
the image size and channel means, the distillation student's width - is defined here and
imported by the modules that build (:mod:`.nets.core`, :mod:`.nets.readouts`), read
(:mod:`.formats.keras_io`), fuse (:mod:`.engines.fused`) or count (:mod:`.nets.macs`) the
networks. Pure Python: importing this module imports neither torch nor numpy beyond
:mod:`v4compact.images`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..images import IMAGE_MEAN, IMAGE_SIZE

__all__ = [
    "BN_MOMENTUM",
    "DEFAULT_BN_EPS",
    "IMAGE_MEAN",
    "IMAGE_SIZE",
    "IN_CHANNELS",
    "KERNEL_SIZE",
    "LAYER_NAMES",
    "LAYER_SIZES",
    "LAYER_STRIDES",
    "MIN_FILTERS",
    "NUM_LAYERS",
    "READOUT_SIZE",
    "STAGE_NAMES",
    "STUDENT_NUM_FILTERS",
    "check_num_filters",
    "same_padding",
    "state_dict_shapes",
]

#: Number of convolutional layers (layer0 full conv, layers 1-4 separable).
NUM_LAYERS = 5
#: Input channels (RGB).
IN_CHANNELS = 3
#: Kernel side of every convolution of the core (pixels).
KERNEL_SIZE = 5
#: Stride of each of the five layers; every layer uses TensorFlow "same" padding.
LAYER_STRIDES: tuple[int, ...] = (1, 2, 2, 1, 1)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis.

    The output has ``ceil(size / stride)`` pixels and the total padding
    ``max((out - 1) * stride + kernel - size, 0)`` is split with the smaller half *before*:
    with a 5x5 kernel and stride 2 on an even size (112 -> 56, 56 -> 28) that is 1 pixel
    before and 2 after, which PyTorch's symmetric ``padding=`` cannot express.

    Args:
        size: input length (pixels).
        kernel: kernel length (pixels).
        stride: stride (pixels).

    Returns:
        ``(before, after)`` padding in pixels.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _layer_sizes(image_size: int) -> tuple[int, ...]:
    sizes, size = [], image_size
    for stride in LAYER_STRIDES:
        size = -(-size // stride)
        sizes.append(size)
    return tuple(sizes)


#: Spatial size (rows = columns) of each layer's output for a 112x112 input.
LAYER_SIZES: tuple[int, ...] = _layer_sizes(IMAGE_SIZE)
#: Side of the last feature map, over which the readouts pool (28).
READOUT_SIZE: int = LAYER_SIZES[-1]

#: Batch-norm epsilon of every released model (Keras' default; PyTorch's is 1e-5).
DEFAULT_BN_EPS = 1e-3
#: PyTorch batch-norm momentum equal to Keras' 0.99 moving-average momentum.
BN_MOMENTUM = 0.01
#: Filters per layer of a freshly distilled (unpruned) student (SYSTEM.md §9).
STUDENT_NUM_FILTERS: tuple[int, ...] = (100,) * NUM_LAYERS
#: Pruning keeps at least this many filters in every layer (SYSTEM.md §10).
MIN_FILTERS = 3

#: Stages of the core: post-ReLU maps ``layerK`` and the depthwise outputs inside the
#: separable convolutions ``layerK.depthwise``, in the order they run.
STAGE_NAMES: tuple[str, ...] = (
    "layer0",
    *(name for k in range(1, NUM_LAYERS) for name in (f"layer{k}.depthwise", f"layer{k}")),
)
#: Names accepted by ``forward_to`` / ``activations``: the stages, then the model ``output``.
LAYER_NAMES: tuple[str, ...] = (*STAGE_NAMES, "output")


def parse_stage(layer: str) -> tuple[int, bool]:
    """``"layer2.depthwise"`` -> ``(2, True)``; ``"layer3"`` -> ``(3, False)``.

    Raises:
        ValueError: a name that is not one of :data:`STAGE_NAMES`.
    """
    if layer not in STAGE_NAMES:
        raise ValueError(f"{layer!r} is not one of {', '.join(STAGE_NAMES)}")
    name, _, part = layer.partition(".")
    return int(name[len("layer"):]), part == "depthwise"


def check_num_filters(num_filters: Sequence[int]) -> list[int]:
    """Validate five positive filter counts; returns them as a list of ints.

    Raises:
        ValueError: not five positive integers.
    """
    counts = [int(n) for n in num_filters]
    if len(counts) != NUM_LAYERS or min(counts) < 1:
        raise ValueError(f"num_filters must be {NUM_LAYERS} positive ints, got {list(num_filters)}")
    return counts


def core_state_shapes(num_filters: Sequence[int], prefix: str = "core.") -> dict[str, tuple]:
    """Shape of every state-dict entry of a core with these filter counts.

    Names: ``layer0.conv.{weight,bias}``, ``layerK.depthwise.weight`` ``(C, 1, 5, 5)``,
    ``layerK.pointwise.{weight,bias}``, ``layerK.bn.{weight,bias,running_mean,running_var}``,
    each prefixed with ``prefix``.
    """
    k = KERNEL_SIZE
    nf = check_num_filters(num_filters)
    shapes: dict[str, tuple] = {f"{prefix}layer0.conv.weight": (nf[0], IN_CHANNELS, k, k),
                                f"{prefix}layer0.conv.bias": (nf[0],)}
    for i in range(1, NUM_LAYERS):
        cin, cout = nf[i - 1], nf[i]
        shapes[f"{prefix}layer{i}.depthwise.weight"] = (cin, 1, k, k)
        shapes[f"{prefix}layer{i}.pointwise.weight"] = (cout, cin, 1, 1)
        shapes[f"{prefix}layer{i}.pointwise.bias"] = (cout,)
    for i in range(NUM_LAYERS):
        for var in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}layer{i}.bn.{var}"] = (nf[i],)
    return shapes


def state_dict_shapes(kind: str, num_filters: Sequence[int],
                      num_outputs: int = 1) -> dict[str, tuple]:
    """Shape of every state-dict entry of a compact (``kind="compact"``) or shared model.

    A compact model is ``core.*`` + ``readout.{weight,bias}`` (dense "Beta" readout, weight
    ``(1, 28*28*K4)`` in channels-last flatten order); a shared model is ``core.*`` +
    ``readout.mixing.{weight,bias}`` (1x1 conv ``(outputs, K4, 1, 1)``) and
    ``readout.spatial.{weight,bias}`` (depthwise 28x28 ``(outputs, 1, 28, 28)``).
    """
    nf = check_num_filters(num_filters)
    shapes = core_state_shapes(nf)
    if kind == "compact":
        shapes["readout.weight"] = (1, READOUT_SIZE * READOUT_SIZE * nf[-1])
        shapes["readout.bias"] = (1,)
    elif kind == "shared":
        shapes["readout.mixing.weight"] = (num_outputs, nf[-1], 1, 1)
        shapes["readout.mixing.bias"] = (num_outputs,)
        shapes["readout.spatial.weight"] = (num_outputs, 1, READOUT_SIZE, READOUT_SIZE)
        shapes["readout.spatial.bias"] = (num_outputs,)
    else:
        raise ValueError(f"unknown model kind {kind!r}; 'compact' or 'shared'")
    return shapes
