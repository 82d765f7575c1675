"""The compact models of V4 neurons as PyTorch modules, their files and their teachers.

In layers, each importing only those below it (``docs/architecture.md``):

- the facts and the zoo: :mod:`.arch` (the compact architecture), :mod:`.ids` (neuron ids,
  output units, resize policy), :mod:`.families` (model families: ids, files, fetch groups,
  registered loaders), :mod:`.zoo` (:func:`load_model`, :func:`list_models`,
  :func:`model_status`; it imports loaders by name, so any layer may call it);
- the predict path: :mod:`.inputs` (the one image path), :mod:`.runner` (run any model kind
  over images), :mod:`.calibration` (z-scored units -> spikes per 100 ms), :mod:`.predict`
  (:func:`v4compact.models.predict.predict`, also ``v4compact.predict``);
- :mod:`.nets`: the networks (:class:`V4Model`, :class:`CompactModel`,
  :class:`SharedCompactModel`, the Keras-exact layers, the trainable :class:`CompactStack`);
- :mod:`.engines`: fast inference (the fused :class:`CompactPopulation`, its tuning, the
  per-core thread pool);
- :mod:`.formats`: files (the release's five formats, ``.keras`` writing, ONNX /
  safetensors / TorchScript export, the families' loaders);
- :mod:`.teachers`: task-driven backbones and the ensemble model.

Names are imported lazily, so ``import v4compact.models`` does not read any file. The
modules' old flat names (``v4compact.models.registry``, ``.compact``, ``.population`` ...)
still import, with a DeprecationWarning naming the new place (:data:`MOVED`).
"""

from __future__ import annotations

from .._lazy import lazy_attributes, moved_modules

_LAZY = {
    "V4Model": "v4compact.models.nets.base",
    "CompactModel": "v4compact.models.nets.compact",
    "SharedCompactModel": "v4compact.models.nets.shared",
    "CompactStack": "v4compact.models.nets.stack",
    "CompactPopulation": "v4compact.models.engines.population",
    "as_image_batch": "v4compact.models.inputs",
    "to_model_input": "v4compact.models.inputs",
    "Calibration": "v4compact.models.calibration",
    "fit_calibration": "v4compact.models.calibration",
    "read_model_file": "v4compact.models.formats.keras_io",
    "list_models": "v4compact.models.zoo",
    "model_status": "v4compact.models.zoo",
    "load_model": "v4compact.models.zoo",
    "load_compact_model": "v4compact.models.formats.loaders",
    "load_shared_model": "v4compact.models.formats.loaders",
    "load_compact_population": "v4compact.models.formats.loaders",
    "export_model": "v4compact.models.formats.export",
    "load_exported": "v4compact.models.formats.export",
    "OnnxModel": "v4compact.models.formats.onnx",
    "Backbone": "v4compact.models.teachers.backbones",
    "load_backbone": "v4compact.models.teachers.backbones",
    "Ensemble": "v4compact.models.teachers.ensemble",
    "EnsembleMember": "v4compact.models.teachers.ensemble",
    "load_ensemble": "v4compact.models.teachers.ensemble",
    "load_ensemble_member": "v4compact.models.teachers.ensemble",
}

#: Old module name -> where it lives now (the flat layout before the subpackages).
MOVED = {
    **{f"v4compact.models.{name}": f"v4compact.models.nets.{name}"
       for name in ("base", "layers", "core", "readouts", "compact", "shared", "stack", "macs")},
    **{f"v4compact.models.{name}": f"v4compact.models.engines.{name}"
       for name in ("population", "fused", "tuning", "cores")},
    **{f"v4compact.models.{name}": f"v4compact.models.formats.{name}"
       for name in ("keras_io", "keras_writer", "export")},
    "v4compact.models.registry": "v4compact.models.formats.loaders",
    **{f"v4compact.models.{name}": f"v4compact.models.teachers.{name}"
       for name in ("backbones", "ensemble")},
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
moved_modules(MOVED)
