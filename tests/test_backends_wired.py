"""Inference backends wired into `i2i translate`, the augment hooks and the app: ONNX files and
imported reference checkpoints run everywhere; tiles stay exact on every backend or are refused
with a message naming the way out; ``auto`` measures once and logs its choice once."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_import_reference import our_net, resnet_reference_state, save

from apps.app.catalogue import discover
from apps.app.imaging import Limits, ResultFolder
from apps.app.service import InferenceSettings, TranslationService
from augment import GANTranslate, TranslateBatch
from translate.benchmarks.backends import backend_table
from translate.cli import main
from translate.deploy import export_onnx
from translate.errors import ConfigError
from translate.importers import import_reference_checkpoint
from translate.infer import open_generator, translate_image
from translate.io import export_network, load_generator
from translate.nets import build_generator

pytest.importorskip("onnx", reason="the deploy extra is not installed")
pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
pytest.importorskip("openvino", reason="the deploy extra is not installed")

INSTANCE = {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance"}
BATCH = {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "batch"}
#: every engine × precision; the quick loop keeps torch fp32 and OpenVINO bf16, the full suite all
PATHS = [
    ("torch", "fp32"),
    pytest.param("torch", "bf16", marks=pytest.mark.slow),
    pytest.param("onnxruntime", "fp32", marks=pytest.mark.slow),
    pytest.param("openvino", "fp32", marks=pytest.mark.slow),
    ("openvino", "bf16"),
]
#: max |Δ| of an fp32 engine to torch fp32, and of a bf16 one (values in [-1, 1])
FP32_TOLERANCE, BF16_TOLERANCE = 1e-4, 0.05


def tolerance(precision: str) -> float:
    return BF16_TOLERANCE if precision == "bf16" else FP32_TOLERANCE


def exported(folder: Path, spec: dict, name: str = "G") -> Path:
    torch.manual_seed(0)
    net = build_generator(spec).eval()
    if spec["norm"] == "batch":  # statistics that are not the identity, so tiles would show a wrong one
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    info = {"value_range": [-1, 1], "model": "cyclegan", "direction": "A->B", "step": 3}
    return export_network(folder / f"{name}.safetensors", net, spec, info=info)


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random image in [-1, 1] with varied statistics across it."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (smooth * 2 - 1).clamp(-1, 1)


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    """A generator imported from a checkpoint in the reference CycleGAN code's key layout."""
    ours = our_net({"name": "resnet", "ngf": 2, "n_blocks": 3, "norm": "instance"}, "instance")
    pth = save(resnet_reference_state(ours, "instance"), tmp_path / "latest_net_G_A.pth")
    return import_reference_checkpoint(pth, tmp_path / "imported.safetensors").path


# --- tiles: exact on every backend, or refused -------------------------------------------------


@pytest.mark.parametrize(("backend", "precision"), PATHS)
def test_tiles_with_instance_norm_match_torch_tiles_on_every_backend(tmp_path, backend, precision):
    source = exported(tmp_path, INSTANCE)
    x = image(96, 128)
    net = load_generator(source)
    untiled, tiled = (translate_image(net, x, tile=t, overlap=32, device="cpu") for t in (512, 64))
    generator = open_generator(source, backend, precision, "cpu")
    whole = translate_image(generator, x, tile=512, device="cpu")
    assert (whole - untiled).abs().max() <= tolerance(precision)
    # torch: the same hooks; a graph engine: the network cut at its norms, whole-image statistics as inputs
    got = translate_image(generator, x, tile=64, overlap=32, device="cpu")
    assert (got - tiled).abs().max() <= tolerance(precision)
    assert generator.tiles_path == f"{backend} {precision}"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_graph_file_with_instance_norm_refuses_tiles_naming_the_way_out(tmp_path, backend):
    source = exported(tmp_path, INSTANCE)
    onnx_file = export_onnx(source, tmp_path / "G.onnx")
    generator = open_generator(onnx_file, backend, "fp32", "cpu")
    message = f"backend '{backend}' cannot tile G.onnx: a graph file alone cannot be cut.*tile from the generator's .safetensors.*untiled"
    with pytest.raises(ConfigError, match=message):
        translate_image(generator, image(96, 128), tile=64, overlap=32, device="cpu")


