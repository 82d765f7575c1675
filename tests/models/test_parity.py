"""Every released model against Keras 3 (golden outputs from scripts/make_golden.py).

Criterion (issue 3): on the 10 reference images (6 natural, 4 random), every output column
of every model matches Keras within 1e-4 of the spread (std over the 10 images) of Keras'
outputs for that column, in float32. No TensorFlow is needed here.
"""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.models.inputs import to_model_input
from v4compact.models.zoo import load_model

from .conftest import relative_error

TOLERANCE = 1e-4


def test_golden_file_is_complete_and_small(golden):
    assert golden["compact_outputs"].shape == (219, 10)
    assert golden["shared_outputs"].shape == (56, 10, 219)
    assert str(golden["keras_version"]).startswith("3.")
    assert golden["images"].dtype == np.uint8


def test_golden_images_regenerate(golden_images, data_dir):
    """The inputs are reproducible: 4 seeded random images and the first 3 of two zips."""
    import io
    import zipfile

    from PIL import Image

    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(
        golden_images[6:], rng.integers(0, 256, size=(4, 112, 112, 3), dtype=np.uint8))
    for offset, session in ((0, 190923), (3, 201025)):
        zpath = data_dir / "data_V4_responses" / "images" / f"images_{session}.zip"
        with zipfile.ZipFile(zpath) as zf:
            members = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[:3]
            for i, member in enumerate(members):
                img = np.asarray(Image.open(io.BytesIO(zf.read(member))).convert("RGB"))
                # JPEG decoders may differ by a unit between library versions
                diff = np.abs(img.astype(int) - golden_images[offset + i].astype(int))
                assert diff.max() <= 2


@pytest.mark.slow
def test_every_compact_model_matches_keras(golden, golden_images):
    errors = {}
    for model_id, ref in zip(golden["compact_ids"], golden["compact_outputs"], strict=True):
        pred = load_model(str(model_id)).predict(golden_images, batch_size=10)
        assert pred.dtype == np.float32 and pred.shape == (10,)
        errors[str(model_id)] = float(relative_error(pred, ref))
    assert len(errors) == 219
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: {errors[worst]:.2e}"


@pytest.mark.slow
def test_every_shared_model_matches_keras(golden, golden_images):
    errors = {}
    for model_id, ref in zip(golden["shared_ids"], golden["shared_outputs"], strict=True):
        model = load_model(str(model_id))
        pred = model.predict(golden_images, batch_size=10)
        assert pred.shape == (10, 219)
        errors[str(model_id)] = float(relative_error(pred, ref).max())  # worst of 219 columns
    assert len(errors) == 56
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: {errors[worst]:.2e}"


def test_sample_models_match_keras_layer_by_layer(golden, golden_images):
    """Intermediate maps of the sample models (cropped windows) against Keras."""
    start, stop = (int(v) for v in golden["act_crop"])
    images = golden_images[golden["act_images"]]
    keys = [k for k in golden if k.startswith("act/")]
    model_ids = sorted({k.split("/", 1)[1].rsplit("/", 1)[0] for k in keys})
    assert len(model_ids) >= 3
    for model_id in model_ids:
        model = load_model(model_id)
        for k in range(5):
            ref = golden[f"act/{model_id}/layer{k}"]
            got = model.activations(images, f"layer{k}")[:, start:stop, start:stop, :]
            scale = ref.std() + 1e-12
            err = np.abs(got - ref).max() / scale
            assert err < TOLERANCE, f"{model_id} layer{k}: {err:.2e}"


def test_autograd_path_matches_keras_too(golden, golden_images):
    """forward() outside inference mode (unfolded batch norm, as used for gradients)."""
    import torch

    for model_id in ("compact/201025/10", "shared/linear_from_ensemble_model/10"):
        model = load_model(model_id)
        x = to_model_input(golden_images)
        with torch.no_grad():
            pred = model(x).numpy()
        if model_id.startswith("compact/"):
            ref = golden["compact_outputs"][list(golden["compact_ids"]).index(model_id)][:, None]
        else:
            ref = golden["shared_outputs"][list(golden["shared_ids"]).index(model_id)]
        assert relative_error(pred, ref).max() < TOLERANCE
