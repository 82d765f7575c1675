"""Composable synthesis objectives (lucent style).

An :class:`Objective` maps a :class:`RenderContext` (a model and one batch of re-centred
images) to a **per-image score**, a float tensor ``(N,)``. The optimizer maximizes the sum
of the scores, so every image follows the gradient of its own score: a batch can hold many
neurons times many random starts, each image pulled towards its own neuron. Objectives
combine with ``+``, ``-``, unary ``-`` and ``*`` / ``/`` by numbers::

    obj = neuron("201025/2") - 0.1 * channel("layer2", 0)
    obj = minimize(neuron(5))

The building blocks:

* :func:`neuron` — one output column of a compact, shared or population model, chosen by
  column index or neuron id; a sequence gives one target per image.
* :func:`channel` — one channel of any layer of ``model.forward_to`` (mean over space, or
  the value at the centre).
* :func:`diversity` — pushes the images of a batch (or of each group) apart.
* :func:`maximize` / :func:`minimize` — explicit sign.

Regularising objectives (total variation) live in :mod:`v4compact.synthesis.regularizers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import InvalidInputError, UnknownNeuronError

__all__ = [
    "Objective",
    "RenderContext",
    "channel",
    "diversity",
    "maximize",
    "minimize",
    "neuron",
    "resolve_columns",
]


class RenderContext:
    """A model and one batch of images, with the model's outputs cached per layer.

    Args:
        model: a v4compact model (``forward`` on re-centred ``(N, 3, 112, 112)`` tensors,
            ``forward_to(x, layer)`` for layer maps).
        images: float tensor ``(N, 3, H, W)``, re-centred pixels (0-255 minus the mean).
    """

    def __init__(self, model: torch.nn.Module, images: torch.Tensor):
        self.model = model
        self.images = images
        self._cache: dict = {}

    @property
    def num_images(self) -> int:
        """Batch size N."""
        return int(self.images.shape[0])

    def output(self) -> torch.Tensor:
        """Model output ``(N, num_outputs)`` (computed once per context)."""
        if "output" not in self._cache:
            out = self.model(self.images)
            self._cache["output"] = out.reshape(out.shape[0], -1)
        return self._cache["output"]

    def responses_at(self, columns: torch.Tensor) -> torch.Tensor:
        """Each image's output at its own column: ``columns`` long ``(N,)`` -> ``(N,)``.

        A model with ``forward_columns(x, columns)`` (e.g.
        :class:`~v4compact.synthesis.routing.RoutedModels`) computes only those responses,
        so a batch of many neurons costs one model per image instead of all of them.
        """
        forward_columns = getattr(self.model, "forward_columns", None)
        if forward_columns is None or "output" in self._cache:
            return self.output().gather(1, columns[:, None])[:, 0]
        key = ("columns", tuple(columns.tolist()))
        if key not in self._cache:
            self._cache[key] = forward_columns(self.images, columns)
        return self._cache[key]

    def layer(self, name: str) -> torch.Tensor:
        """Feature map ``(N, C, H, W)`` of a layer; ``"input"`` is the re-centred image."""
        if name == "input":
            return self.images
        if name == "output":
            return self.output()[:, :, None, None]
        if name not in self._cache:
            forward_to = getattr(self.model, "forward_to", None)
            if forward_to is None:
                raise InvalidInputError(
                    f"model {type(self.model).__name__} has no forward_to(); layer objectives "
                    "need a v4compact model"
                )
            names = getattr(self.model, "layer_names", None)
            if names is not None and name not in names:
                raise InvalidInputError(
                    f"unknown layer {name!r}; choose one of {', '.join(names)}"
                )
            self._cache[name] = forward_to(self.images, name)
        return self._cache[name]


ScoreFn = Callable[[RenderContext], torch.Tensor]


class Objective:
    """A per-image score to maximize; combine with ``+ - *`` and ``/`` by numbers.

    Args:
        fn: ``fn(context) -> Tensor (N,)``, higher is better.
        description: human-readable formula (goes into provenance).
        targets: for neuron objectives, the output column(s) whose response the result
            reports (int, or a list with one column per image); kept through combinations.
    """

    def __init__(self, fn: ScoreFn, description: str, targets=None):
        self.fn = fn
        self.description = description
        self.targets = targets

    def __call__(self, context: RenderContext) -> torch.Tensor:
        score = self.fn(context)
        if score.ndim == 0:
            score = score.expand(context.num_images)
        return score

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    # --- algebra -------------------------------------------------------------------------
    def _combine(self, other, op: str) -> Objective:
        if isinstance(other, Objective):
            a, b = self, other
            targets = self.targets if self.targets is not None else other.targets
            if op == "+":
                return Objective(lambda c: a(c) + b(c), f"{a.description} + {b.description}",
                                 targets)
            return Objective(lambda c: a(c) - b(c), f"{a.description} - ({b.description})",
                             targets)
        if isinstance(other, int | float):
            value = float(other)
            sign = 1.0 if op == "+" else -1.0
            return Objective(lambda c: self(c) + sign * value,
                             f"{self.description} {op} {value:g}", self.targets)
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, "+")

    def __radd__(self, other):
        if isinstance(other, int | float) and other == 0:  # so sum([...]) works
            return self
        return self._combine(other, "+")

    def __sub__(self, other):
        return self._combine(other, "-")

    def __rsub__(self, other):
        return (-self)._combine(other, "+")

    def __neg__(self) -> Objective:
        return Objective(lambda c: -self(c), f"-({self.description})", self.targets)

    def __mul__(self, other):
        if not isinstance(other, int | float):
            return NotImplemented
        value = float(other)
        return Objective(lambda c: value * self(c), f"{value:g}*({self.description})",
                         self.targets)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, int | float):
            return NotImplemented
        return self * (1.0 / float(other))


def resolve_columns(model: torch.nn.Module, neurons) -> list[int]:
    """Turn neuron ids / column indices into output column indices of ``model``.

    Args:
        model: a model with ``neuron_ids`` (one per output column) or ``num_outputs``.
        neurons: an int column, a ``"session/neuron"`` id, or a sequence of these.

    Returns:
        One column index per entry of ``neurons`` (a list even for a single neuron).

    Raises:
        UnknownNeuronError: an id the model does not have, or a column out of range.
    """
    items = [neurons] if isinstance(neurons, int | str) else list(neurons)
    ids = list(getattr(model, "neuron_ids", []) or [])
    num_outputs = int(getattr(model, "num_outputs", len(ids) or 0))
    index = {nid: i for i, nid in enumerate(ids)}
    cols = []
    for item in items:
        if isinstance(item, str) and not item.lstrip("-").isdigit():
            if item not in index:
                example = ids[0] if ids else "session/neuron"
                raise UnknownNeuronError(
                    f"model {getattr(model, 'model_id', type(model).__name__)} has no neuron "
                    f"{item!r}; use an id like {example!r} or a column 0..{num_outputs - 1}"
                )
            cols.append(index[item])
            continue
        col = int(item)
        if num_outputs and not 0 <= col < num_outputs:
            raise UnknownNeuronError(
                f"column {col} is out of range for a model with {num_outputs} outputs; "
                f"use 0..{num_outputs - 1}"
            )
        cols.append(col)
    return cols


def _describe_targets(targets) -> str:
    if isinstance(targets, int | str):
        return str(targets)
    uniq = list(dict.fromkeys(targets))
    if len(uniq) <= 4:
        return ",".join(str(t) for t in uniq) + f" ({len(targets)} images)"
    return f"{len(uniq)} neurons, {len(targets)} images"


def neuron(target: int | str | Sequence[int | str]) -> Objective:
    """The response of one output column of the model.

    Args:
        target: column index or neuron id (``"201025/2"``) — the same target for every
            image — or a sequence with one target per image (length N), so one batch can
            hold many neurons.

    Returns:
        An objective whose score is the model's output at the target column, per image.
    """
    per_image = not isinstance(target, int | str)
    if per_image and len(target) == 0:
        raise InvalidInputError("neuron() needs at least one target; pass a column or an id")
    cache: dict[int, torch.Tensor] = {}

    def fn(context: RenderContext) -> torch.Tensor:
        device = context.images.device
        key = id(context.model)
        if key not in cache:
            cols = resolve_columns(context.model, target)
            cache[key] = torch.as_tensor(cols, dtype=torch.long, device=device)
        cols = cache[key]
        if cols.device != device:
            cols = cache[key] = cols.to(device)
        n = context.num_images
        if per_image and len(cols) != n:
            raise InvalidInputError(
                f"neuron() got {len(cols)} per-image targets for a batch of {n} images; "
                "give one target per image"
            )
        return context.responses_at(cols if per_image else cols.expand(n))

    targets = list(target) if per_image else target
    return Objective(fn, f"neuron[{_describe_targets(targets)}]", targets)


def channel(layer: str, index: int | Sequence[int], where: str = "mean") -> Objective:
    """One channel (filter) of a layer, averaged over space or taken at the centre.

    Args:
        layer: a name of ``model.layer_names`` (e.g. ``"layer2"``, ``"layer1.depthwise"``),
            or ``"input"``.
        index: channel index, or one index per image.
        where: ``"mean"`` (spatial mean of the map) or ``"center"`` (the centre unit).

    Returns:
        An objective with the channel's activation per image.
    """
    if where not in ("mean", "center"):
        raise InvalidInputError(f"channel(where={where!r}) must be 'mean' or 'center'")
    per_image = not isinstance(index, int)

    def fn(context: RenderContext) -> torch.Tensor:
        maps = context.layer(layer)
        num_channels = maps.shape[1]
        idx = torch.as_tensor(index if per_image else [index], dtype=torch.long,
                              device=maps.device)
        if int(idx.min()) < 0 or int(idx.max()) >= num_channels:
            raise InvalidInputError(
                f"channel {index} is out of range for layer {layer!r} with {num_channels} "
                f"channels; use 0..{num_channels - 1}"
            )
        if per_image:
            if len(idx) != maps.shape[0]:
                raise InvalidInputError(
                    f"channel() got {len(idx)} per-image indices for {maps.shape[0]} images"
                )
            sel = maps[torch.arange(maps.shape[0], device=maps.device), idx]
        else:
            sel = maps[:, int(idx[0])]
        if where == "mean":
            return sel.mean(dim=(-2, -1))
        h, w = sel.shape[-2:]
        return sel[:, h // 2, w // 2]

    label = index if isinstance(index, int) else _describe_targets(list(index))
    return Objective(fn, f"channel[{layer}:{label},{where}]")


def diversity(layer: str = "layer1", groups: Sequence | None = None) -> Objective:
    """Negative mean cosine similarity of Gram matrices to the other images of a group.

    The lucent diversity term: each image's style (the Gram matrix of a layer's channels)
    is compared with the other images of the batch, or of its group (e.g. the images
    targeting the same neuron), and the score rewards being different.

    Args:
        layer: layer whose Gram matrix is compared (``"input"`` for pixels).
        groups: one label per image; images are compared only within their group.

    Returns:
        An objective in [-1, 1] per image (0 for an image alone in its group).
    """

    def fn(context: RenderContext) -> torch.Tensor:
        maps = context.layer(layer)
        n, c = maps.shape[:2]
        flat = maps.reshape(n, c, -1)
        gram = flat @ flat.transpose(1, 2) / flat.shape[-1]
        gram = torch.nn.functional.normalize(gram.reshape(n, -1), dim=1)
        sim = gram @ gram.T
        if groups is None:
            same = torch.ones(n, n, dtype=torch.bool, device=maps.device)
        else:
            if len(groups) != n:
                raise InvalidInputError(
                    f"diversity() got {len(groups)} group labels for {n} images"
                )
            labels = {g: i for i, g in enumerate(dict.fromkeys(groups))}
            lab = torch.as_tensor([labels[g] for g in groups], device=maps.device)
            same = lab[:, None] == lab[None, :]
        same = same & ~torch.eye(n, dtype=torch.bool, device=maps.device)
        count = same.sum(1).clamp(min=1)
        return -(sim * same).sum(1) / count

    return Objective(fn, f"diversity[{layer}]")


def maximize(objective: Objective) -> Objective:
    """The objective itself (for symmetry with :func:`minimize`)."""
    return objective


def minimize(objective: Objective) -> Objective:
    """Drive the objective down: the negated score, with the same reported targets."""
    return -objective
