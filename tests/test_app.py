"""The app's parts without a server: decoding uploads, model cards, the translation service."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from image_samples import eps_bytes, flat_png, openers_called, p3_profile, pixel_decodes, png_bytes, varied_rgb
from PIL import Image, ImageCms
from safetensors.torch import save_file

from apps.app.catalogue import BUNDLED_DIR, GeneratorPool, discover
from apps.app.imaging import Limits, ResultFolder, blend, load_upload, preview
from apps.app.service import InferenceSettings, TranslationService
from translate.data.images import read_image, to_rgb8
from translate.errors import ConfigError, DataError
from translate.io import export_network
from translate.nets import build_generator

TINY = {"name": "resnet", "ngf": 4, "n_blocks": 1, "in_channels": 3, "out_channels": 3}


def export_tiny(folder, name="tiny", info=None):
    torch.manual_seed(0)
    return export_network(
        folder / f"{name}.safetensors",
        build_generator(TINY),
        TINY,
        info=info or {"model": "cyclegan", "direction": "A->B", "step": 7},
    )


def service_for(folder, tmp_path, **limits):
    cards, _ = discover([folder], include_bundled=False)
    return TranslationService(
        cards, ResultFolder(tmp_path / "results"), Limits(**limits), InferenceSettings(device="cpu", tile=256)
    )


# ------------------------------------------------------------------ decoding uploads


def test_grey_16bit_and_rgba_become_rgb8_the_way_they_look():
    grey = to_rgb8(Image.fromarray(np.full((4, 5), 77, np.uint8), "L"))
    assert grey.shape == (4, 5, 3) and grey.dtype == np.uint8 and (grey == 77).all()

    deep = Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16))  # 16-bit grey
    assert deep.mode.startswith("I")
    assert to_rgb8(deep)[0, :, 0].tolist() == [0, 100, 255]  # scaled, not clipped at 255

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque red stays red; transparent pixels show the white page
    out = to_rgb8(Image.fromarray(rgba, "RGBA"))
    assert out[0, 0].tolist() == [200, 10, 10] and out[1, 1].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", what phones write for portrait shots
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    shown = load_upload(path, Limits())
    assert shown.shape == (40, 20, 3)  # portrait, as displayed
    assert shown[5, 10, 0] > 200 and shown[35, 10, 0] < 60  # the stored left half is now on top


def test_limits_and_non_images_are_one_line_errors(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1000, 1100, 3), np.uint8)).save(big)
    with pytest.raises(DataError, match=r"1100×1000 \(1.1 MP\).*up to 1 MP"):
        load_upload(big, Limits(max_megapixels=1.0))
    heavy = tmp_path / "heavy.bin"
    heavy.write_bytes(b"\0" * 3_000_000)
    with pytest.raises(DataError, match=r"2.9 MB.*up to 2 MB"):
        load_upload(heavy, Limits(max_upload_mb=2))
    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    with pytest.raises(DataError, match="not an image"):
        load_upload(text, Limits())
    with pytest.raises(ConfigError):
        Limits(max_upload_mb=0)


def data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


def test_an_eps_upload_never_reaches_ghostscript(tmp_path):
    with openers_called() as opened, pixel_decodes() as decoded:
        for name in ("drawing.eps", "drawing.png"):  # the name does not matter: the bytes are EPS
            path = tmp_path / name
            path.write_bytes(eps_bytes())
            with pytest.raises(DataError, match=rf"{name} is not an image in an accepted format \(PNG, JPEG"):
                load_upload(path, Limits())
        with pytest.raises(DataError, match="the pasted image is not an image in an accepted format"):
            load_upload(data_url(eps_bytes()), Limits())
    assert opened == [] and decoded == []


def test_a_150_mp_data_url_is_refused_in_bounded_memory_without_decoding():
    url = data_url(flat_png(12248, 12248))  # a flat 150 MP PNG: 18 kB, 450 MB once decoded
    refused = r"^the image is 12248×12248 \(150\.0 MP\); this app accepts up to 40 MP"
    tracemalloc.start()
    try:
        with pixel_decodes() as decoded, pytest.raises(DataError, match=refused):
            load_upload(url, Limits(max_upload_mb=6, max_megapixels=40))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded == [] and peak < 4 * 2**20
    heavy = data_url(b"\0" * 3 * 2**20)
    with pytest.raises(DataError, match=r"^the pasted image: 3\.0 MB exceeds the limit of 2\.0 MB$"):
        load_upload(heavy, Limits(max_upload_mb=2))


def test_every_route_into_the_service_gets_the_same_pixels_and_limits(tmp_path):
    (tmp_path / "m").mkdir()
    export_tiny(tmp_path / "m")
    service = service_for(tmp_path / "m", tmp_path, max_megapixels=0.001)
    rgb = varied_rgb(20, 30)
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes(Image.fromarray(rgb)))
    uploads = (path, data_url(path.read_bytes()), rgb)
    outputs = [np.asarray(Image.open(service.run(upload, "tiny").png)) for upload in uploads]
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
    big = np.zeros((40, 30, 3), np.uint8)  # 1200 pixels
    for upload in (big, data_url(png_bytes(Image.fromarray(big)))):
        with pytest.raises(DataError, match=r"30×40 \(0\.0 MP\); this app accepts up to 0\.001 MP"):
            service.run(upload, "tiny")
    with pytest.raises(DataError, match="H×W×3 uint8 RGB, got float32"):
        service.run(rgb.astype(np.float32), "tiny")


def _exif_rotated(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6
    image.info["exif"] = exif.tobytes()
    return image


def _alpha_ramp(rgb: np.ndarray) -> np.ndarray:
    return (np.arange(rgb.shape[0] * rgb.shape[1]) % 256).reshape(rgb.shape[:2]).astype(np.uint8)


#: inputs whose decoding once differed between ``i2i translate`` and the app, or could
AWKWARD_INPUTS = {
    "rgba.png": lambda rgb: (Image.fromarray(np.dstack([rgb, _alpha_ramp(rgb)]), "RGBA"), {}),
    "deep16.png": lambda rgb: (Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), {}),
    "grey.png": lambda rgb: (Image.fromarray(rgb[:, :, 1]), {}),
    "print.jpg": lambda rgb: (Image.fromarray(rgb).convert("CMYK"), {"quality": 95}),
    "p3.png": lambda rgb: (Image.fromarray(rgb), {"icc_profile": p3_profile()}),
    "phone.jpg": lambda rgb: (_exif_rotated(rgb), {"quality": 95}),
}


@pytest.mark.parametrize("name", list(AWKWARD_INPUTS))
def test_the_cli_and_the_app_decode_every_input_to_the_same_pixels(tmp_path, name):
    image, options = AWKWARD_INPUTS[name](varied_rgb(18, 26, seed=3))
    path = tmp_path / name
    image.save(path, exif=image.info.get("exif", b""), **options)
    cli = read_image(path)  # what `i2i translate`, the datasets and augment read
    app = load_upload(path, Limits())
    np.testing.assert_array_equal(cli, app)
    assert cli.shape == ((26, 18, 3) if name == "phone.jpg" else (18, 26, 3))


def test_results_are_srgb_pngs_tagged_as_such(tmp_path):
    (tmp_path / "m").mkdir()
    export_tiny(tmp_path / "m")
    service = service_for(tmp_path / "m", tmp_path)
    rgb = varied_rgb(20, 30)
    path = tmp_path / "p3.png"
    Image.fromarray(rgb).save(path, icc_profile=p3_profile())
    result = service.run(path, "tiny", 0.0)  # strength 0: the input itself, as decoded
    with Image.open(result.png) as out:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(out.info["icc_profile"]))
        pixels = np.asarray(out)
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    np.testing.assert_array_equal(pixels, read_image(path))  # converted from P3, not the stored values
    assert np.abs(pixels.astype(int) - rgb).max() >= 10


def test_generator_copies_are_bounded_and_the_least_recently_used_go_first(tmp_path, monkeypatch):
    from contextlib import ExitStack

    import apps.app.catalogue as catalogue

    (tmp_path / "m").mkdir()
    for name in ("a", "b", "c"):
        export_tiny(tmp_path / "m", name)
    cards = {card.label: card for card in discover([tmp_path / "m"], include_bundled=False)[0]}
    loads = []
    load = catalogue.load_generator
    monkeypatch.setattr(catalogue, "load_generator", lambda path, device: loads.append(path.stem) or load(path, device))
    pool = GeneratorPool("cpu", max_idle=2)
    for label in ("a", "b", "a", "c"):
        with pool.borrow(cards[label]):
            pass
    assert loads == ["a", "b", "c"]  # "a" was reused while idle
    assert [p.stem for p in pool.idle] == ["a", "c"]  # "b", least recently used, was dropped
    with ExitStack() as stack:  # three requests at once need three copies ...
        nets = [stack.enter_context(pool.borrow(cards["a"])) for _ in range(3)]
        assert len({id(net) for net in nets}) == 3
    assert [p.stem for p in pool.idle] == ["a", "a"]  # ... but only two are kept
    with pytest.raises(ConfigError, match="max_idle=0"):
        GeneratorPool("cpu", max_idle=0)


def test_old_and_surplus_results_are_removed(tmp_path):
    results = ResultFolder(tmp_path / "results", keep_s=60, max_files=3)
    rgb = np.zeros((2, 2, 3), np.uint8)
    written = [results.write_png(rgb, f"r{i}") for i in range(5)]
    assert [p.exists() for p in written] == [False, False, True, True, True]
    assert not written[0].parent.exists()  # its folder went with it
    stale = time.time() - 120
    os.utime(written[2], (stale, stale))
    newest = results.write_png(rgb, "r5")
    assert [p.exists() for p in written[2:]] == [False, True, True] and newest.exists()
    with pytest.raises(ConfigError, match="positive"):
        ResultFolder(tmp_path / "x", max_files=0)


def test_a_temporary_result_folder_is_removed_on_close(tmp_path):
    results = ResultFolder.temporary()
    results.write_png(np.zeros((2, 2, 3), np.uint8), "r")
    assert results.folder.is_dir()
    results.close()
    assert not results.folder.exists()
    given = ResultFolder(tmp_path / "mine")
    given.close()  # a folder the caller chose is theirs to keep
    assert given.folder.is_dir()


@pytest.mark.slow  # a fresh interpreter imports torch
def test_a_temporary_result_folder_is_removed_when_the_process_exits():
    script = (
        "import numpy as np; from apps.app.imaging import ResultFolder; "
        "r = ResultFolder.temporary(); r.write_png(np.zeros((2, 2, 3), np.uint8), 'r'); print(r.folder)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("i2i-app-results-") and not folder.exists()


def test_blend_and_preview():
    before = np.zeros((2, 2, 3), np.uint8)
    after = np.full((2, 2, 3), 200, np.uint8)
    assert (blend(before, after, 0.0) == 0).all()
    assert (blend(before, after, 0.25) == 50).all()
    assert (blend(before, after, 1.0) == 200).all()
    with pytest.raises(DataError):
        blend(before, after, 1.5)
    assert preview(np.zeros((300, 1200, 3), np.uint8), 600).shape == (150, 600, 3)


# ------------------------------------------------------------------ catalogue


def test_discover_reads_cards_and_skips_foreign_files(tmp_path):
    models = tmp_path / "run" / "export"
    models.mkdir(parents=True)
    export_tiny(models, "G_AB")
    save_file({"w": torch.zeros(1)}, str(models / "someone_elses.safetensors"))
    cards, skipped = discover([tmp_path], include_bundled=False)
    assert [c.label for c in cards] == ["G_AB"]
    assert cards[0].direction == "domain A → domain B" and cards[0].step == 7
    assert "run" in cards[0].trained_on
    assert len(skipped) == 1 and "someone_elses" in skipped[0]
    with pytest.raises(ConfigError, match="not found"):
        discover([tmp_path / "typo"], include_bundled=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no exported generators"):
        discover([tmp_path / "empty"], include_bundled=False)


def test_same_export_names_in_two_runs_get_distinct_labels(tmp_path):
    for run in ("run1", "run2"):
        (tmp_path / run / "export").mkdir(parents=True)
        export_tiny(tmp_path / run / "export", "G")
    labels = [c.label for c in discover([tmp_path], include_bundled=False)[0]]
    assert len(set(labels)) == 2


def test_bundled_models_have_cards_fit_the_size_budget_and_translate(tmp_path):
    files = sorted(BUNDLED_DIR.glob("*.safetensors"))
    assert len(files) >= 4, "photo<->style both ways and sim<->real both ways are bundled"
    assert sum(f.stat().st_size for f in files) <= 20 * 2**20
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(rgb).save(path)
    cards, _ = discover([], include_bundled=True)
    service = TranslationService(cards, ResultFolder(tmp_path / "out"), settings=InferenceSettings(device="cpu"))
    for card in cards:
        assert card.trained_on and card.notes and "→" in card.direction, card
        out = np.asarray(Image.open(service.run(path, card.label).png))
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - rgb).mean() > 2, f"{card.label} left the image unchanged"


# ------------------------------------------------------------------ service


def test_service_keeps_size_is_deterministic_and_strength_zero_is_identity(tmp_path):
    (tmp_path / "m").mkdir()
    export_tiny(tmp_path / "m")
    service = service_for(tmp_path / "m", tmp_path)
    rgb = np.random.default_rng(1).integers(0, 256, (33, 51, 3), dtype=np.uint8)
    path = tmp_path / "odd.png"
    Image.fromarray(rgb).save(path)
    first = service.run(path, "tiny", 1.0)
    again = service.run(path, "tiny", 1.0)
    a, b = (np.asarray(Image.open(r.png)) for r in (first, again))
    assert a.shape == (33, 51, 3) and Image.open(first.png).mode == "RGB"
    assert np.array_equal(a, b)
    assert np.array_equal(np.asarray(Image.open(service.run(path, "tiny", 0.0).png)), rgb)
    assert "51×33" in first.summary
    with pytest.raises(DataError, match="unknown model"):
        service.run(path, "nope")
    with pytest.raises(DataError, match="upload an image"):
        service.run(None, "tiny")
    with pytest.raises(DataError, match="strength"):
        service.run(path, "tiny", 1.5)


def test_large_images_are_tiled_to_the_same_size(tmp_path):
    (tmp_path / "m").mkdir()
    export_tiny(tmp_path / "m")
    service = service_for(tmp_path / "m", tmp_path)
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 700, 3), dtype=np.uint8)).save(path)
    reports = []
    result = service.run(path, "tiny", progress=lambda fraction, text: reports.append((fraction, text)))
    assert Image.open(result.png).size == (700, 300) and "tiled" in result.summary
    # the progress bar moves with every tile pass, never backwards, from start to done
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    passes = [text for _, text in reports if text.startswith("translating: tile pass")]
    assert len(passes) > 4 and passes[-1].split(" of ")[0].split()[-1] == passes[-1].split(" of ")[1]


def test_cli_has_the_app_command():
    from translate.cli import build_parser

    args = build_parser().parse_args(["app", "--models", "a", "b", "--port", "7999", "--max-megapixels", "8"])
    assert args.models == ["a", "b"] and args.port == 7999 and args.host == "127.0.0.1" and args.max_megapixels == 8


def test_concurrent_requests_on_one_model_match_sequential_ones(tmp_path):
    # tiled inference hooks the network's norm layers; sharing one module between threads mixes statistics
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "m").mkdir()
    export_tiny(tmp_path / "m")
    service = service_for(tmp_path / "m", tmp_path)
    paths = []
    for seed in range(3):
        path = tmp_path / f"img{seed}.png"
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (280, 600, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    alone = [np.asarray(Image.open(service.run(p, "tiny").png)) for p in paths]
    with ThreadPoolExecutor(3) as pool:
        together = [np.asarray(Image.open(r.png)) for r in pool.map(lambda p: service.run(p, "tiny"), paths)]
    for a, b in zip(alone, together, strict=False):
        assert np.array_equal(a, b)
