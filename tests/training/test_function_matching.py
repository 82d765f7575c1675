"""Patient, consistent distillation: the hold-out rule, function matching (fresh teacher
labels on the mixed images), the learning-rate schedule, the plan, and exact resume."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from v4compact.errors import InvalidInputError
from v4compact.training import distill as distill_module
from v4compact.training import runtime as rt
from v4compact.training.augment import FunctionMatching
from v4compact.training.corpus import HOLDOUT_RULE, image_loader, open_corpus
from v4compact.training.distill import (
    PRESETS,
    TIMING_COLUMNS,
    DistillConfig,
    distill,
)
from v4compact.training.plan import MIN_STEPS, plan_distillation
from v4compact.training.teachers import Teacher

TINY_PATIENT = DistillConfig(preset="test", num_filters=(3, 4, 3, 3, 3), batch_size=8,
                             passes=2, holdout_images=8, num_workers=0, eval_every=2,
                             learning_rate=1e-3, function_matching=True, mix="both",
                             lr_schedule="cosine", warmup_fraction=0.25,
                             smooth_every_images=30)


@pytest.mark.parametrize(("num_images", "held"), [(200, 40), (1_200, 200), (12_000, 1_200),
                                                  (12_000_000, 5_000)])
def test_holdout_rule_at_every_corpus_size(num_images, held):
    assert HOLDOUT_RULE.count(num_images) == held
    assert held <= 0.2 * num_images  # never more than a fifth of the corpus
    for name in ("small-corpus", "patient"):
        assert PRESETS[name].holdout_count(num_images) == held
    assert PRESETS["upstream"].holdout_count(num_images) == 5_000  # upstream: as published


def test_holdout_rule_keeps_a_training_image_in_tiny_corpora():
    assert [HOLDOUT_RULE.count(n) for n in (0, 1, 2, 10)] == [0, 0, 0, 2]


def test_function_matching_draws_are_seeded_per_image_and_pass(corpus):
    shard = corpus.shards[0]
    pool = corpus.indices[0]
    augment = FunctionMatching(mix="mixup", seed=3)
    index = int(pool[0])
    first = augment.augment(shard.image, pool, 0, 0, index)
    assert first.dtype == np.uint8 and first.shape == (112, 112, 3)
    np.testing.assert_array_equal(first, augment.augment(shard.image, pool, 0, 0, index))
    assert not np.array_equal(first, augment.augment(shard.image, pool, 1, 0, index))
    assert not np.array_equal(first, FunctionMatching(mix="mixup", seed=4)
                              .augment(shard.image, pool, 0, 0, index))
    draws = [augment.draw(pool, p, 0, index) for p in range(20)]
    assert all(d.partner in set(pool.tolist()) and d.partner != index for d in draws)
    assert all(d.mode == "mixup" and 0 <= d.lam <= 1 for d in draws)
    # the image is exactly the rounded mix of the two crops that the draw names
    draw = draws[0]
    rebuilt = augment.apply(draw, shard.image(index), shard.image(draw.partner))
    np.testing.assert_array_equal(rebuilt, first)
    cut = FunctionMatching(mix="cutmix", seed=3).draw(pool, 0, 0, index)
    top, left, height, width = cut.box
    assert cut.mode == "cutmix" and abs(cut.lam - (1 - height * width / 112**2)) < 1e-12


def test_function_matching_never_mixes_in_held_out_images(data_dir):
    corpus = open_corpus(data_dir / "data_V4_responses/images/images_201025.zip")
    held = set(range(1200)) - set(corpus.indices[0].tolist())  # 201025's held-out half
    assert len(held) == 600
    augment = FunctionMatching(seed=0)
    partners = {augment.draw(corpus.indices[0], 0, 0, int(i)).partner
                for i in corpus.indices[0][:200]}
    assert not partners & held


def test_bad_function_matching_settings_are_one_line():
    with pytest.raises(InvalidInputError, match="unknown mix 'blend'"):
        DistillConfig(function_matching=True, mix="blend").check()
    with pytest.raises(InvalidInputError, match="choose one"):
        DistillConfig(function_matching=True, augment=True).check()
    with pytest.raises(InvalidInputError, match="unknown lr_schedule"):
        DistillConfig(lr_schedule="step").check()


def test_cosine_schedule_warms_up_then_decays_to_zero():
    config = DistillConfig(learning_rate=1e-3, lr_schedule="cosine", warmup_fraction=0.1)
    rates = [config.lr_at(step, 100) for step in range(100)]
    np.testing.assert_allclose(rates[:10], 1e-3 * np.arange(1, 11) / 10)
    assert rates[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[-1] < 1e-6 and config.lr_at(100, 100) == 0.0
    assert DistillConfig().lr_at(57, 100) == 1e-4  # upstream: constant


def test_mixup_labels_come_from_the_teacher_on_the_mixed_image(tmp_path, corpus, teacher,
                                                               monkeypatch):
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(images: np.ndarray) -> np.ndarray:
        out = teacher(images)
        seen.append((np.array(images), out))
        return out

    labels = Teacher(recording, teacher.neuron_ids, "recorded " + teacher.spec)
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    original = distill_module._step

    def spy(stack, optimizer, parameters, images, targets, *args):
        steps.append((images.numpy().copy(), np.array(targets)))
        return original(stack, optimizer, parameters, images, targets, *args)

    monkeypatch.setattr(distill_module, "_step", spy)
    config = replace(TINY_PATIENT, mix="mixup", passes=1)
    distill(labels, corpus, tmp_path / "run", config, device="cpu")
    assert steps
    training = seen[-len(steps):]  # the hold-out's labels come first, from the cache
    originals = corpus.images()
    for (student_images, targets), (teacher_images, responses) in zip(steps, training,
                                                                       strict=True):
        # the student sees exactly the images the teacher labelled, and the targets are
        # the teacher's responses to them
        np.testing.assert_array_equal(student_images, teacher_images)
        np.testing.assert_array_equal(targets, responses)
        for image in student_images:  # mixed images, not corpus images
            assert not (originals == image).all(axis=(1, 2, 3)).any()
    # and not the mix of the teacher's labels of the two source images
    train, _ = corpus.split_holdout(config.holdout_count(len(corpus)), config.seed)
    augment = config.augmentation()
    shard, pool = corpus.shards[0], train.indices[0]
    batch = next(iter(image_loader(train, [(0, pool[:4])], 0, 0, augment)))
    gaps = []
    for image, index in zip(batch[0].numpy(), batch[2].tolist(), strict=True):
        draw = augment.draw(pool, 0, 0, index)
        first = augment.apply(FunctionMatchingNoMix.of(draw, 0), shard.image(index))
        second = augment.apply(FunctionMatchingNoMix.of(draw, 1), shard.image(draw.partner))
        mixed_labels = draw.lam * teacher(first[None]) + (1 - draw.lam) * teacher(second[None])
        gaps.append(np.abs(teacher(image[None]) - mixed_labels).max())
    assert max(gaps) > 1e-2  # the teacher is not linear: the two differ


class FunctionMatchingNoMix:
    """One crop of a draw, unmixed (to label the two source images separately)."""

    @staticmethod
    def of(draw, which: int):
        return replace(draw, partner=None, mode="none", lam=1.0, box=None,
                       crops=(draw.crops[which],))


def test_a_killed_patient_run_resumes_to_the_same_weights(tmp_path, corpus, teacher):
    whole, _ = distill(teacher, corpus, tmp_path / "whole", TINY_PATIENT, device="cpu")
    rows = rt.read_metrics(tmp_path / "whole/distill/metrics.csv")
    assert [r["lr"] for r in rows][-1] < TINY_PATIENT.learning_rate  # decayed
    # the plan counts the steps the run takes (each shard cut into its own batches)
    saved = rt.load_checkpoint(tmp_path / "whole/distill/checkpoint.pt")
    assert plan_distillation(TINY_PATIENT, corpus, 2, probe=False).steps == saved["step"]
    distill(teacher, corpus, tmp_path / "killed", TINY_PATIENT, device="cpu",
            stop_after_shards=3)
    resumed, _ = distill(teacher, corpus, tmp_path / "killed", TINY_PATIENT, device="cpu",
                         resume=True)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    again = rt.read_metrics(tmp_path / "killed/distill/metrics.csv")

    def untimed(table):
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in table]

    assert untimed(again) == untimed(rows)
    assert again[-1]["wall_seconds"] >= again[0]["wall_seconds"] > 0


def test_plan_counts_steps_and_warns_when_they_are_few():
    config = PRESETS["small-corpus"]
    plan = plan_distillation(config, 1_200, 2, probe=False)
    assert (plan.holdout_images, plan.train_images) == (200, 1_000)
    assert plan.steps == 16 * 8 and plan.student_images == 2 * 8_000
    assert plan.teacher_images == 1_000  # cached after the first pass
    assert plan.warnings and "1,000 training images, 128 optimizer steps" in plan.warnings[0]
    patient = plan_distillation(DistillConfig.preset_named("patient", passes=40), 12_000, 2,
                                probe=False)
    assert patient.steps == 40 * 338 >= MIN_STEPS and not patient.warnings
    assert patient.teacher_images == 40 * 10_800  # a fresh label for every augmented image
    patient.student_seconds_per_image, patient.teacher_seconds_per_image = 0.01, 0.02
    assert patient.seconds_for(3) == pytest.approx(10_800 * 3 * 0.03)
    assert patient.passes_for(10_800 * 0.03 * 5.5) == 5


def test_plan_times_this_machine(teacher):
    config = DistillConfig(num_filters=(3, 4, 3, 3, 3), batch_size=8, holdout_images=8)
    plan = plan_distillation(config, 48, 2, teacher=teacher, device="cpu")
    assert plan.student_seconds_per_image > 0 and plan.teacher_seconds_per_image > 0
    assert plan.estimated_seconds == pytest.approx(plan.seconds_for(1))
    assert "estimated" in plan.describe()
