"""Write the Keras golden references that tests/models/test_parity.py compares against.

Run it in an environment with TensorFlow and Keras 3 (never a dependency of the package)::

    .venv-keras/bin/python scripts/make_golden.py [--data-dir ../shared/v4data]

It loads every released ``.keras`` file (219 compact models, 56 shared compact models) with
Keras itself and writes ``tests/golden/keras_outputs.npz`` holding:

- ``images``: uint8 ``(10, 112, 112, 3)``: the first 3 images of sessions 190923 and 201025
  (from the image zips) then 4 random images ``np.random.default_rng(0).integers(0, 256,
  (4, 112, 112, 3), dtype=np.uint8)``; ``image_sources`` names each one;
- ``compact_ids`` ``(219,)`` and ``compact_outputs`` float32 ``(219, 10)``;
- ``shared_ids`` ``(56,)`` and ``shared_outputs`` float32 ``(56, 10, 219)``;
- ``act/<model_id>/<layer>`` float32 ``(2, 16, 16, C)``: post-activation maps (pre-activation
  batch-norm outputs for the linear teacher) of layers 0-4 for a few sample models, on images
  0 and 6, cropped to rows/columns ``ACT_CROP`` of each map, for layer-by-layer debugging;
- ``tf_version``, ``keras_version``, ``numpy_version``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF 2.16's oneDNN CPU kernels crash (segmentation fault) on the shared models' 28x28
# depthwise "spatial_pool_stage"; the plain Eigen kernels run them fine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

IMAGE_MEAN = np.array([116.222, 109.270, 100.381], dtype=np.float32)
# The Keras venv does not install v4compact; its light, torch-free modules are imported from
# the source tree so the catalogue's constants are stated once.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from v4compact.data.catalog import MODEL_SESSIONS  # noqa: E402
from v4compact.models.zoo import SHARED_NUM_FILTERS as NUM_FILTERS  # noqa: E402
from v4compact.models.zoo import SHARED_TEACHERS as TEACHERS  # noqa: E402

ACT_MODELS = (
    "compact/190923/0",
    "compact/201025/10",
    "compact/210225/5",
    "shared/from_ensemble_model/10",
    "shared/linear_from_ensemble_model/10",
)
ACT_IMAGES = (0, 6)
ACT_CROP = slice(8, 24)


def golden_images(data_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The 10 reference images (uint8, (10, 112, 112, 3)) and a name for each."""
    from PIL import Image

    images, names = [], []
    for session in (190923, 201025):
        zpath = data_dir / "data_V4_responses" / "images" / f"images_{session}.zip"
        with zipfile.ZipFile(zpath) as zf:
            members = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))
            for member in members[:3]:
                with Image.open(io.BytesIO(zf.read(member))) as im:
                    images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
                names.append(f"{session}:{member}")
    rng = np.random.default_rng(0)
    images.extend(rng.integers(0, 256, size=(4, 112, 112, 3), dtype=np.uint8))
    names.extend(f"random:default_rng(0):{i}" for i in range(4))
    return np.stack(images), names


def model_files(data_dir: Path) -> list[tuple[str, Path]]:
    """(model id, .keras path) of every released model, compact first, in canonical order."""
    import csv

    counts = {}
    with open(data_dir / "sessions.csv") as fh:
        for row in csv.DictReader(fh):
            counts[int(row["session_id"])] = int(row["num_neurons"])
    out = []
    for session in MODEL_SESSIONS:
        for neuron in range(counts[session]):
            name = f"compact_model_{session}_neuron{neuron}.keras"
            out.append((f"compact/{session}/{neuron}",
                        data_dir / "data_compact_models" / "models_keras" / name))
    for teacher in TEACHERS:
        for nf in NUM_FILTERS:
            name = f"shared_compact_model_{nf}filters.keras"
            out.append((f"shared/{teacher}/{nf}",
                        data_dir / "data_shared_compact_models" / teacher / name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get(
        "V4COMPACT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "v4data"))
    parser.add_argument("--data-dir", type=Path, default=Path(default_data))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tests" / "golden"
                        / "keras_outputs.npz")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    images, names = golden_images(args.data_dir)
    x = images.astype(np.float32) - IMAGE_MEAN
    out: dict[str, np.ndarray] = {
        "images": images,
        "image_sources": np.array(names),
        "tf_version": np.array(tf.__version__),
        "keras_version": np.array(keras.__version__),
        "numpy_version": np.array(np.__version__),
        "tf_onednn_opts": np.array(os.environ["TF_ENABLE_ONEDNN_OPTS"]),
        "act_crop": np.array([ACT_CROP.start, ACT_CROP.stop]),
        "act_images": np.array(ACT_IMAGES),
    }
    compact_ids, compact_out, shared_ids, shared_out = [], [], [], []
    files = model_files(args.data_dir)
    start = time.perf_counter()
    for i, (model_id, path) in enumerate(files):
        model = keras.models.load_model(path, compile=False)
        y = np.asarray(model([x], training=False), dtype=np.float32)
        if model_id.startswith("compact/"):
            compact_ids.append(model_id)
            compact_out.append(y[:, 0])
        else:
            shared_ids.append(model_id)
            shared_out.append(y)
        if model_id in ACT_MODELS:
            names_by_layer = {}
            for k in range(5):
                layer_names = [lay.name for lay in model.layers]
                name = f"layer{k}_act" if f"layer{k}_act" in layer_names else f"layer{k}_bn"
                names_by_layer[f"layer{k}"] = name
            probe = keras.Model(model.inputs,
                                [model.get_layer(n).output for n in names_by_layer.values()])
            maps = probe([x[list(ACT_IMAGES)]], training=False)
            for layer, value in zip(names_by_layer, maps, strict=True):
                arr = np.asarray(value, dtype=np.float32)[:, ACT_CROP, ACT_CROP, :]
                out[f"act/{model_id}/{layer}"] = arr
        del model
        if (i + 1) % 25 == 0:
            print(f"{i + 1}/{len(files)} models, {time.perf_counter() - start:.0f} s", flush=True)
    out["compact_ids"] = np.array(compact_ids)
    out["compact_outputs"] = np.stack(compact_out).astype(np.float32)
    out["shared_ids"] = np.array(shared_ids)
    out["shared_outputs"] = np.stack(shared_out).astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.2f} MB) in {time.perf_counter() - start:.0f} s "
          f"with TF {tf.__version__}, Keras {keras.__version__}")


if __name__ == "__main__":
    main()
