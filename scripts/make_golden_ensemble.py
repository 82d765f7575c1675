"""Write the Keras golden references of the ensemble model's parts.

Run it in an environment with TensorFlow and Keras 3 (never a dependency of the package)::

    .venv-keras/bin/python scripts/make_golden_ensemble.py [--data-dir ../shared/v4data]

Keras itself builds, initialises, saves and runs every network here; the tests
(``tests/models/test_ensemble.py``, ``tests/models/test_backbones.py``) load the saved files
with v4compact and compare with the outputs Keras computed. It writes to ``tests/golden/``:

- ``ensemble_member_small.keras``: an ensemble member with the layers, classes and names of
  ``ensemble_model_summary.txt`` (SYSTEM.md §6) at reduced width - 32 input channels on a
  14x14 grid, 32 filters, 16 inside the residual blocks, 10 outputs - so that the file stays
  small (the released members are 9 MB each); every variable is random (Glorot kernels from
  Keras' seeded initialiser, then random biases and batch-norm statistics), saved with
  ``model.save``.
- ``resnet50_conv4_block4.h5``: Keras' ResNet50 (``include_top=False, weights=None``) up to
  ``conv4_block4_out``, its weights saved with Keras' legacy HDF5 writer (the layout of
  ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``: ``layer_names``, one group per
  layer with ``weight_names``), then repacked with gzip by h5py. To keep the file small the
  kernels are sparse: Keras' Glorot kernels keep 0.5% of their entries (all of ``conv1``),
  scaled by sqrt(200) to keep the activations' scale; biases and batch-norm statistics are random;
  all values are rounded to few significant bits (see :func:`randomise`).
- ``ensemble_golden.npz``: ``member_features`` float32 ``(3, 14, 14, 32)``,
  ``member_embeddings`` ``(3, 7, 7, 32)`` and ``member_outputs`` ``(3, 10)`` computed by
  Keras; ``resnet_images`` uint8 ``(2, 112, 112, 3)`` (the first two images of session
  201025), ``resnet_features`` float32 ``(2, 14, 14, 64)``: Keras' ``conv4_block4_out``
  after upstream's preprocessing (Pillow bicubic 112 -> 224, ``preprocess_input`` "caffe"),
  every 16th channel; ``tf_version``, ``keras_version``.

``--full-member DIR`` also writes a full-size random member (``member_full.keras``, 9 MB,
1024 x 14 x 14 input) and its outputs (``member_full.npz``) to DIR, for a one-off check
outside the repository.
"""

from __future__ import annotations

import argparse
import io
import os
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF 2.16's oneDNN CPU kernels crash on some depthwise convolutions (see make_golden.py)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
SMALL_MEMBER = {"in_channels": 32, "width": 32, "inner_width": 16, "num_outputs": 10}
FULL_MEMBER = {"in_channels": 1024, "width": 512, "inner_width": 256, "num_outputs": 200}
RESNET_CUT = "conv4_block4_out"
KERNEL_DENSITY = 0.005
CHANNEL_STEP = 16


def build_member(keras, in_channels: int, width: int, inner_width: int, num_outputs: int,
                 num_blocks: int = 4, grid: int = 14):
    """An ensemble member as upstream defines it (layer names of ensemble_model_summary.txt)."""
    layers = keras.layers
    inputs = keras.Input((grid, grid, in_channels), name="feature_input")
    x = layers.Conv2D(width, 1, padding="same", name="initial_conv_layer")(inputs)
    x = layers.BatchNormalization(name="initial_bn")(x)
    x = layers.Activation("relu", name="initial_act")(x)
    x = layers.SeparableConv2D(width, 3, strides=2, padding="same",
                               name="initial_sepconv_layer")(x)
    for i in range(1, num_blocks + 1):
        y = layers.SeparableConv2D(inner_width, 3, padding="same", name=f"layer{i}_conv1")(x)
        y = layers.BatchNormalization(name=f"layer{i}_bn1")(y)
        y = layers.Activation("relu", name=f"layer{i}_act1")(y)
        y = layers.SeparableConv2D(inner_width, 3, padding="same", name=f"layer{i}_conv2")(y)
        y = layers.BatchNormalization(name=f"layer{i}_bn2")(y)
        y = layers.Activation("relu", name=f"layer{i}_act2")(y)
        y = layers.Conv2D(width, 1, padding="same", name=f"layer{i}_conv3")(y)
        x = layers.Add(name=f"layer{i}_add")([x, y])
    x = layers.Conv2D(num_outputs, 1, padding="same", name="mixing_stage")(x)
    x = layers.DepthwiseConv2D(grid // 2, padding="valid", name="spatial_pool_stage")(x)
    outputs = layers.Flatten(name="embeddings")(x)
    return keras.Model(inputs, outputs)


def randomise(model, rng: np.random.Generator, density: float = 1.0) -> None:
    """Random biases and batch-norm statistics; kernels kept (optionally made sparse).

    Every value is rounded to few significant bits (kernels to powers of two, the rest to
    multiples of 1/32) so that the saved files compress well; they remain arbitrary weights.
    """
    def power_of_two(value: np.ndarray) -> np.ndarray:
        magnitude = np.exp2(np.round(np.log2(np.maximum(np.abs(value), 1e-30))))
        return np.where(value == 0, 0.0, np.sign(value) * magnitude)

    for layer in model.layers:
        values = []
        for var in layer.weights:
            name = var.path.rsplit("/", 1)[-1]
            value = np.asarray(var.numpy())
            if "kernel" in name:
                if density < 1.0 and layer.name != "conv1_conv":
                    keep = rng.random(value.shape) < density
                    value = np.where(keep, value / np.sqrt(density), 0.0)
                value = power_of_two(value)
            elif name in ("bias", "beta", "moving_mean"):
                value = np.round(rng.normal(0.0, 0.1, value.shape) * 32) / 32
            elif name in ("gamma", "moving_variance"):
                value = np.round(rng.uniform(0.5, 1.5, value.shape) * 32) / 32
            values.append(value.astype(np.float32))
        if values:
            layer.set_weights(values)


def member_golden(keras, spec: dict, path: Path, num: int, seed: int) -> dict[str, np.ndarray]:
    keras.utils.set_random_seed(seed)
    model = build_member(keras, **spec)
    randomise(model, np.random.default_rng(seed))
    model.save(path)
    rng = np.random.default_rng(seed + 1)
    features = rng.standard_normal((num, 14, 14, spec["in_channels"])).astype(np.float32)
    embedder = keras.Model(model.input, model.get_layer("layer4_add").output)
    return {"member_features": features,
            "member_embeddings": embedder.predict(features, verbose=0),
            "member_outputs": model.predict(features, verbose=0)}


def first_images(data_dir: Path, session: int, count: int) -> np.ndarray:
    from PIL import Image

    zpath = data_dir / "data_V4_responses" / "images" / f"images_{session}.zip"
    with zipfile.ZipFile(zpath) as zf:
        members = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))[:count]
        return np.stack([np.asarray(Image.open(io.BytesIO(zf.read(m))).convert("RGB"))
                         for m in members])


