"""Backbones: ResNet50 from a Keras-format weights file equals Keras, torchvision-layout files
load by name, model cores are backbones, and missing weights say how to get them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import v4compact
from v4compact.errors import DataNotFoundError, InvalidInputError, UnknownModelError
from v4compact.models.teachers import trunks
from v4compact.models.teachers.backbones import load_backbone, resize_bicubic
from v4compact.models.teachers.trunks import (
    PretrainedWeights,
    ResNet50Trunk,
    VGG19Trunk,
    keras_to_trunk_state_dict,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def ensemble_golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "ensemble_golden.npz") as npz:
        return {name: npz[name] for name in npz.files}


def test_resnet50_from_keras_h5_equals_keras_at_conv4_block4_out(ensemble_golden):
    # Keras itself built, saved (legacy h5 layout) and ran this ResNet50 on two images
    # resized and preprocessed as upstream (scripts/make_golden_ensemble.py)
    backbone = load_backbone("resnet50", weights=GOLDEN / "resnet50_conv4_block4.h5")
    assert backbone.preprocessing == "caffe" and backbone.input_size == 224
    ours = backbone.features(ensemble_golden["resnet_images"])
    assert ours.shape == (2, 14, 14, 1024)
    ref = ensemble_golden["resnet_features"]  # every 16th channel
    error = np.abs(ours[..., ::16] - ref).max() / ref.std()
    assert error < 1e-4  # measured 1.4e-5 of the features' s.d.


def _random_state(trunk: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in trunk.state_dict().items():
        if value.dtype.is_floating_point:
            noise = torch.rand(value.shape, generator=generator)
            state[name] = noise + 0.5 if name.endswith(("running_var", "bn1.weight")) \
                else (noise - 0.5) * 0.2
        else:
            state[name] = value
    return state


def test_torchvision_layout_pth_loads_by_name(tmp_path):
    trunk = ResNet50Trunk("torchvision").eval()
    assert [len(getattr(trunk, f"layer{k}")) for k in (1, 2, 3)] == [3, 4, 4]
    assert not hasattr(trunk, "layer4")
    assert trunk.layer2[0].conv2.stride == (2, 2)  # v1.5: the stride sits on the 3x3
    state = _random_state(trunk, 0)
    trunk.load_state_dict(state)
    full = dict(state)  # a whole torchvision checkpoint also holds later layers and fc
    full["layer3.4.conv1.weight"] = torch.zeros(256, 1024, 1, 1)
    full["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "resnet50-random.pth"
    torch.save(full, path)
    backbone = load_backbone(f"resnet50:{path}")
    assert backbone.preprocessing == "torchvision"
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        assert torch.allclose(backbone(x), trunk(x), atol=1e-5)
    with pytest.raises(v4compact.ModelFormatError, match="missing"):
        torch.save({"conv1.weight": state["conv1.weight"]}, tmp_path / "bad.pth")
        load_backbone("resnet50", weights=tmp_path / "bad.pth")


def test_vgg19_block4_pool_and_keras_names():
    trunk = VGG19Trunk().eval()
    assert len(trunk.features) == 28  # torchvision's features[:28] ends with block4's pool
    assert trunk.out_channels == 512
    small = VGG19Trunk("block2_pool").eval()
    keras = {}
    for index, name in ((0, "block1_conv1"), (2, "block1_conv2"), (5, "block2_conv1"),
                        (7, "block2_conv2")):
        conv = small.features[index]
        keras[name] = {"kernel": conv.weight.detach().numpy().transpose(2, 3, 1, 0),
                       "bias": conv.bias.detach().numpy()}
    state = keras_to_trunk_state_dict(keras, VGG19Trunk("block2_pool"))
    for name, value in small.state_dict().items():
        assert torch.equal(state[name], value)


def test_model_core_is_a_backbone(data_dir):
    images = np.asarray(v4compact.load_session(201025).images[:3])
    backbone = load_backbone("shared/from_ensemble_model/10:layer3")
    assert backbone.output_shape == (100, 28, 28)
    assert backbone.cache_key.startswith("shared/from_ensemble_model/10|layer3|recentred")
    model = v4compact.load_model("shared/from_ensemble_model/10")
    assert np.array_equal(backbone.features(images), model.activations(images, "layer3"))
    pooled = load_backbone("shared/from_ensemble_model/10:layer3", pool_to=7)
    assert pooled.features(images).shape == (3, 7, 7, 100)


def test_bicubic_resize_is_pillows():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, 112, 112, 3)).astype(np.float32)
    ours = resize_bicubic(image, 224)[0]
    pillow = np.stack([np.asarray(Image.fromarray(image[0, ..., c], mode="F")
                                  .resize((224, 224), Image.BICUBIC)) for c in range(3)], -1)
    assert np.abs(ours - pillow).max() < 1e-3


def test_backbone_errors(monkeypatch, tmp_path):
    with pytest.raises(UnknownModelError, match="layer3"):
        load_backbone("shared/from_ensemble_model/200")
    with pytest.raises(InvalidInputError, match="conv4_block4_out"):
        ResNet50Trunk(layer="conv4_block7_out")
    with pytest.raises(DataNotFoundError, match="neither a file"):
        load_backbone("resnet50", weights=tmp_path / "none.h5")
    # offline and not cached: one line naming the file, where to put it and the URL
    unreachable = PretrainedWeights("resnet50-none.pth", (tmp_path / "absent.pth").as_uri(),
                                    "torchvision")
    monkeypatch.setitem(trunks.ARCHITECTURES["resnet50"]["weights"], "torchvision",
                        unreachable)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DataNotFoundError, match="resnet50-none.pth is not in .* download") as err:
        load_backbone("resnet50:torchvision")
    assert "\n" not in str(err.value)
