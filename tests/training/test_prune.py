"""Pruning (SYSTEM.md §10): the criteria, the off-by-one conventions, the rebuild."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import v4compact
from v4compact.models.arch import MIN_FILTERS
from v4compact.models.inputs import to_model_input
from v4compact.models.nets.stack import CompactStack
from v4compact.training.prune import prune_stack, rebuild

NEURONS = ["201025/10", "201025/40"]


@pytest.fixture(scope="module")
def released() -> CompactStack:
    """Two released models ([50, 39, 3, 6, 3] and [48, 53, 3, 3, 3]) as one padded stack."""
    models = [v4compact.load_compact_model(*map(int, n.split("/"))) for n in NEURONS]
    return CompactStack.from_models(models).eval()


@pytest.fixture(scope="module")
def images(data_dir) -> np.ndarray:
    return np.asarray(v4compact.load_session(210305).images[:48])


@pytest.fixture(scope="module")
def teacher_responses(released, images) -> np.ndarray:
    """The released models' own outputs: a teacher they follow perfectly."""
    return v4compact.predict(released, images)


@pytest.fixture(scope="module")
def strict(released, images, teacher_responses):
    return prune_stack(released, images, teacher_responses)


def test_every_criterion_holds_and_every_layer_keeps_three(strict, released):
    pruned, details = strict
    assert pruned.mask0 is not None and released.mask0 is not None  # the input is unchanged
    for index, detail in enumerate(details):
        kept = [len(k) for k in detail["kept"]]
        original = [len(k) for k in released.kept_channels(index)]
        assert all(MIN_FILTERS <= k <= o for k, o in zip(kept, original, strict=True))
        assert detail["layer4_r2_fraction"] > 0.9
        for layer in range(4):
            assert detail[f"layer{layer}_variance_fraction"] >= 0.9
    assert any(len(k) < 50 for k in details[0]["kept"][:2])  # something was pruned


def test_the_kept_variance_is_what_a_direct_computation_gives(strict, released, images):
    """Layer 0's criterion, recomputed from the maps: pointwise output of layer 1 (no bias,
    centred per channel) with the kept layer-0 channels vs all of them."""
    pruned, details = strict
    for index in range(released.num_models):
        live = released.kept_channels(index)[0]
        kept = torch.as_tensor(details[index]["kept"][0])
        live_out = torch.as_tensor(details[index]["kept"][1])
        width, out_width = pruned.widths[0], pruned.widths[1]
        weight = pruned.core.layer1.pointwise.weight[
            index * out_width:(index + 1) * out_width, :, 0, 0][live_out]
        with torch.no_grad():
            depthwise = released.forward_to(to_model_input(images),
                                            "layer1.depthwise")[:, index]
            # layer 1's depthwise maps of all live layer-0 channels (pruning does not change
            # them), its pointwise rows of the kept layer-1 filters
            full = torch.einsum("oc,nchw->nohw", weight[:, live].double(),
                                depthwise[:, live].double())
            mask = torch.zeros(width, dtype=torch.bool)
            mask[kept] = True
            part = torch.einsum("oc,nchw->nohw", weight[:, mask].double(),
                                depthwise[:, mask].double())

        def variance(p: torch.Tensor) -> float:
            return float((p - p.mean((0, 2, 3), keepdim=True)).pow(2).sum())

        assert variance(part) / variance(full) == pytest.approx(
            details[index]["layer0_variance_fraction"], rel=1e-6)


def test_the_upstream_convention_drops_one_channel_more(released, images, teacher_responses,
                                                        strict):
    _, ours = strict
    _, theirs = prune_stack(released, images, teacher_responses, convention="upstream")
    for mine, upstream in zip(ours, theirs, strict=True):
        assert len(upstream["kept"][4]) == len(mine["kept"][4])  # layer 4: the same loop
        kept_3 = len(upstream["kept"][3])
        assert kept_3 == max(len(mine["kept"][3]) - 1, MIN_FILTERS)
        if kept_3 > MIN_FILTERS:
            assert upstream["layer3_variance_fraction"] < 0.9


def test_the_rebuilt_networks_equal_the_masked_stack(strict, images):
    pruned, details = strict
    models, error = rebuild(pruned, images)
    assert error < 1e-5  # of each student's output s.d., z-scored units
    for model, detail in zip(models, details, strict=True):
        assert model.num_filters == [len(k) for k in detail["kept"]]
        assert model.num_parameters < 30_000
