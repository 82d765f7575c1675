"""Upload validation: real session JPEGs decode; bad files give one-line 4xx UploadErrors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from v4compact.web.uploads import MAX_UPLOAD_BYTES, UploadError, decode_image, load_upload


@pytest.fixture(scope="module")
def real_jpeg(data_dir) -> bytes:
    """The first image of session 201025, as the release stores it (JPEG bytes)."""
    with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
        name = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[0]
        return zf.read(name)


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (200, 10, 10) if mode == "RGB" else None).save(buf, "PNG")
    return buf.getvalue()


def test_real_jpeg_decodes_to_model_input(real_jpeg):
    pixels = load_upload(real_jpeg)
    assert pixels.shape == (112, 112, 3) and pixels.dtype == np.uint8
    reference = np.asarray(Image.open(io.BytesIO(real_jpeg)).convert("RGB"))
    # a 112x112 image passes through the crop and resize unchanged (up to resampling)
    assert np.abs(pixels.astype(int) - reference.astype(int)).mean() < 2.0


def test_large_rectangle_is_centre_cropped():
    pixels = load_upload(_png(400, 200))
    assert pixels.shape == (112, 112, 3)
    assert np.all(pixels[..., 0] == 200)


def test_transparent_png_is_composited_on_white():
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(buf, "PNG")
    assert load_upload(buf.getvalue()).min() == 255


@pytest.mark.parametrize(
    ("data", "status", "phrase"),
    [
        (b"this is plain text, not a picture" * 10, 415, "not an image"),
        (b"", 400, "empty"),
        (b"%PDF-1.4 fake", 415, "not an image"),
    ],
)
def test_non_images_are_refused(data, status, phrase):
    with pytest.raises(UploadError) as info:
        decode_image(data)
    assert info.value.status_code == status
    assert phrase in str(info.value) and "\n" not in str(info.value)


def test_one_pixel_image_is_too_small():
    with pytest.raises(UploadError) as info:
        decode_image(_png(1, 1))
    assert info.value.status_code == 422 and "1x1" in str(info.value)


def test_truncated_jpeg_is_refused(real_jpeg):
    with pytest.raises(UploadError) as info:
        decode_image(real_jpeg[: len(real_jpeg) // 2])
    assert info.value.status_code == 422 and "truncated" in str(info.value)


def test_oversized_upload_is_refused_before_decoding():
    with pytest.raises(UploadError) as info:
        decode_image(b"\xff" * (MAX_UPLOAD_BYTES + 1))
    assert info.value.status_code == 413 and "MB" in str(info.value)


def test_decompression_bomb_is_refused():
    # a tiny PNG declaring 10000 x 10000 pixels (compresses to a few hundred kB)
    buf = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buf, "PNG", optimize=True)
    with pytest.raises(UploadError) as info:
        decode_image(buf.getvalue(), max_pixels=50_000_000 // 2)
    assert info.value.status_code == 413 and "pixels" in str(info.value)


def test_body_limit_applies_without_content_length(data_dir, tmp_path):
    """A chunked upload (no Content-Length) is cut off at the limit with 413."""
    from fastapi.testclient import TestClient

    from v4compact.web.app import create_app

    app = create_app(data_dir=data_dir, cache_dir=tmp_path, max_upload_bytes=1000)

    def chunks():
        yield (
            b"--x1\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        for _ in range(200):
            yield b"x" * 1000

    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post(
            "/api/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=x1"},
        )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
