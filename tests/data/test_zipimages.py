"""The lazy zip image reader against decoding the release's JPEGs with Pillow directly."""

from __future__ import annotations

import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from v4compact.data import paths
from v4compact.data.zipimages import ZipImages
from v4compact.errors import CorruptDataError, InvalidInputError

SESSION = 210305  # smallest image zip of the copy


def _pillow_decode(zip_path, names):
    with zipfile.ZipFile(zip_path) as archive:
        return np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB"))
                         for n in names])


@pytest.fixture(scope="module")
def zip_path(data_dir):
    return data_dir / paths.images_zip(SESSION)


@pytest.fixture(scope="module")
def reference(zip_path):
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
    return _pillow_decode(zip_path, names)


def test_indexing_behaves_like_the_decoded_array(zip_path, reference):
    images = ZipImages(zip_path, cache=False)
    assert len(images) == len(reference) and images.shape == reference.shape
    np.testing.assert_array_equal(images[0], reference[0])
    np.testing.assert_array_equal(images[-1], reference[-1])
    np.testing.assert_array_equal(images[np.int64(7)], reference[7])
    np.testing.assert_array_equal(images[10:20:3], reference[10:20:3])
    np.testing.assert_array_equal(images[[5, 2, 5]], reference[[5, 2, 5]])
    mask = np.zeros(len(reference), dtype=bool)
    mask[[1, 4]] = True
    np.testing.assert_array_equal(images[mask], reference[mask])
    np.testing.assert_array_equal(images[3, :4, :4], reference[3, :4, :4])
    assert images[:0].shape == (0, 112, 112, 3)
    whole = np.asarray(images)
    assert whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, reference)
    np.testing.assert_array_equal(np.asarray(images, dtype=np.float32), reference)


def test_chunks_and_iteration_cover_every_image_in_order(zip_path, reference):
    images = ZipImages(zip_path, cache=False)
    chunks = list(images.iter_chunks(chunk_size=100))
    assert [len(c) for c in chunks[:-1]] == [100] * (len(chunks) - 1)
    np.testing.assert_array_equal(np.concatenate(chunks), reference)
    first = next(iter(images))
    np.testing.assert_array_equal(first, reference[0])
    with pytest.raises(InvalidInputError):
        list(images.iter_chunks(0))


def test_cache_is_shared_and_read_only(zip_path, reference):
    images = ZipImages(zip_path)
    first = np.asarray(images)
    assert np.asarray(images) is first
    assert not first.flags.writeable
    np.testing.assert_array_equal(images[[0, 9]], reference[[0, 9]])


def test_reads_from_several_threads_agree(zip_path, reference):
    images = ZipImages(zip_path, cache=False, num_workers=2)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(reference), size=80, replace=False) for _ in range(6)]
    barrier = threading.Barrier(3)  # 6 reads, 3 at a time start together

    def read(batch):
        barrier.wait(timeout=30)
        return images[batch]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(read, batches))
    for batch, result in zip(batches, results, strict=True):
        np.testing.assert_array_equal(result, reference[batch])


def test_bad_indices_and_bad_files_raise_one_line_errors(zip_path, tmp_path):
    images = ZipImages(zip_path, cache=False)
    with pytest.raises(InvalidInputError, match="out of range"):
        images[len(images)]
    with pytest.raises(InvalidInputError):
        images[np.array([0.5])]
    with pytest.raises(CorruptDataError, match="expected 7"):
        ZipImages(zip_path, expected_count=7)
    not_zip = tmp_path / "images_1.zip"
    not_zip.write_bytes(b"not a zip at all")
    with pytest.raises(CorruptDataError, match="not a readable zip"):
        ZipImages(not_zip)
    broken = tmp_path / "images_2.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("images_2/image0001.jpg", b"\xff\xd8 truncated jpeg")
    with pytest.raises(CorruptDataError, match="image0001.jpg"):
        ZipImages(broken)[0]


def test_a_damaged_member_is_caught_by_its_crc(zip_path, tmp_path):
    damaged = tmp_path / "images_210305.zip"
    content = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as archive:
        info = sorted((i for i in archive.infolist() if i.filename.endswith(".jpg")),
                      key=lambda i: i.filename)[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    content[start + info.compress_size // 2] ^= 0x55
    damaged.write_bytes(bytes(content))
    images = ZipImages(damaged, cache=False)
    with pytest.raises(CorruptDataError, match="image0001.jpg"):
        images[0]
    assert images[1].shape == (112, 112, 3)  # the other members are still readable
