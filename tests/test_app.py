"""The app's parts without a server: decoding uploads, model cards, the translation service."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from apps.app.catalogue import BUNDLED_DIR, discover
from apps.app.imaging import Limits, ResultFolder, blend, load_upload, preview, to_rgb8
from apps.app.service import InferenceSettings, TranslationService
from translate.errors import ConfigError, DataError
from translate.io import export_network
from translate.nets import build_generator

TINY = {"name": "resnet", "ngf": 4, "n_blocks": 1, "in_channels": 3, "out_channels": 3}


def export_tiny(folder, name="tiny", info=None):
    torch.manual_seed(0)
    return export_network(folder / f"{name}.safetensors", build_generator(TINY), TINY, info=info or {"model": "cyclegan", "direction": "A->B", "step": 7})


def service_for(folder, tmp_path, **limits):
    cards, _ = discover([folder], include_bundled=False)
    return TranslationService(cards, ResultFolder(tmp_path / "results"), Limits(**limits), InferenceSettings(device="cpu", tile=256))


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
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)
