"""A small user model (torch module) and its ONNX export, shared by the evaluation tests."""

from __future__ import annotations

import warnings

import pytest
import torch


class TinyFeatures(torch.nn.Module):
    """Re-centred (N, 3, 112, 112) images -> 128 features (a stand-in for a user's DNN layer)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 9, stride=4)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) / 10)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.relu(self.conv(x / 50.0))  # (N, 8, 26, 26)
        return torch.nn.functional.avg_pool2d(maps, 6).flatten(1)  # (N, 128)


@pytest.fixture(scope="session")
def tiny_model() -> TinyFeatures:
    return TinyFeatures(seed=0).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny_features.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            tiny_model, (torch.zeros(2, 3, 112, 112),), str(path), input_names=["images"],
            output_names=["features"], dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
            dynamo=False,
        )
    return path
