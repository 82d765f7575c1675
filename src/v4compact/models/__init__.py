"""The compact models of V4 neurons as PyTorch modules.

- :mod:`.layers`: TensorFlow-"same" convolutions, Keras-order separable blocks;
- :mod:`.base`: :class:`V4Model`, the common interface (``predict``, ``activations``,
  ``forward_to``, ``layer_names``, ``neuron_ids`` ...);
- :mod:`.compact`, :mod:`.shared`: :class:`CompactModel` (one neuron) and
  :class:`SharedCompactModel` (219 neurons, factorized readout);
- :mod:`.keras_io`: readers of the released ``.keras``, ``.weights.h5``, ``.npy``, ``.pt``
  and ``.h5`` files (no TensorFlow);
- :mod:`.inputs`: the one image path, user images -> ``(N, 112, 112, 3)`` pixels
  (:func:`as_image_batch`) -> re-centred tensors (:func:`to_model_input`);
- :mod:`.predict`: the one predict path for every model kind
  (:func:`v4compact.models.predict.predict`, also ``v4compact.predict``; not a lazy name
  here, since the submodule of that name would shadow it);
- :mod:`.calibration`: z-scored outputs -> spikes per 100 ms (:func:`fit_calibration`);
- :mod:`.zoo`: the model families (ids, files, fetch groups, neuron ids, input and units),
  :func:`list_models`, :func:`model_status`, :func:`load_model`;
- :mod:`.backbones`: task-driven feature extractors (ResNet50, VGG19, model cores);
- :mod:`.ensemble`: the ensemble model's members and their ensemble (the teacher);
- :mod:`.registry`: the families' loaders (:func:`load_compact_model` and friends).

Names are imported lazily, so ``import v4compact.models`` does not read any file.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_LAZY = {
    "V4Model": "v4compact.models.base",
    "CompactModel": "v4compact.models.compact",
    "SharedCompactModel": "v4compact.models.shared",
    "as_image_batch": "v4compact.models.inputs",
    "to_model_input": "v4compact.models.inputs",
    "Calibration": "v4compact.models.calibration",
    "fit_calibration": "v4compact.models.calibration",
    "read_model_file": "v4compact.models.keras_io",
    "list_models": "v4compact.models.zoo",
    "model_status": "v4compact.models.zoo",
    "load_model": "v4compact.models.zoo",
    "load_compact_model": "v4compact.models.registry",
    "load_shared_model": "v4compact.models.registry",
    "load_compact_population": "v4compact.models.registry",
    "Backbone": "v4compact.models.backbones",
    "load_backbone": "v4compact.models.backbones",
    "Ensemble": "v4compact.models.ensemble",
    "EnsembleMember": "v4compact.models.ensemble",
    "load_ensemble": "v4compact.models.ensemble",
    "load_ensemble_member": "v4compact.models.ensemble",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