def resnet_golden(keras, data_dir: Path, path: Path) -> dict[str, np.ndarray]:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    from PIL import Image

    keras.utils.set_random_seed(0)
    full = keras.applications.ResNet50(include_top=False, weights=None,
                                       input_shape=(224, 224, 3))
    model = keras.Model(full.input, full.get_layer(RESNET_CUT).output)
    randomise(model, np.random.default_rng(0), density=KERNEL_DENSITY)
    raw = path.with_suffix(".raw.h5")
    with h5py.File(raw, "w") as h5:
        legacy_h5_format.save_weights_to_hdf5_group(h5, model)
    repack_gzip(raw, path)
    raw.unlink()
    images = first_images(data_dir, 201025, 2)
    resized = np.stack([np.asarray(Image.fromarray(im).resize((224, 224), Image.BICUBIC))
                        for im in images])
    x = keras.applications.resnet50.preprocess_input(resized.astype(np.float32))
    features = model.predict(x, verbose=0)
    return {"resnet_images": images,
            "resnet_features": np.ascontiguousarray(features[..., ::CHANNEL_STEP])}


def repack_gzip(src: Path, dst: Path) -> None:
    """Copy an HDF5 file (groups, attributes, datasets) with gzip-compressed datasets and
    the compact object headers of the latest HDF5 format (small groups cost little)."""
    import h5py

    def copy(a, b) -> None:
        for key, value in a.attrs.items():
            b.attrs[key] = value
        for name, item in a.items():
            if isinstance(item, h5py.Group):
                copy(item, b.create_group(name))
            else:
                data = item[()]
                kwargs = {"compression": "gzip", "compression_opts": 9, "shuffle": True} \
                    if data.ndim else {}
                out = b.create_dataset(name, data=data, **kwargs)
                for key, value in item.attrs.items():
                    out.attrs[key] = value

    with h5py.File(src, "r") as a, h5py.File(dst, "w", libver="latest") as b:
        copy(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared"
                                                  / "v4data"))
    parser.add_argument("--full-member", default=None,
                        help="also write a full-size member and its outputs to this folder")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    GOLDEN.mkdir(parents=True, exist_ok=True)
    out = member_golden(keras, SMALL_MEMBER, GOLDEN / "ensemble_member_small.keras", 3, 0)
    out.update(resnet_golden(keras, Path(args.data_dir), GOLDEN / "resnet50_conv4_block4.h5"))
    out["tf_version"], out["keras_version"] = np.array(tf.__version__), np.array(keras.__version__)
    np.savez_compressed(GOLDEN / "ensemble_golden.npz", **out)
    if args.full_member:
        folder = Path(args.full_member)
        folder.mkdir(parents=True, exist_ok=True)
        full = member_golden(keras, FULL_MEMBER, folder / "member_full.keras", 4, 31490)
        np.savez(folder / "member_full.npz", **full)
    for name in ("ensemble_member_small.keras", "resnet50_conv4_block4.h5",
                 "ensemble_golden.npz"):
        print(f"{name}: {(GOLDEN / name).stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
