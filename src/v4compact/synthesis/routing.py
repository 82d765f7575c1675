"""Route each image of a batch through the model of its own target neuron only.

A fused population model computes all 219 neurons for every image, which is what
prediction wants; synthesis of 219 neurons x S starts only needs each image's own neuron,
so running every image through every model wastes a factor of 219.
:class:`RoutedModels` wraps per-neuron models (e.g. the 219 compact models) and offers
``forward_columns(x, columns)``, which the ``neuron`` objective uses when available.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import InvalidInputError

__all__ = ["RoutedModels"]


class RoutedModels(nn.Module):
    """Several models side by side; their output columns are concatenated.

    Args:
        models: v4compact models (each with ``neuron_ids`` / ``num_outputs``).
        model_id: id recorded in provenance (default ``"routed[<n> models]"``).

    Attributes:
        neuron_ids: concatenated ids of all members' outputs.
        num_outputs: total number of output columns.
    """

    def __init__(self, models: Sequence[nn.Module], model_id: str | None = None):
        super().__init__()
        if len(models) == 0:
            raise InvalidInputError("RoutedModels needs at least one model")
        self.members = nn.ModuleList(models)
        self.neuron_ids: list = []
        owner, local = [], []
        for m, model in enumerate(models):
            ids = list(getattr(model, "neuron_ids", []) or [])
            count = int(getattr(model, "num_outputs", len(ids) or 1))
            self.neuron_ids += ids or [f"{m}:{k}" for k in range(count)]
            owner += [m] * count
            local += list(range(count))
        self.num_outputs = len(self.neuron_ids)
        self.register_buffer("_owner", torch.tensor(owner), persistent=False)
        self.register_buffer("_local", torch.tensor(local), persistent=False)
        self.model_id = model_id or f"routed[{len(models)} models]"
        self.train(False)  # the members are inference models (batch norm frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All outputs for all images: ``(N, 3, 112, 112)`` re-centred -> ``(N, num_outputs)``."""
        outs = [m(x) for m in self.members]
        return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)

    def forward_columns(self, x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Each image's response at its own column, running only the owning model.

        Args:
            x: re-centred images ``(N, 3, 112, 112)``.
            columns: long ``(N,)`` output columns, one per image.

        Returns:
            ``(N,)`` responses (differentiable with respect to ``x``).
        """
        columns = columns.to(self._owner.device)
        owners = self._owner[columns]
        locals_ = self._local[columns]
        out = x.new_zeros(x.shape[0])
        for m in torch.unique(owners).tolist():
            idx = (owners == m).nonzero(as_tuple=True)[0]
            y = self.members[m](x[idx.to(x.device)])
            y = y.reshape(y.shape[0], -1)
            out = out.index_put((idx.to(x.device),),
                                y.gather(1, locals_[idx].to(x.device)[:, None])[:, 0])
        return out
