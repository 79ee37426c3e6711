"""The one image decoder: format allow-list, limits before decoding, colour profiles, and no
process-wide state touched."""

from __future__ import annotations

import io
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from image_samples import (
    eps_bytes,
    flat_png,
    openers_called,
    p3_profile,
    pixel_decodes,
    png_bytes,
    psd_bytes,
    varied_rgb,
)
from PIL import Image, ImageCms

from translate.data.images import data_url_bytes, image_size, read_header, read_image
from translate.errors import DataError

FOREIGN = [("drawing.eps", eps_bytes), ("drawing.png", eps_bytes), ("layers.psd", psd_bytes)]


@pytest.mark.parametrize("name, content", FOREIGN)
def test_unlisted_formats_are_refused_before_any_decoder_sees_them(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content())
    assert Image.open(path).format in ("EPS", "PSD")  # Pillow itself would open (and, for EPS, run Ghostscript)
    accepted = r"is not an image in an accepted format \(PNG, JPEG, WEBP, TIFF, BMP, GIF\)"
    with openers_called() as opened, pixel_decodes() as decoded:
        with pytest.raises(DataError, match=rf"{name} {accepted}"):
            read_image(path)
        with pytest.raises(DataError, match=accepted):
            image_size(path)
    assert opened == [] and decoded == []


def test_pixel_limit_is_checked_from_the_header_in_bounded_memory(tmp_path):
    bomb = flat_png(12248, 12248)  # 150 MP, 18 kB: 450 MB as RGB once decoded
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    too_many = "12248×12248 = 150013504 pixels"
    tracemalloc.start()
    try:
        with pixel_decodes() as decoded:
            limit = r"exceeds the limit of 40000000 \(raise max_pixels"
            with pytest.raises(DataError, match=rf"bomb\.png: {too_many} {limit}"):
                read_image(path, max_pixels=40_000_000)
            with pytest.raises(DataError, match=rf"image bytes: {too_many} exceeds"):
                read_image(bomb, max_pixels=40_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded == [] and peak < 4 * 2**20


def test_byte_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "heavy.png"
    path.write_bytes(png_bytes(Image.fromarray(varied_rgb(64, 64))))
    size = path.stat().st_size
    too_heavy = rf"^{path}: {size} bytes exceeds the limit of {size - 1} bytes$"
    with pixel_decodes() as decoded, pytest.raises(DataError, match=too_heavy):
        read_image(path, max_bytes=size - 1)
    assert decoded == []
    assert read_image(path, max_bytes=size).shape == (64, 64, 3)


def test_data_url_length_is_checked_before_the_base64_is_decoded(monkeypatch):
    import base64

    decoded = []
    original = base64.b64decode
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: decoded.append(1) or original(*a, **k))
    payload = base64.b64encode(b"x" * 3000).decode()
    with pytest.raises(DataError, match=r"^the pasted image: 3000 bytes exceeds the limit of 2000 bytes$"):
        data_url_bytes("data:image/png;base64," + payload, max_bytes=2000)
    assert decoded == []
    assert data_url_bytes("data:image/png;base64," + payload, max_bytes=3000) == b"x" * 3000
    with pytest.raises(DataError, match="expected a data:...;base64, URL"):
        data_url_bytes("data:text/plain,hello")
    with pytest.raises(DataError, match="not valid base64"):
        data_url_bytes("data:image/png;base64,@@@@")


def test_a_display_p3_image_is_converted_to_srgb():
    stored = varied_rgb(12, 16)
    p3 = p3_profile()
    out = read_image(png_bytes(Image.fromarray(stored), icc_profile=p3))
    srgb = ImageCms.createProfile("sRGB")
    p3_reader = ImageCms.ImageCmsProfile(io.BytesIO(p3))
    expected = np.asarray(ImageCms.profileToProfile(Image.fromarray(stored), p3_reader, srgb))
    assert np.abs(out.astype(int) - expected).max() <= 1  # lcms rounds a profile read back from bytes its own way
    assert np.abs(out.astype(int) - stored).max() >= 10  # the conversion moved the colours
    # an sRGB profile, a damaged one and none all leave the pixels as they are
    tagged = ImageCms.ImageCmsProfile(srgb).tobytes()
    for icc in (tagged, b"not a profile", None):
        options = {"icc_profile": icc} if icc else {}
        np.testing.assert_array_equal(read_image(png_bytes(Image.fromarray(stored), **options)), stored)


def test_a_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(path, quality=100)  # full magenta and yellow: red
    out = read_image(path)
    assert out.shape == (4, 6, 3)
    assert out[..., 0].min() > 200 and out[..., 1:].max() < 40


def test_reading_sizes_never_turns_off_the_process_wide_bomb_guard(tmp_path):
    """Pillow's ``MAX_IMAGE_PIXELS`` is one global for every thread: lifting it for one read (as
    this module once did) leaves every other thread unguarded meanwhile."""
    path = tmp_path / "huge.png"
    path.write_bytes(flat_png(14200, 14200))  # 202 MP: Pillow's own open() refuses above 179 MP
    guard = Image.MAX_IMAGE_PIXELS
    seen_while_parsing: list[object] = []
    sizes: list[tuple[int, int]] = []
    Image.init()
    factory, accept = Image.OPEN["PNG"]

    def spy(fp, filename=None):
        seen_while_parsing.append(Image.MAX_IMAGE_PIXELS)
        return factory(fp, filename)

    def read_sizes():
        sizes.extend(image_size(path) for _ in range(20))

    original = Image.OPEN["PNG"]
    Image.OPEN["PNG"] = (spy, accept)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            threads = [threading.Thread(target=read_sizes) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        Image.OPEN["PNG"] = original
    assert sizes == [(14200, 14200)] * 40  # read without Pillow's own refusal or warning ...
    assert len(seen_while_parsing) == 40 and set(seen_while_parsing) == {guard}  # ... and the guard stayed on
    assert Image.MAX_IMAGE_PIXELS == guard and read_header(path).pixels == 14200 * 14200


def test_image_size_of_a_large_file_reads_only_the_header(tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(flat_png(9000, 7000))
    with pixel_decodes() as decoded:
        assert image_size(Path(path)) == (7000, 9000)
    assert decoded == []
