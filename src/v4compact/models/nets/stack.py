"""``CompactStack``: many compact models as one trainable module of grouped convolutions.

The fused population (:mod:`v4compact.models.engines.population`) is the fastest way to
*run* released models, with batch norm folded into frozen buffers. The stack is its
trainable twin: the weights of K compact models (SYSTEM.md §4) side by side as parameters,
batch norm live, so K students are trained in one pass over the images (SYSTEM.md §9):

- layer 0: one 5x5 convolution 3 -> K*W0 when every model sees the same image (its
  filters side by side), or a grouped one (groups=K) when each model gets its own image;
- layers 1-4: a depthwise 5x5 convolution over all K*W channels (depthwise never mixes
  channels), then a 1x1 convolution with ``groups=K`` (each model's pointwise matrix on
  the block diagonal);
- batch norm over the K*W channels (per channel, so each model's statistics are its own);
- readout: one dense "Beta" map per model (an ``einsum``).

Why stacking is exact: every operation is per model (per channel or per group), so with
the loss summed over models each model's parameters receive exactly the gradient they get
alone, and Adam, SGD and batch norm act per element / per channel. A step on the stack is
a step on each model (to float rounding; ``tests/models/test_stack.py`` checks it).

Models of different widths are padded to the widest per layer; a channel *mask* (a 0/1
buffer per layer, multiplied into each layer's output) keeps the padding at zero in the
forward pass and gives it zero gradient, so a padded model trains as the smaller model.
Pruning (SYSTEM.md §10) sets mask entries to zero; :meth:`CompactStack.to_models` then
rebuilds each model with only its kept channels.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import InvalidInputError
from ..arch import (
    DEFAULT_BN_EPS,
    IN_CHANNELS,
    KERNEL_SIZE,
    LAYER_STRIDES,
    NUM_LAYERS,
    READOUT_SIZE,
    STUDENT_NUM_FILTERS,
    check_num_filters,
    parse_stage,
)
from .layers import ConvBlock, SeparableBlock, _relu

__all__ = ["KERNEL_CHOICES", "CompactStack"]

#: The ways a stack can compute the same function (:meth:`CompactStack.set_kernels`).
KERNEL_CHOICES: dict[str, tuple[str, ...]] = {
    "pointwise": ("conv", "matmul"),
    "memory_format": ("contiguous", "channels_last"),
}
_MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


class CompactStack(nn.Module):
    """K compact models of (padded) widths ``W0..W4`` as one module.

    Build one with :meth:`from_models` (released or fresh models) or :meth:`students`
    (freshly initialised, seeded); get the separate models back with :meth:`to_models`.

    Args:
        num_models: K.
        num_filters: padded width of each of the five layers (per model).
        bn_eps: batch-norm epsilon shared by all models.
        relu: ReLU after each batch norm.
        masks: whether to keep channel masks (needed for models narrower than the padded
            width, and for pruning).

    Attributes:
        core: the five blocks (``layer0`` ... ``layer4``) with K*W channels each.
        readout_weight: ``(K, 28*28*W4)`` parameter, each row a model's dense readout in
            channels-last ``(H, W, C)`` flatten order.
        readout_bias: ``(K,)`` parameter.
        neuron_ids: ``"session/neuron"`` (or a name) of each model, in stack order.
        model_ids: zoo id of each model (``""`` when it has none).
    """

    def __init__(self, num_models: int, num_filters: Sequence[int] = STUDENT_NUM_FILTERS,
                 bn_eps: float = DEFAULT_BN_EPS, relu: bool = True,
                 masks: bool = False) -> None:
        super().__init__()
        if not isinstance(num_models, int) or num_models < 1:
            raise InvalidInputError(f"num_models must be a positive integer, got {num_models!r}")
        widths = check_num_filters(num_filters)
        self.num_models = num_models
        self.widths = widths
        self.bn_eps = float(bn_eps)
        self.relu = bool(relu)
        k = num_models
        core = nn.Module()
        core.layer0 = ConvBlock(IN_CHANNELS, k * widths[0], KERNEL_SIZE, LAYER_STRIDES[0],
                                bn_eps, relu)
        for layer in range(1, NUM_LAYERS):
            core.add_module(f"layer{layer}", SeparableBlock(
                k * widths[layer - 1], k * widths[layer], KERNEL_SIZE, LAYER_STRIDES[layer],
                bn_eps, relu, pointwise_groups=k))
        self.core = core
        self.readout_weight = nn.Parameter(torch.zeros(k, READOUT_SIZE ** 2 * widths[-1]))
        self.readout_bias = nn.Parameter(torch.zeros(k))
        for layer in range(NUM_LAYERS):
            mask = torch.ones(k * widths[layer]) if masks else None
            self.register_buffer(f"mask{layer}", mask)
        self.neuron_ids = [f"model{i}" for i in range(k)]
        self.model_ids = [""] * k
        #: memory format inputs are converted to (``None``: as given); see set_kernels
        self.memory_format: torch.memory_format | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_models(cls, models: Sequence[nn.Module], masks: bool | None = None) -> CompactStack:
        """Stack compact models (copies of their weights; the models are not changed).

        Args:
            models: :class:`~v4compact.models.nets.compact.CompactModel` objects with the same
                batch-norm epsilon and activation (any widths; narrower ones are padded).
            masks: keep channel masks; default: only when the widths differ.

        Returns:
            A stack on the models' device and dtype, in training mode if the first model is.
        """
        models = list(models)
        if not models:
            raise InvalidInputError("a stack needs at least one compact model")
        for model in models:
            if not hasattr(model, "core") or len(getattr(model, "neuron_ids", [])) != 1 \
                    or not getattr(model.core, "batch_norm", False):
                raise InvalidInputError(
                    f"{type(model).__name__} is not an unfused compact model; stack "
                    "CompactModel objects (v4compact.load_compact_model or CompactModel.student)"
                )
        if len({(m.bn_eps, m.relu) for m in models}) != 1:
            raise InvalidInputError("stacked models must share batch-norm epsilon and ReLU")
        filters = [m.num_filters for m in models]
        widths = [max(f[layer] for f in filters) for layer in range(NUM_LAYERS)]
        if masks is None:
            masks = any(f != widths for f in filters)
        first = next(models[0].parameters())
        stack = cls(len(models), widths, models[0].bn_eps, models[0].relu, masks)
        stack.to(device=first.device, dtype=first.dtype)
        if masks:
            for layer in range(NUM_LAYERS):
                getattr(stack, f"mask{layer}").zero_()
        # padded channels: zero weights, gamma 0 and beta 0 -> exactly zero outputs
        for param in stack.parameters():
            param.data.zero_()
        for index, model in enumerate(models):
            stack._put(index, model)
        stack.neuron_ids = [m.neuron_ids[0] for m in models]
        stack.model_ids = [getattr(m, "model_id", "") for m in models]
        return stack.train(models[0].training)

    @classmethod
    def students(cls, num_models: int, num_filters: Sequence[int] = STUDENT_NUM_FILTERS,
                 seeds: Sequence[int] | None = None,
                 neuron_ids: Sequence[str] | None = None) -> CompactStack:
        """K freshly initialised students (Keras default initialisation), in training mode.

        Args:
            num_models: K.
            num_filters: filters per layer of each student (100 each: SYSTEM.md §9).
            seeds: one seed per student (default ``0 .. K-1``); student k equals
                ``CompactModel.student(num_filters, seed=seeds[k])``.
            neuron_ids: the neuron each student learns (names in the stack).
        """
        from .compact import CompactModel

        seeds = list(range(num_models)) if seeds is None else [int(s) for s in seeds]
        names = list(neuron_ids) if neuron_ids is not None else [f"student{s}" for s in seeds]
        if len(seeds) != num_models or len(names) != num_models:
            raise InvalidInputError(f"give {num_models} seeds and neuron ids, one per student")
        models = [CompactModel.student(num_filters, seed=s, neuron_id=n)
                  for s, n in zip(seeds, names, strict=True)]
        return cls.from_models(models)

    # -- per-model slices -----------------------------------------------------------------
    def _rows(self, layer: int, index: int) -> slice:
        width = self.widths[layer]
        return slice(index * width, (index + 1) * width)

    def kept_channels(self, index: int) -> list[torch.Tensor]:
        """Indices (within the model's padded width) of model ``index``'s live channels,
        one long tensor per layer."""
        out = []
        for layer in range(NUM_LAYERS):
            mask = getattr(self, f"mask{layer}")
            if mask is None:
                out.append(torch.arange(self.widths[layer], device=self.readout_bias.device))
            else:
                out.append(torch.nonzero(mask[self._rows(layer, index)]).flatten())
        return out

    def _put(self, index: int, model: nn.Module) -> None:
        """Copy one compact model's weights into slot ``index`` (first channels of each layer)."""
        f = model.num_filters
        blocks = model.core.blocks()
        with torch.no_grad():
            for layer in range(NUM_LAYERS):
                rows = self._rows(layer, index)
                live = slice(rows.start, rows.start + f[layer])
                src, dst = blocks[layer], getattr(self.core, f"layer{layer}")
                if layer == 0:
                    dst.conv.weight[live] = src.conv.weight
                    dst.conv.bias[live] = src.conv.bias
                else:
                    prev = self._rows(layer - 1, index)
                    dst.depthwise.weight[prev.start:prev.start + f[layer - 1]] = \
                        src.depthwise.weight
                    dst.pointwise.weight[live, :f[layer - 1]] = src.pointwise.weight
                    dst.pointwise.bias[live] = src.pointwise.bias
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(dst.bn, name)[live] = getattr(src.bn, name)
                dst.bn.running_var[rows.start + f[layer]:rows.stop] = 1.0
                dst.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)
                mask = getattr(self, f"mask{layer}")
                if mask is not None:
                    mask[live] = 1.0
            readout = model.readout.weight.reshape(READOUT_SIZE ** 2, f[-1])
            padded = self.readout_weight[index].view(READOUT_SIZE ** 2, self.widths[-1])
            padded[:, :f[-1]] = readout
            self.readout_bias[index] = model.readout.bias[0]

    def to_models(self) -> list[nn.Module]:
        """The separate compact models (copies), each with only its live channels.

        Returns:
            :class:`~v4compact.models.nets.compact.CompactModel` objects in stack order, on the
            stack's device and dtype, in the stack's train/eval mode; their outputs equal
            the stack's columns.
        """
        return [self.model(i) for i in range(self.num_models)]

    def model(self, index: int) -> nn.Module:
        """Model ``index`` as a :class:`~v4compact.models.nets.compact.CompactModel` (a copy)."""
        from .compact import CompactModel

        if not 0 <= index < self.num_models:
            raise InvalidInputError(f"model index {index} out of range 0-{self.num_models - 1}")
        kept = self.kept_channels(index)
        filters = [len(k) for k in kept]
        if min(filters) < 1:
            raise InvalidInputError(f"model {index} has a layer without channels: {filters}")
        out = CompactModel(filters, self.bn_eps, self.relu, self.model_ids[index],
                           self.neuron_ids[index])
        out.to(device=self.readout_bias.device, dtype=self.readout_bias.dtype)
        blocks = out.core.blocks()
        with torch.no_grad():
            for layer in range(NUM_LAYERS):
                start = self._rows(layer, index).start
                rows = kept[layer] + start
                src, dst = getattr(self.core, f"layer{layer}"), blocks[layer]
                if layer == 0:
                    dst.conv.weight.copy_(src.conv.weight[rows])
                    dst.conv.bias.copy_(src.conv.bias[rows])
                else:
                    prev = kept[layer - 1]
                    dst.depthwise.weight.copy_(
                        src.depthwise.weight[prev + self._rows(layer - 1, index).start])
                    dst.pointwise.weight.copy_(src.pointwise.weight[rows][:, prev])
                    dst.pointwise.bias.copy_(src.pointwise.bias[rows])
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(dst.bn, name).copy_(getattr(src.bn, name)[rows])
                dst.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)
            readout = self.readout_weight[index].view(READOUT_SIZE ** 2, self.widths[-1])
            out.readout.weight.copy_(readout[:, kept[-1]].reshape(1, -1))
            out.readout.bias.copy_(self.readout_bias[index:index + 1])
        return out.train(self.training)

    # -- computation ----------------------------------------------------------------------
    def _block(self, layer: int, x: torch.Tensor, per_model_input: bool) -> torch.Tensor:
        block = getattr(self.core, f"layer{layer}")
        if layer == 0 and per_model_input:
            x = block.conv.conv_with(x, block.conv.weight, block.conv.bias,
                                     groups=self.num_models)
            if block.bn is not None:
                x = block.bn(x)
            x = _relu(x) if self.relu else x
        else:
            x = block(x)
        mask = getattr(self, f"mask{layer}")
        return x if mask is None else x * mask[:, None, None]

    def fused(self) -> CompactStack:
        """An inference copy: every batch norm folded into its convolution (the eval-mode
        function, as :meth:`v4compact.models.nets.core.CompactCore.fuse`), weights frozen and in
        channels-last memory, the layout in which CPU convolutions of this shape run fastest
        (measured in ``benchmarks/bench_synthesis.py``). Inputs are converted on the way in.
        """
        out = copy.deepcopy(self)
        out.core = nn.Module()
        for layer in range(NUM_LAYERS):
            out.core.add_module(f"layer{layer}", getattr(self.core, f"layer{layer}").fuse())
        out.eval().requires_grad_(False)
        return out.set_kernels(memory_format="channels_last")

    def set_kernels(self, pointwise: str | None = None,
                    memory_format: str | None = None) -> CompactStack:
        """Choose how the stack computes; the function stays the same (to float rounding).

        Args:
            pointwise: ``"conv"`` (grouped ``F.conv2d``) or ``"matmul"`` (one batched
                matrix product, :func:`~v4compact.models.nets.layers.grouped_pointwise`) for the
                grouped 1x1 layers; ``None`` keeps the current choice.
            memory_format: ``"contiguous"`` or ``"channels_last"``: parameters are moved
                to it and inputs converted to it; ``None`` keeps the current one.

        Returns:
            ``self``. :attr:`kernels` reports the choice.
        """
        if pointwise is not None:
            if pointwise not in KERNEL_CHOICES["pointwise"]:
                raise InvalidInputError(f"pointwise kernel {pointwise!r}: use one of "
                                        f"{', '.join(KERNEL_CHOICES['pointwise'])}")
            for layer in range(1, NUM_LAYERS):
                getattr(self.core, f"layer{layer}").pointwise_impl = pointwise
        if memory_format is not None:
            if memory_format not in KERNEL_CHOICES["memory_format"]:
                raise InvalidInputError(f"memory format {memory_format!r}: use one of "
                                        f"{', '.join(KERNEL_CHOICES['memory_format'])}")
            fmt = _MEMORY_FORMATS[memory_format]
            self.to(memory_format=fmt)
            self.memory_format = fmt
        return self

    @property
    def kernels(self) -> dict[str, str]:
        """The current :meth:`set_kernels` choice (``memory_format`` ``"as given"`` when the
        inputs are not converted)."""
        names = {fmt: name for name, fmt in _MEMORY_FORMATS.items()}
        return {"pointwise": self.core.layer1.pointwise_impl,
                "memory_format": names.get(self.memory_format, "as given")}

    def _input(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        fmt = self.memory_format
        if x.ndim == 4 and x.shape[1] == IN_CHANNELS:
            return (x if fmt is None else x.contiguous(memory_format=fmt)), False
        if x.ndim == 5 and x.shape[1:3] == (self.num_models, IN_CHANNELS):
            x = x.reshape(x.shape[0], -1, *x.shape[3:])
            return (x if fmt is None else x.contiguous(memory_format=fmt)), True
        raise InvalidInputError(
            f"stack input must be re-centred images (N, 3, H, W) shared by all models or "
            f"(N, {self.num_models}, 3, H, W), one per model; got {tuple(x.shape)}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Responses of every model.

        Args:
            x: re-centred float images ``(N, 3, 112, 112)`` seen by every model, or
                ``(N, K, 3, 112, 112)``, image ``[n, k]`` for model k.

        Returns:
            ``(N, K)``: column k is model k's output (z-scored units for distilled models).
        """
        y = self.features(x)
        n = y.shape[0]
        y = y.view(n, self.num_models, self.widths[-1], READOUT_SIZE, READOUT_SIZE)
        flat = y.permute(0, 1, 3, 4, 2).reshape(n, self.num_models, self.readout_weight.shape[1])
        return torch.einsum("nkd,kd->nk", flat, self.readout_weight) + self.readout_bias

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Layer-4 maps of every model: ``(N, K*W4, 28, 28)`` (model k: channels
        ``k*W4 .. (k+1)*W4``)."""
        x, per_model = self._input(x)
        for layer in range(NUM_LAYERS):
            x = self._block(layer, x, per_model)
        return x

    def forward_to(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """Maps of every model at one stage (``"layerK"`` or ``"layerK.depthwise"``).

        Returns:
            ``(N, K, C, H, W)``: model k's map at ``[:, k]`` (padded channels are zero).
        """
        last, depthwise = parse_stage(stage)
        x, per_model = self._input(x)
        for layer in range(last + 1):
            if layer == last and depthwise:
                x = getattr(self.core, f"layer{layer}").forward_depthwise(x)
                mask = getattr(self, f"mask{layer - 1}")
                x = x if mask is None else x * mask[:, None, None]
                break
            x = self._block(layer, x, per_model)
        return x.view(x.shape[0], self.num_models, -1, *x.shape[2:])

    def extra_repr(self) -> str:
        return (f"num_models={self.num_models}, widths={self.widths}, "
                f"masks={self.mask0 is not None}")
