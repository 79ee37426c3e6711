"""ONNX / OpenVINO export and the runners: every generator family the toolkit trains runs in ONNX
Runtime and OpenVINO within 1e-4 of torch fp32, at square, non-square and tiny sizes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from translate.deploy import (
    backends,
    export_onnx,
    export_openvino,
    open_runner,
    read_onnx_metadata,
    read_openvino_metadata,
)
from translate.errors import CheckpointError, ConfigError
from translate.io import export_network, file_sha256, load_generator
from translate.nets import build_generator

# translate.deploy imports its engines only when used; these tests need them all (the deploy extra)
onnx = pytest.importorskip("onnx", reason="the deploy extra is not installed")
pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
pytest.importorskip("openvino", reason="the deploy extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
APP_MODELS = ROOT / "apps" / "app" / "models"
TOLERANCE = 1e-4
# square, non-square, and smaller than the U-Net's padding (the runner replicates edges first)
SIZES = [(64, 64), (40, 72), (9, 13)]

FAMILIES = {
    "resnet": {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance", "upsample": "resize"},
    "resnet_transpose": {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance", "upsample": "transpose"},
    "unet": {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch"},
    "cut_resnet": {"name": "cut_resnet", "ngf": 4, "n_blocks": 2, "norm": "instance"},
}


def _exported(tmp_path: Path, spec: dict) -> Path:
    torch.manual_seed(0)
    net = build_generator(spec).eval()
    return export_network(tmp_path / f"{spec['name']}.safetensors", net, spec, info={"value_range": [-1, 1]})


def _assert_runner_matches_torch(runner, generator, sizes=SIZES, tolerance=TOLERANCE) -> None:
    for h, w in sizes:
        x = torch.rand(2, generator.in_channels, h, w) * 2 - 1
        with torch.no_grad():
            expected = generator(x)
        got = runner(x)
        assert got.shape == expected.shape and got.dtype == torch.float32
        worst = (got - expected).abs().max().item()
        assert worst <= tolerance, f"{runner} at {h}×{w}: max |Δ| {worst:.2e}"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_export_runs_in_onnxruntime_and_openvino_like_torch(tmp_path, family):
    source = _exported(tmp_path, FAMILIES[family])
    model = export_onnx(source, tmp_path / "G.onnx")
    generator = load_generator(source)
    for backend in ("onnxruntime", "openvino"):
        _assert_runner_matches_torch(open_runner(model, backend, "fp32"), generator)


@pytest.mark.parametrize("name", ["sim_to_real", "photo_to_ink"])  # one ResNet, one U-Net of the app
def test_the_apps_models_export_and_run_like_torch(tmp_path, name):
    source = APP_MODELS / f"{name}.safetensors"
    model = export_onnx(source, tmp_path / f"{name}.onnx")
    generator = load_generator(source)
    for backend in ("onnxruntime", "openvino"):
        _assert_runner_matches_torch(open_runner(model, backend, "fp32"), generator)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["real_to_sim", "ink_to_photo"])
def test_the_other_app_models_export_and_run_like_torch(tmp_path, name):
    test_the_apps_models_export_and_run_like_torch(tmp_path, name)


def test_onnx_metadata_describes_the_generator(tmp_path):
    source = APP_MODELS / "sim_to_real.safetensors"
    model = export_onnx(source, tmp_path / "G.onnx")
    meta = read_onnx_metadata(model)
    assert meta["family"] == "generator" and meta["architecture"]["name"] == "resnet"
    assert meta["info"]["model"] == "cyclegan" and meta["value_range"] == [-1, 1]
    assert meta["source_sha256"] == file_sha256(source) and meta["size_multiple"] == 2
    graph = onnx.load(str(model))
    assert graph.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_openvino_ir_export_keeps_the_metadata_and_runs(tmp_path):
    source = _exported(tmp_path, FAMILIES["unet"])
    xml = export_openvino(source, tmp_path / "ir" / "G.xml")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert sorted(p.name for p in xml.parent.iterdir()) == ["G.bin", "G.xml"]  # no scratch left behind
    assert read_openvino_metadata(xml)["architecture"]["num_downs"] == 5
    _assert_runner_matches_torch(open_runner(xml, "openvino", "fp32"), load_generator(source))


def test_bf16_runners_stay_close_to_fp32(tmp_path):
    source = _exported(tmp_path, FAMILIES["resnet"])
    generator = load_generator(source)
    for backend in ("torch", "openvino"):
        _assert_runner_matches_torch(open_runner(source, backend, "bf16"), generator, SIZES[:1], tolerance=0.1)


def test_auto_measures_the_candidates_and_logs_its_choice_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(backends, "bf16_native", lambda device: False)  # keep the probe to the fp32 paths
    source = _exported(tmp_path, FAMILIES["resnet"])
    with caplog.at_level(logging.INFO, logger="translate.deploy.backends"):
        runner = open_runner(source)
    lines = [r.getMessage() for r in caplog.records if "auto backend" in r.getMessage()]
    assert len(lines) == 1
    assert f"auto backend: {runner.backend} fp32" in lines[0]
    assert all(name in lines[0] for name in ("torch fp32", "onnxruntime fp32", "openvino fp32"))
    _assert_runner_matches_torch(runner, load_generator(source), SIZES[:1])


def test_auto_offers_bf16_only_where_the_device_computes_it(tmp_path, monkeypatch):
    source = _exported(tmp_path, FAMILIES["resnet"])
    cpu = torch.device("cpu")
    monkeypatch.setattr(backends, "bf16_native", lambda device: False)
    assert {p for _, p in backends.candidates(source, "auto", "auto", cpu)} == {"fp32"}
    monkeypatch.setattr(backends, "bf16_native", lambda device: True)
    assert ("openvino", "bf16") in backends.candidates(source, "auto", "auto", cpu)
    assert ("onnxruntime", "bf16") not in backends.candidates(source, "auto", "auto", cpu)


@pytest.mark.parametrize(
    "suffix, backend, precision, message",
    [
        (".onnx", "torch", "fp32", "backend 'torch' cannot run G.onnx; it runs .safetensors files"),
        (".safetensors", "onnxruntime", "bf16", "backend 'onnxruntime' runs fp32, not bf16"),
        (".safetensors", "tensorrt", "fp32", "unknown backend 'tensorrt'"),
        (".safetensors", "torch", "fp16", "unknown precision 'fp16'"),
    ],
)
def test_a_backend_that_cannot_run_the_file_says_why(tmp_path, suffix, backend, precision, message):
    source = _exported(tmp_path, FAMILIES["resnet"])
    path = source if suffix == ".safetensors" else export_onnx(source, tmp_path / "G.onnx")
    with pytest.raises(ConfigError, match=message):
        open_runner(path, backend, precision)


def test_a_missing_engine_names_the_deploy_extra(tmp_path, monkeypatch):
    from translate.deploy import optional

    monkeypatch.setattr(optional, "is_installed", lambda module: module not in ("onnx", "onnxruntime"))
    source = _exported(tmp_path, FAMILIES["resnet"])
    with pytest.raises(ConfigError, match=r"needs the 'onnxruntime' package.*pip install 'i2i-translate\[deploy\]'"):
        open_runner(source, "onnxruntime", "fp32")
    with pytest.raises(ConfigError, match=r"ONNX export needs the 'onnx' package.*i2i-translate\[deploy\]"):
        export_onnx(source, tmp_path / "G.onnx")
    assert not (tmp_path / "G.onnx").exists()


def test_only_image_generators_export_and_nothing_is_half_written(tmp_path):
    from translate.nets import build_network

    spec = {"name": "mlp", "noise_dim": 2, "width": 8, "depth": 1}
    sampler = export_network(tmp_path / "S.safetensors", build_network("sampler", spec), spec, family="sampler")
    with pytest.raises(CheckpointError, match="holds a sampler; only image-to-image generators export to ONNX"):
        export_onnx(sampler, tmp_path / "S.onnx")
    not_ours = tmp_path / "plain.onnx"
    not_ours.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is not an ONNX model"):
        read_onnx_metadata(not_ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.safetensors", "plain.onnx"]


def test_cli_export_onnx_from_an_exported_generator(tmp_path, capsys):
    from translate.cli import main

    source = _exported(tmp_path, FAMILIES["resnet"])
    assert main(["export", str(source), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    model = tmp_path / "onnx" / "resnet.onnx"
    assert str(model) in capsys.readouterr().out
    assert read_onnx_metadata(model)["architecture"] == FAMILIES["resnet"]
    assert main(["export", str(source)]) == 2
    assert "use --format onnx or openvino" in capsys.readouterr().err
