"""Image I/O: every format and bit depth arrives as 8-bit RGB, and every failure names the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from translate.data.images import image_size, list_images, read_image, to_image, to_images, to_tensor, write_image
from translate.errors import DataError


def _rgb(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_raw(path: Path, array: np.ndarray) -> Path:
    """Write with cv2 directly (BGR order, any depth/channels) to test the reader on its own."""
    assert cv2.imwrite(str(path), array)
    return path


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    img = _rgb()
    path = write_image(tmp_path / "sub" / "x.png", img)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, img)


def test_channel_order_is_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    out = read_image(_write_raw(tmp_path / "red.png", bgr))
    assert (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    img = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    out = read_image(write_image(tmp_path / "x.jpg", img))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 3


def test_16bit_png_is_scaled_not_truncated(tmp_path: Path) -> None:
    img16 = np.zeros((2, 3, 3), np.uint16)
    img16[0, 0] = 65535
    img16[0, 1] = 32768
    img16[0, 2] = 257
    out = read_image(_write_raw(tmp_path / "deep.png", img16))
    assert out.dtype == np.uint8
    assert (out[0, 0] == 255).all()
    assert (out[0, 1] == 128).all()
    assert (out[0, 2] == 1).all()
    assert (out[1] == 0).all()


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    gray16 = np.full((3, 5), 65535, np.uint16)
    out = read_image(_write_raw(tmp_path / "g16.png", gray16))
    assert out.shape == (3, 5, 3) and (out == 255).all()


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_grayscale_becomes_three_equal_channels(tmp_path: Path, ext: str) -> None:
    gray = np.tile(np.arange(0, 240, 15, dtype=np.uint8), (8, 1))
    out = read_image(_write_raw(tmp_path / f"gray{ext}", gray))
    assert out.shape == (8, 16, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    if ext == ".png":
        np.testing.assert_array_equal(out[..., 0], gray)


def test_rgba_is_composited_onto_white_as_a_viewer_shows_it(tmp_path: Path) -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)  # BGR: red 30, green 20, blue 10
    bgra[0, 0, 3] = 255  # opaque: its own colour
    bgra[0, 1, 3] = 128  # half: halfway to white
    # alpha 0 elsewhere: the hidden colour is not shown (it used to be, unlike in the app)
    out = read_image(_write_raw(tmp_path / "rgba.png", bgra))
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [30, 20, 10]
    assert out[0, 1].tolist() == [
        round(30 * 128 / 255 + 255 * 127 / 255),
        round(20 * 128 / 255 + 255 * 127 / 255),
        round(10 * 128 / 255 + 255 * 127 / 255),
    ]
    assert (out[1:] == 255).all()


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken_image.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="broken_image.png"):
        read_image(path)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", _rgb(64, 64))
    path = tmp_path / "truncated.png"
    path.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match="truncated.png"):
        read_image(path)


def test_empty_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.png"):
        read_image(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not_there.png"):
        read_image(tmp_path / "not_there.png")


def test_pixel_limit_names_file_and_limit(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.png", _rgb(10, 20))
    with pytest.raises(DataError, match=r"big\.png.*\b199\b"):
        read_image(path, max_pixels=199)
    assert read_image(path, max_pixels=200).shape == (10, 20, 3)
    assert read_image(path, max_pixels=None).shape == (10, 20, 3)


def test_image_size_reads_header(tmp_path: Path) -> None:
    assert image_size(write_image(tmp_path / "s.png", _rgb(7, 9))) == (7, 9)
    assert image_size(write_image(tmp_path / "s.jpg", _rgb(5, 11))) == (5, 11)


def test_list_images_missing_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="empty"):
        list_images(tmp_path / "empty")
    file = write_image(tmp_path / "f.png", _rgb())
    with pytest.raises(DataError, match="not a folder"):
        list_images(file)


def test_list_images_sorted_recursive_and_case_insensitive(tmp_path: Path) -> None:
    write_image(tmp_path / "b.png", _rgb())
    write_image(tmp_path / "a.JPG", _rgb())
    write_image(tmp_path / "sub" / "c.png", _rgb())
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.png"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.JPG", "b.png"]


def test_tensor_round_trip_is_exact() -> None:
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    t = to_tensor(img)
    assert t.shape == (3, 16, 16) and t.dtype == torch.float32
    assert t.min().item() == -1.0 and t.max().item() == 1.0
    np.testing.assert_array_equal(to_image(t), img)
    np.testing.assert_array_equal(to_image(t[None]), img)


def test_batch_round_trip_is_exact_and_to_image_takes_one() -> None:
    batch = np.stack([np.full((4, 6, 3), v, np.uint8) for v in (0, 77, 255)])
    np.testing.assert_array_equal(to_images(to_tensor(batch)), batch)
    with pytest.raises(ValueError, match="N×C×H×W"):
        to_images(to_tensor(batch[0]))
    with pytest.raises(ValueError, match="takes one image"):
        to_image(to_tensor(batch))


def test_to_image_clamps_out_of_range() -> None:
    t = torch.tensor([-3.0, 0.0, 5.0]).view(3, 1, 1)
    np.testing.assert_array_equal(to_image(t)[0, 0], [0, 128, 255])


# ----------------------------------------------------------------------------- EXIF orientation
ORIENTATION_TAG = 0x0112


def _quadrant_image(h: int = 24, w: int = 40) -> np.ndarray:
    """Distinct, flat quadrants (JPEG keeps them) so that a rotation or mirror shows."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (250, 20, 20)
    img[: h // 2, w // 2 :] = (20, 250, 20)
    img[h // 2 :, : w // 2] = (20, 20, 250)
    img[h // 2 :, w // 2 :] = (250, 250, 250)
    return img


def _save_with_orientation(path: Path, stored: np.ndarray, orientation: int) -> Path:
    from PIL import Image

    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[ORIENTATION_TAG] = orientation
    im.save(path, exif=exif.tobytes(), **({"quality": 95} if path.suffix == ".jpg" else {}))
    return path


def test_phone_photo_with_orientation_6_is_read_upright(tmp_path: Path) -> None:
    """A phone held upright stores the frame sideways and tags it 6 (rotate 90° clockwise to view)."""
    stored = _quadrant_image(24, 40)  # 40 wide, 24 high as stored
    path = _save_with_orientation(tmp_path / "phone.jpg", stored, 6)
    out = read_image(path)
    assert out.shape == (40, 24, 3)  # shown upright: 24 wide, 40 high
    upright = np.rot90(stored, k=-1)  # clockwise
    assert np.median(np.abs(out.astype(int) - upright.astype(int))) <= 3  # JPEG blurs the quadrant edges only
    # a clockwise quarter turn: stored top-left (red) shows top-right, stored bottom-left (blue) top-left
    for (row, col), colour in {
        (2, -3): (250, 20, 20),
        (2, 2): (20, 20, 250),
        (-3, 2): (250, 250, 250),
        (-3, -3): (20, 250, 20),
    }.items():
        assert tuple(int(v) for v in out[row, col]) == pytest.approx(colour, abs=12)
    assert image_size(path) == (40, 24)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_an_image_viewer(tmp_path: Path, orientation: int) -> None:
    from PIL import Image, ImageOps

    stored = _rgb(6, 10, seed=orientation)
    path = _save_with_orientation(tmp_path / "o.png", stored, orientation)  # lossless: exact comparison
    with Image.open(path) as im:
        viewer = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = read_image(path)
    np.testing.assert_array_equal(out, viewer)
    assert image_size(path) == out.shape[:2]


def test_to_tensor_takes_a_batch() -> None:
    batch = np.stack([_rgb(5, 7, seed=1), _rgb(5, 7, seed=2)])
    out = to_tensor(batch)
    assert out.shape == (2, 3, 5, 7) and out.dtype == torch.float32
    assert torch.equal(out[1], to_tensor(batch[1]))
    with pytest.raises(ValueError, match="H×W×3"):
        to_tensor(np.zeros((4, 4), np.uint8))
