"""Export any model to ONNX, safetensors or TorchScript, and load the files back.

Every exported model takes what :meth:`V4Model.forward` takes — re-centred float32 images
``(N, 3, 112, 112)`` (pixels 0-255 minus :data:`v4compact.images.IMAGE_MEAN`), any ``N`` —
and returns ``(N, num_outputs)``. The model id and the neuron id of each output column travel
with the file (ONNX metadata properties, safetensors header metadata, TorchScript extra
files), so a reloaded model still knows what its columns are.

- ``"safetensors"``: the weights plus the architecture in the header; reloads as the same
  :class:`~v4compact.models.nets.base.V4Model` class (a population stores each member's weights
  under ``"<session>/<neuron>/<name>"`` and is re-fused on load). Needs ``safetensors``.
- ``"onnx"``: a traced graph (opset 17) with a dynamic batch axis, input ``"images"``,
  output ``"responses"``; :func:`load_exported` wraps it in an onnxruntime session. Needs
  ``onnx`` and ``onnxruntime`` (the ``export`` extra).
- ``"torchscript"``: a traced module for ``torch.jit.load`` (no v4compact needed to run it).
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from ...errors import InvalidInputError, ModelFormatError
from ..nets.base import V4Model
from .onnx import OnnxModel

FORMATS: tuple[str, ...] = ("onnx", "safetensors", "torchscript")
#: File suffix of each format (used when a path has none and to guess the format on load).
SUFFIXES = {"onnx": ".onnx", "safetensors": ".safetensors", "torchscript": ".pt"}
_ONNX_OPSET = 17


def export_model(model_or_id, path: str | os.PathLike, format: str = "onnx",
                 data_dir: str | os.PathLike | None = None) -> Path:
    """Write a model to a file that reloads without the release data.

    Args:
        model_or_id: a :class:`~v4compact.models.nets.base.V4Model` or a model id such as
            ``"compact/201025/10"``, ``"shared/from_ensemble_model/200"`` or ``"population"``.
        path: output file; the format's suffix (``.onnx``, ``.safetensors``, ``.pt``) is
            added when the path has no suffix.
        format: ``"onnx"``, ``"safetensors"`` or ``"torchscript"``.
        data_dir: data directory used to load a model given by id.

    Returns:
        The path written.

    Raises:
        InvalidInputError: an unknown format, or an object that is not a model.
        UnknownModelError, DataNotFoundError: as :func:`v4compact.load_model`.
    """
    if format not in FORMATS:
        raise InvalidInputError(f"unknown export format {format!r}; choose one of "
                                f"{', '.join(FORMATS)}")
    model = _as_model(model_or_id, data_dir)
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(SUFFIXES[format])
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = {"onnx": _write_onnx, "safetensors": _write_safetensors,
              "torchscript": _write_torchscript}[format]
    with _cpu_eval(model):
        writer(model, path)
    return path


def load_exported(path: str | os.PathLike, format: str | None = None,
                  device: torch.device | str = "cpu"):
    """Load a file written by :func:`export_model`.

    Args:
        path: the exported file.
        format: ``"onnx"``, ``"safetensors"`` or ``"torchscript"``; guessed from the suffix
            when ``None``.
        device: torch device for safetensors and TorchScript models (ONNX runs on CPU).

    Returns:
        safetensors: the :class:`V4Model` (same class as exported); TorchScript: a
        ``torch.jit.ScriptModule`` with ``model_id`` and ``neuron_ids`` attributes added;
        ONNX: an :class:`OnnxModel`. Each maps re-centred ``(N, 3, 112, 112)`` float32
        images to ``(N, num_outputs)``.

    Raises:
        DataNotFoundError: the file does not exist.
        ModelFormatError: the file is not an export of this package.
    """
    from ...errors import DataNotFoundError

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"exported model {path} not found; write it with "
                                "v4compact export MODEL_ID --out PATH")
    if format is None:
        guesses = [f for f, s in SUFFIXES.items() if path.suffix == s]
        if not guesses:
            raise InvalidInputError(f"cannot tell the format of {path.name}; pass format= one "
                                    f"of {', '.join(FORMATS)}")
        format = guesses[0]
    if format == "onnx":
        return OnnxModel(path)
    if format == "safetensors":
        return _read_safetensors(path).to(torch.device(device))
    if format == "torchscript":
        return _read_torchscript(path, device)
    raise InvalidInputError(f"unknown export format {format!r}; choose one of "
                            f"{', '.join(FORMATS)}")


# -- writers ---------------------------------------------------------------------------------
def _as_model(model_or_id, data_dir) -> V4Model:
    if isinstance(model_or_id, V4Model):
        return model_or_id
    if isinstance(model_or_id, str):
        from ..zoo import load_model

        return load_model(model_or_id, data_dir=data_dir)
    raise InvalidInputError(f"export needs a V4Model or a model id, got "
                            f"{type(model_or_id).__name__}")


@contextmanager
def _cpu_eval(model: V4Model):
    """Export from CPU in inference mode; a population runs its whole batch in one piece
    (its CPU micro-batching is a Python loop that a trace would freeze)."""
    device, training = model.device, model.training
    micro = getattr(model, "micro_batch", None)
    model.to("cpu").eval()
    if hasattr(model, "micro_batch"):
        model.micro_batch = 1 << 30
    try:
        yield
    finally:
        if hasattr(model, "micro_batch"):
            model.micro_batch = micro
        model.to(device).train(training)


def _example() -> torch.Tensor:
    return torch.zeros(2, 3, 112, 112)


def _metadata(model: V4Model) -> dict[str, str]:
    return {"model_id": model.model_id, "neuron_ids": json.dumps(model.neuron_ids),
            "v4compact_class": type(model).__name__}


@contextmanager
def _quiet_trace():
    # tracing warns about Python ints taken from shapes (fixed here by design) and about
    # torch.jit being deprecated; both are expected for these static graphs
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        yield


def _write_onnx(model: V4Model, path: Path) -> None:
    try:
        import onnx
    except ImportError:
        raise ModelFormatError("ONNX export needs onnx; install it with: "
                               "pip install 'v4compact[export]'") from None
    with _quiet_trace(), torch.no_grad():
        torch.onnx.export(model, (_example(),), str(path), input_names=["images"],
                          output_names=["responses"], opset_version=_ONNX_OPSET,
                          dynamic_axes={"images": {0: "batch"}, "responses": {0: "batch"}},
                          dynamo=False)
    proto = onnx.load(str(path))
    for key, value in _metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _write_torchscript(model: V4Model, path: Path) -> None:
    with _quiet_trace(), torch.no_grad():
        traced = torch.jit.trace(model, _example(), check_trace=False)
    extra = {"v4compact.json": json.dumps(_metadata(model))}
    traced.save(str(path), _extra_files=extra)


def _read_torchscript(path: Path, device) -> torch.nn.Module:
    extra = {"v4compact.json": ""}
    try:
        with _quiet_trace():
            module = torch.jit.load(str(path), map_location=torch.device(device),
                                    _extra_files=extra)
    except RuntimeError as err:
        raise ModelFormatError(f"{path.name} is not a TorchScript model ({err.__class__.__name__});"
                               " export it again with format='torchscript'") from None
    meta = json.loads(extra["v4compact.json"] or "{}")
    module.model_id = meta.get("model_id", "")
    module.neuron_ids = json.loads(meta.get("neuron_ids", "[]"))
    return module


def _write_safetensors(model: V4Model, path: Path) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ModelFormatError("safetensors export needs safetensors; install it with: "
                               "pip install 'v4compact[export]'") from None
    from ..engines.population import CompactPopulation
    from ..nets.compact import CompactModel
    from ..nets.shared import SharedCompactModel

    meta = _metadata(model)
    if isinstance(model, CompactPopulation):
        members = model.to_compact_models()
        tensors = {f"{m.neuron_ids[0]}/{name}": t for m in members
                   for name, t in m.state_dict().items()}
        meta["members"] = json.dumps([
            {"neuron_id": m.neuron_ids[0], "num_filters": m.num_filters, "bn_eps": m.bn_eps}
            for m in members])
    elif isinstance(model, CompactModel | SharedCompactModel):
        tensors = dict(model.state_dict())
        meta.update(num_filters=json.dumps(model.num_filters), bn_eps=repr(model.bn_eps),
                    relu=json.dumps(model.relu))
    else:
        raise InvalidInputError(f"safetensors export supports compact, shared and population "
                                f"models, not {type(model).__name__}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata=meta)


def _read_safetensors(path: Path) -> V4Model:
    from safetensors import SafetensorError, safe_open

    from ..engines.population import CompactPopulation
    from ..nets.compact import CompactModel
    from ..nets.shared import SharedCompactModel

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ModelFormatError(f"{path.name} is not a safetensors file ({err}); "
                               "export it again with format='safetensors'") from None
    kind = meta.get("v4compact_class")
    neuron_ids = json.loads(meta.get("neuron_ids", "[]"))
    try:
        if kind == "CompactPopulation":
            members = []
            for info in json.loads(meta["members"]):
                nid = info["neuron_id"]
                member = CompactModel(info["num_filters"], info["bn_eps"],
                                      model_id=f"compact/{nid}", neuron_id=nid)
                prefix = f"{nid}/"
                member.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                        if k.startswith(prefix)})
                members.append(member)
            return CompactPopulation(members)
        filters = json.loads(meta["num_filters"])
        eps, relu = float(meta["bn_eps"]), json.loads(meta["relu"])
        if kind == "CompactModel":
            model = CompactModel(filters, eps, relu, meta["model_id"], neuron_ids[0])
        elif kind == "SharedCompactModel":
            model = SharedCompactModel(filters, len(neuron_ids), eps, relu, meta["model_id"],
                                       neuron_ids)
        else:
            raise KeyError("v4compact_class")
        model.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ModelFormatError(f"{path.name} is not a v4compact safetensors export "
                               f"({type(err).__name__}: {detail}); export it again") from None
    return model.eval()