@pytest.mark.parametrize(("backend", "precision"), PATHS)
def test_tiles_of_a_batch_norm_generator_equal_the_untiled_output_on_every_backend(tmp_path, backend, precision):
    source = exported(tmp_path, BATCH)
    x = image(96, 128)
    reference = translate_image(load_generator(source), x, tile=512, device="cpu")
    generator = open_generator(source, backend, precision, "cpu")
    untiled = translate_image(generator, x, tile=512, device="cpu")
    tiled = translate_image(generator, x, tile=64, overlap=32, device="cpu")
    assert (untiled - reference).abs().max() <= tolerance(precision)
    assert (tiled - untiled).abs().max() <= tolerance(precision)


# --- auto ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("segments_win", [False, True])
def test_auto_measures_once_and_tiles_on_the_faster_of_torch_and_segments(tmp_path, caplog, monkeypatch, segments_win):
    from translate.infer import backend as backend_module
    from translate.infer.graph_tiles import SegmentedGraph

    # a machine where OpenVINO bf16 wins the whole-image probe, and segments win or lose per tile
    monkeypatch.setattr(
        backend_module,
        "measure",
        lambda runners, channels: {r: 1.0 if r.backend == "openvino" else 2.0 for r in runners},
    )
    per_tile = {True: 1.0, False: 3.0}
    monkeypatch.setattr(
        backend_module,
        "_seconds_per_tile",
        lambda module, amp, side, channels: per_tile[segments_win] if isinstance(module, SegmentedGraph) else 2.0,
    )
    source = exported(tmp_path, INSTANCE)
    x = image(96, 128)
    with caplog.at_level(logging.INFO, logger="translate"):
        generator = open_generator(source, "auto", "auto", "cpu")
        for tile in (512, 64, 64):
            translate_image(generator, x, tile=tile, overlap=32, device="cpu")
    messages = [r.getMessage() for r in caplog.records]
    (opened,) = [m for m in messages if m.startswith("auto backend")]
    assert (
        "tiles with whole-image statistics: torch " in opened and " in segments, measured on the first tiled" in opened
    )
    (chosen,) = [m for m in messages if m.startswith("auto tiles")]  # once, on the first tiled image
    winner = "openvino" if segments_win else "torch"
    assert chosen.startswith(f"auto tiles for G.safetensors: {winner} ") and "per 64² tile" in chosen
    assert generator.tiles_path.startswith(f"{winner} ") and "measured" not in generator.tiles_path
    assert (generator._segmented is not None) == segments_win  # losing segments are not kept
    tiled = translate_image(load_generator(source), x, tile=64, overlap=32, device="cpu")
    assert (translate_image(generator, x, tile=64, overlap=32, device="cpu") - tiled).abs().max() <= BF16_TOLERANCE


def test_auto_without_a_faster_graph_tiles_on_torch_without_measuring_tiles(tmp_path, caplog, monkeypatch):
    from translate.infer import backend as backend_module

    monkeypatch.setattr(
        backend_module, "measure", lambda runners, channels: {r: 1.0 if r.backend == "torch" else 2.0 for r in runners}
    )
    source = exported(tmp_path, INSTANCE)
    with caplog.at_level(logging.INFO, logger="translate"):
        generator = open_generator(source, "auto", "auto", "cpu")
        translate_image(generator, image(96, 128), tile=64, overlap=32, device="cpu")
    assert generator.tiles_path.startswith("torch ") and "segments" not in generator.tiles_path
    assert not any(r.getMessage().startswith("auto tiles") for r in caplog.records)


def test_gan_translate_with_auto_logs_its_choice_once_over_many_images(tmp_path, caplog):
    source = exported(tmp_path, INSTANCE)
    transform = GANTranslate(source, backend="auto", precision="auto", p=1.0)
    pictures = [np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(3)]
    with caplog.at_level(logging.INFO, logger="translate"):
        outs = [transform(image=picture)["image"] for picture in pictures]
    assert sum("auto backend" in r.getMessage() for r in caplog.records) == 1
    assert all(out.shape == (40, 48, 3) and out.dtype == np.uint8 for out in outs)


