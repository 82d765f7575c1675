"""The compact models of V4 neurons as PyTorch modules.

- :mod:`.layers`: TensorFlow-"same" convolutions, Keras-order separable blocks;
- :mod:`.base`: :class:`V4Model`, the common interface (``predict``, ``activations``,
  ``forward_to``, ``layer_names``, ``neuron_ids`` ...);
- :mod:`.compact`, :mod:`.shared`: :class:`CompactModel` (one neuron) and
  :class:`SharedCompactModel` (219 neurons, factorized readout);
- :mod:`.keras_io`: readers of the released ``.keras``, ``.weights.h5``, ``.npy``, ``.pt``
  and ``.h5`` files (no TensorFlow);
- :mod:`.inputs`: user images -> ``(N, 112, 112, 3)`` arrays;
- :mod:`.registry`: model ids, :func:`list_models`, :func:`load_model` and friends.

Names are imported lazily, so ``import v4compact.models`` does not read any file.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_LAZY = {
    "V4Model": "v4compact.models.base",
    "CompactModel": "v4compact.models.compact",
    "SharedCompactModel": "v4compact.models.shared",
    "as_image_batch": "v4compact.models.inputs",
    "read_model_file": "v4compact.models.keras_io",
    "list_models": "v4compact.models.registry",
    "load_model": "v4compact.models.registry",
    "load_compact_model": "v4compact.models.registry",
    "load_shared_model": "v4compact.models.registry",
    "load_compact_population": "v4compact.models.registry",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
