"""The distillation corpus: shards, held-out exclusion, the one image path, batch plans."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from v4compact.data.session import load_session
from v4compact.errors import InvalidInputError
from v4compact.models.inputs import as_image_batch
from v4compact.training.corpus import (
    Augmentation,
    Shard,
    batch_plan,
    image_loader,
    open_corpus,
    rank_part,
    reopen_corpus,
)


@pytest.fixture(scope="module")
def images_dir(data_dir):
    return data_dir / "data_V4_responses" / "images"


def test_folder_of_zips_is_one_shard_per_zip_minus_heldout_halves(images_dir):
    corpus = open_corpus(images_dir)
    zips = sorted(images_dir.glob("images_*.zip"))
    assert [s.path.name for s in corpus.shards] == [z.name for z in zips]
    for shard, used, excluded in zip(corpus.shards, corpus.indices, corpus.excluded,
                                     strict=True):
        session = load_session(shard.session_id)
        if session.split == "test":  # the held-out (second) half is left out
            np.testing.assert_array_equal(used, session.heldout_split()[0])
            assert excluded == len(session.heldout_split()[1])
        else:
            assert len(used) == session.num_images and excluded == 0
    everything = open_corpus(images_dir, exclude_heldout=False)
    assert len(everything) == len(corpus) + sum(corpus.excluded)
    assert sum(corpus.excluded) == 600 * 3 + 320  # 190923, 201025, 210225 and 210325


def test_zip_images_decode_exactly_as_the_session_reader(images_dir):
    shard = Shard(images_dir / "images_201025.zip")
    session = load_session(201025)
    for index in (0, 599, 1199):
        np.testing.assert_array_equal(shard.image(index), session.images[index])


def test_folder_and_tar_shards_go_through_the_one_image_path(tmp_path, images_dir):
    photo = np.random.default_rng(0).integers(0, 256, (112, 224, 3), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "wide.png")
    shard = Shard(folder)
    assert shard.kind == "folder" and len(shard) == 1
    np.testing.assert_array_equal(shard.image(0), as_image_batch(folder / "wide.png",
                                                                 warn=False)[0])
    # a WebDataset-style tar: images and other members (labels) side by side
    source = Shard(images_dir / "images_210305.zip")
    tar_path = tmp_path / "shard-000000.tar"
    with tarfile.open(tar_path, "w") as archive:
        for key in range(3):
            for name, payload in ((f"{key:06d}.jpg", source.read_bytes(key)),
                                  (f"{key:06d}.cls", b"7")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    tar = Shard(tar_path)
    assert tar.names == ("000000.jpg", "000001.jpg", "000002.jpg")
    for key in range(3):
        np.testing.assert_array_equal(tar.image(key), source.image(key))


def test_an_archive_without_images_is_refused(tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "no images")
    with pytest.raises(InvalidInputError, match="holds no images"):
        open_corpus(empty)


def test_batch_plans_are_seeded_per_pass_and_split_over_ranks(images_dir):
    corpus = open_corpus(images_dir / "images_210305.zip")
    plan = batch_plan(corpus, 0, pass_index=0, batch_size=64, seed=3)
    again = batch_plan(corpus, 0, pass_index=0, batch_size=64, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again, strict=True))
    assert sorted(np.concatenate(plan).tolist()) == corpus.indices[0].tolist()
    assert [len(b) for b in plan] == [64] * 6 + [16]
    other_pass = batch_plan(corpus, 0, pass_index=1, batch_size=64, seed=3)
    assert not np.array_equal(plan[0], other_pass[0])
    for batch in plan:
        parts = [rank_part(batch, rank, 3) for rank in range(3)]
        np.testing.assert_array_equal(np.concatenate(parts), batch)


def test_holdout_split_and_subset_are_disjoint_seeded_and_reopenable(images_dir):
    corpus = open_corpus(images_dir, max_images_per_shard=50, seed=1)
    assert all(len(i) == 50 for i in corpus.indices)
    train, held = corpus.split_holdout(40, seed=2)
    assert len(held) == 40 and len(train) == len(corpus) - 40
    for a, b in zip(train.indices, held.indices, strict=True):
        assert not set(a.tolist()) & set(b.tolist())
    again = reopen_corpus(corpus.describe())
    for a, b in zip(again.indices, corpus.indices, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidInputError, match="cannot hold out"):
        corpus.split_holdout(len(corpus))


def test_loader_workers_decode_the_planned_images(images_dir):
    corpus = open_corpus(images_dir / "images_210305.zip", max_images_per_shard=12)
    plan = batch_plan(corpus, 0, 0, batch_size=5, seed=0)
    batches = list(image_loader(corpus, [(0, b) for b in plan], num_workers=2))
    assert [len(images) for images, _, _ in batches] == [5, 5, 2]
    for (images, shard, indices), planned in zip(batches, plan, strict=True):
        assert shard == 0
        np.testing.assert_array_equal(indices.numpy(), planned)
        for image, index in zip(images.numpy(), planned, strict=True):
            np.testing.assert_array_equal(image, corpus.shards[0].image(int(index)))


def test_augmentation_is_deterministic_per_image_and_keeps_the_size(images_dir):
    image = Shard(images_dir / "images_210305.zip").image(0)
    augment = Augmentation(seed=5)
    first = augment(image, 0, 0, 7)
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, augment(image, 0, 0, 7))
    assert any(not np.array_equal(first, augment(image, p, 0, 7)) for p in range(1, 5))