# --- TranslateBatch and GANTranslate with an ONNX file and an imported checkpoint ------------------


def test_translate_batch_runs_an_onnx_file_like_the_torch_generator(tmp_path):
    source = exported(tmp_path, INSTANCE)
    onnx_file = export_onnx(source, tmp_path / "G.onnx")
    batch = (image(40, 56, seed=1).repeat(3, 1, 1, 1) + 1) / 2
    expected = TranslateBatch(source, p=1.0, amp="off")(batch)  # fp32: amp auto is bf16 on a bf16-native CPU
    for backend in ("onnxruntime", "openvino", "auto"):
        got = TranslateBatch(onnx_file, p=1.0, backend=backend, amp="off")(batch)
        assert got.shape == batch.shape and (got - expected).abs().max() <= 1e-4, backend


def test_translate_batch_and_gan_translate_run_an_imported_reference_checkpoint(imported):
    net = load_generator(imported)
    batch = (image(32, 48, seed=2).repeat(2, 1, 1, 1) + 1) / 2
    with torch.no_grad():
        expected = ((net(batch * 2 - 1).clamp(-1, 1) + 1) / 2).float()
    for backend in ("torch", "onnxruntime", "openvino"):
        got = TranslateBatch(imported, p=1.0, backend=backend, amp="off")(batch)
        assert (got - expected).abs().max() <= 1e-4, backend
    picture = (batch[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    torch_out = GANTranslate(imported, p=1.0)(image=picture)["image"]
    graph_out = GANTranslate(imported, p=1.0, backend="openvino")(image=picture)["image"]
    assert np.abs(torch_out.astype(int) - graph_out.astype(int)).max() <= 1


def test_backend_options_are_checked_with_clear_errors(tmp_path):
    source = exported(tmp_path, INSTANCE)
    onnx_file = export_onnx(source, tmp_path / "G.onnx")
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; known: torch, onnxruntime, openvino, auto"):
        TranslateBatch(source, backend="tensorrt")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        TranslateBatch(source, precision="fp8")
    with pytest.raises(ConfigError, match="runs a generator file; pass the path"):
        TranslateBatch(load_generator(source), backend="openvino")
    with pytest.raises(ConfigError, match="amp 'bf16' applies to backend 'torch' at precision 'fp32'"):
        TranslateBatch(source, backend="openvino", amp="bf16")
    with pytest.raises(ConfigError, match=r"backend 'torch' cannot run G.onnx.*\.onnx files run with backend"):
        TranslateBatch(onnx_file, p=1.0)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="backend"):
        GANTranslate(source, backend="tensorrt")


# --- the command line --------------------------------------------------------------------------


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def cli_translate(checkpoint: Path, source: Path, out: Path, *extra: str) -> int:
    args = ["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out)]
    return main([*args, "--device", "cpu", "--no-progress", *extra])


def test_cli_translates_with_an_onnx_file_and_refuses_tiles_it_cannot_keep_exact(tmp_path, capsys, caplog):
    source = exported(tmp_path, INSTANCE)
    onnx_file = export_onnx(source, tmp_path / "G.onnx")
    rgb = (image(64, 80).permute(0, 2, 3, 1)[0].add(1).mul(127.5).round().byte().numpy()).copy()
    picture = write_png(tmp_path / "in" / "a.png", rgb)
    assert cli_translate(source, picture, tmp_path / "torch") == 0
    assert cli_translate(onnx_file, picture, tmp_path / "ov", "--backend", "openvino") == 0
    torch_png, graph_png = (cv2.imread(str(tmp_path / d / "a.png")).astype(int) for d in ("torch", "ov"))
    assert np.abs(torch_png - graph_png).max() <= 1

    assert (
        cli_translate(
            onnx_file, picture, tmp_path / "tiled", "--backend", "openvino", "--tile", "32", "--overlap", "16"
        )
        != 0
    )
    err = capsys.readouterr().err
    assert "backend 'openvino' cannot tile G.onnx" in err and ".safetensors" in err and "untiled" in err
    assert not (tmp_path / "tiled" / "a.png").exists()

    with caplog.at_level(logging.INFO, logger="translate"):
        assert cli_translate(source, picture, tmp_path / "auto", "--backend", "auto", "--precision", "auto") == 0
    assert sum("auto backend for G.safetensors: " in r.getMessage() for r in caplog.records) == 1

    assert cli_translate(onnx_file, picture, tmp_path / "t2") != 0  # the default backend is torch
    assert "backend 'torch' cannot run G.onnx" in capsys.readouterr().err
    assert cli_translate(source, picture, tmp_path / "t3", "--backend", "openvino", "--amp", "bf16") != 0
    assert "--amp bf16 applies to the torch backend" in capsys.readouterr().err


# --- the app -----------------------------------------------------------------------------------


def app_service(folder: Path, tmp_path: Path, backend: str, precision: str = "fp32") -> TranslationService:
    cards, skipped = discover([folder], include_bundled=False, backend=backend)
    settings = InferenceSettings(device="cpu", tile=256, backend=backend, precision=precision)
    return TranslationService(cards, ResultFolder(tmp_path / f"results-{backend}"), Limits(), settings)


def test_app_offers_and_runs_an_onnx_model_like_its_torch_export(tmp_path):
    models = tmp_path / "models"
    source = exported(models, INSTANCE, "street")
    export_onnx(source, models / "street_onnx.onnx")
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)

    torch_only, skipped = discover([models], include_bundled=False)
    assert [c.path.name for c in torch_only] == ["street.safetensors"]
    assert any("street_onnx.onnx: an ONNX model runs with backend onnxruntime, openvino or auto" in s for s in skipped)

    service = app_service(models, tmp_path, "onnxruntime")
    onnx_label = next(label for label in service.labels if service.card(label).path.suffix == ".onnx")
    result = service.run(rgb, onnx_label)
    assert "(onnxruntime fp32)" in result.summary
    torch_result = app_service(models, tmp_path, "torch").run(rgb, "street")
    got, expected = (cv2.imread(str(r.png)).astype(int) for r in (result, torch_result))
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1


def test_app_runs_an_imported_reference_checkpoint_on_every_backend(imported, tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    pngs = {}
    for backend in ("torch", "openvino"):
        service = app_service(imported.parent, tmp_path, backend)
        pngs[backend] = cv2.imread(str(service.run(rgb, "imported").png)).astype(int)
    assert np.abs(pngs["torch"] - pngs["openvino"]).max() <= 1


# --- the benchmark -----------------------------------------------------------------------------


def test_bench_backend_table_prints_every_path_with_its_ratio_and_accuracy(capsys):
    args = argparse.Namespace(
        backends="torch,onnxruntime,openvino",
        precisions="fp32,bf16",
        sizes="32,48",
        repeats=1,
        tiled_size=96,
        tile=64,
        overlap=32,
        ngf=2,
        n_blocks=1,
        norm="instance",
        json=False,
    )
    assert backend_table(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 32²") or line.startswith("| 48²")]
    assert len(rows) == 2 * 5  # torch, openvino at fp32 and bf16, onnxruntime at fp32
    assert "| 32² | torch fp32" in out and "| 1.00× | 0.00e+00 | exact |" in out
    assert "  auto: " in out and " for tiles" in out
    assert "| 96² | tiled torch fp32 |" in out and "| 96² | tiled auto (" in out and "auto = " in out
    tiled = [line for line in out.splitlines() if line.startswith("| 96² | tiled ")]
    assert len(tiled) == 5 + 1  # every path tiles exactly (graph engines in segments), and auto
    tiled_fp32 = [float(r.split("|")[5]) for r in tiled if "onnxruntime fp32" in r or "openvino fp32" in r]
    assert max(tiled_fp32) <= 1e-4
    fp32_diffs = [float(r.split("|")[5]) for r in rows if "onnxruntime fp32" in r or "openvino fp32" in r]
    assert max(fp32_diffs) <= 1e-4
