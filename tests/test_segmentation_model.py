"""Segmentation as a model of the registry: pretrained weights from local files (checked before
training), the engine's optimiser choices and schedules, and a segmenter trained by `i2i train`
whose export the semantic-consistency term loads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from translate.config import load_config
from translate.errors import ConfigError
from translate.models import build_model

TINY_UNET = {"name": "smp_unet", "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [8, 8, 8]}


def _deeplab(encoder: str) -> dict:
    return {"name": "smp_deeplabv3plus", "encoder": encoder, "num_classes": 5, "decoder_channels": 16}


def _seeded_encoder_file(tmp_path: Path, encoder: str, suffix: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """Weights of a seeded segmenter's encoder, as a user's ImageNet backbone file would hold them
    (with a classifier head ``fc.*`` the encoder does not have)."""
    from translate.nets import build_network

    torch.manual_seed(123)
    encoder_state = build_network("segmenter", _deeplab(encoder)).encoder().state_dict()
    state = {
        **{k: v.clone() for k, v in encoder_state.items()},
        "fc.weight": torch.zeros(10, 4),
        "fc.bias": torch.zeros(10),
    }
    path = tmp_path / f"{encoder}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path, encoder_state


def _model(spec: dict, **options):
    return build_model({"name": "segmentation", "segmenter": spec, **options})


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_encoder_weights_arrive_from_a_local_file(tmp_path: Path, suffix: str) -> None:
    path, expected = _seeded_encoder_file(tmp_path, "resnet18", suffix)
    torch.manual_seed(0)  # another initialisation than the file's
    model = _model(_deeplab("resnet18"), weights=str(path))
    loaded = model.S.encoder().state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    assert not torch.equal(_model(_deeplab("resnet18")).S.encoder().conv1.weight, expected["conv1.weight"])


@pytest.mark.slow
def test_deeplabv3plus_resnet50_encoder_weights_arrive_from_a_local_file(tmp_path: Path) -> None:
    path, expected = _seeded_encoder_file(tmp_path, "resnet50", ".pth")
    loaded = _model(_deeplab("resnet50"), weights=str(path)).S.encoder().state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_whole_segmenter_weights_arrive_from_an_export(tmp_path: Path) -> None:
    from translate.io import export_network

    torch.manual_seed(5)
    source = _model(TINY_UNET)
    file = export_network(tmp_path / "seg.safetensors", source.S, source.spec, family="segmenter")
    torch.manual_seed(6)
    model = _model(TINY_UNET, weights=str(file), weights_into="model")
    for (key, a), b in zip(source.S.state_dict().items(), model.S.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_a_missing_weights_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "imagenet_resnet50.pth"
    with pytest.raises(ConfigError, match=f"segmenter weights file not found: {missing}"):
        _model(_deeplab("resnet18"), weights=str(missing))


def test_a_mismatched_weights_file_is_an_error_naming_it_and_the_first_keys(tmp_path: Path) -> None:
    path, _ = _seeded_encoder_file(tmp_path, "resnet18", ".pth")
    # resnet18 weights into a resnet34 encoder: layer1.2 onwards are missing
    with pytest.raises(ConfigError, match=rf"segmenter weights {path} do not match the encoder .* missing layer1\.2\."):
        _model(_deeplab("resnet34"), weights=str(path))
    # the same keys with another shape: an RGB encoder into a one-channel U-Net
    torch.save(_model(TINY_UNET).S.encoder().state_dict(), tmp_path / "rgb.pth")
    with pytest.raises(
        ConfigError, match=r"rgb\.pth do not match .*\(1 mismatched keys\): conv1\.weight: \(64, 3, 7, 7\) in"
    ):
        _model({**TINY_UNET, "in_channels": 1}, weights=str(tmp_path / "rgb.pth"))


def test_a_file_without_tensors_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"cannot read segmenter weights .*notes\.pth"):
        _model(TINY_UNET, weights=str(tmp_path / "notes.pth"))
    torch.save({"step": 3}, tmp_path / "state.pth")
    with pytest.raises(ConfigError, match=r"state\.pth hold no state dict"):
        _model(TINY_UNET, weights=str(tmp_path / "state.pth"))


# --- optimisers and schedules --------------------------------------------------------------------


def test_onecycle_is_torchs_onecycle_and_poly_decays_with_power_0_9() -> None:
    from translate.engine import lr_factor
    from translate.engine.runtime import onecycle_momentum

    total = 50
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=total, pct_start=0.1)
    for step in range(total):
        assert math.isclose(opt.param_groups[0]["lr"], 2e-3 * lr_factor(step, total, "onecycle", 0), rel_tol=1e-9)
        assert math.isclose(opt.param_groups[0]["betas"][0], onecycle_momentum(step, total), rel_tol=1e-9)
        opt.step()
        sched.step()
    assert lr_factor(0, 100, "poly", 0) == 1.0
    assert math.isclose(lr_factor(50, 100, "poly", 0), 0.5**0.9)
    assert lr_factor(100, 100, "poly", 0) == 0.0


def _runtime(*overrides: str):
    from translate.distributed import DistEnv
    from translate.engine import build_runtime

    cfg = load_config(None, ["engine.device=cpu", "optim.max_steps=10", *overrides])
    return build_runtime(cfg, DistEnv(), steps_per_epoch=5)


def test_the_optimiser_is_chosen_per_config_and_gan_defaults_stay_adam() -> None:
    gan = _runtime("model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4")
    assert {type(o) for o in gan.optimizers.values()} == {torch.optim.Adam}
    assert gan.optimizers["G"].defaults["betas"] == (0.5, 0.999) and gan.optimizers["G"].defaults["weight_decay"] == 0

    seg = [f"model={{name: segmentation, segmenter: {TINY_UNET}}}".replace("'", "")]
    sgd = _runtime(*seg, "optim.optimizer=sgd", "optim.nesterov=true", "optim.lr_seg=0.01", "optim.weight_decay=5e-4")
    (optimizer,) = sgd.optimizers.values()
    assert isinstance(optimizer, torch.optim.SGD)
    expected = {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    assert {k: optimizer.defaults[k] for k in expected} == expected
    (adamw,) = _runtime(*seg, "optim.optimizer=adamw", "optim.weight_decay=1e-4").optimizers.values()
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 1e-4


def test_onecycle_cycles_the_momentum_of_the_engines_optimisers() -> None:
    from translate.engine import train_step

    seg = [f"model={{name: segmentation, segmenter: {TINY_UNET}}}".replace("'", "")]
    rt = _runtime(
        *seg, "optim.optimizer=adamw", "optim.schedule=onecycle", "optim.betas=[0.9,0.99]", "optim.max_steps=100"
    )
    (optimizer,) = rt.optimizers.values()
    assert optimizer.param_groups[0]["betas"] == (0.95, 0.99)  # OneCycleLR's start
    batch = {"image": torch.zeros(2, 3, 16, 16), "label": torch.zeros(2, 16, 16, dtype=torch.int64)}
    train_step(rt, batch)
    assert optimizer.param_groups[0]["betas"][0] < 0.95 and optimizer.param_groups[0]["betas"][1] == 0.99
    sgd = _runtime(*seg, "optim.optimizer=sgd", "optim.schedule=onecycle", "optim.max_steps=100")
    assert next(iter(sgd.optimizers.values())).param_groups[0]["momentum"] == 0.95


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.optimizer=lamb", "unknown optim.optimizer 'lamb'; known: adam, adamw, sgd"),
        ("optim.schedule=step", "unknown optim.schedule 'step'; known: constant, linear, cosine, poly, onecycle"),
    ],
)
def test_unknown_optimiser_or_schedule_is_an_error_naming_it(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _runtime("model.generator.ngf=4", "model.generator.n_blocks=1", override)


# --- trained by `i2i train` ---------------------------------------------------------------------


def _scene_folder(tmp_path: Path, n: int = 4) -> dict[str, str]:
    from apps.study.segmenter import write_segmentation_folder
    from translate.synthetic import SceneGenerator

    gen = SceneGenerator(seed=0, height=32, width=64)
    scenes = [gen.scene(i, "source") for i in range(n)]
    images, labels = np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])
    return write_segmentation_folder(images, labels, tmp_path / "data")


def test_i2i_train_trains_a_segmenter_whose_export_the_semantic_term_loads(tmp_path: Path) -> None:
    import yaml

    from translate.cli import main
    from translate.io import read_metadata
    from translate.models.semantic import SemanticConsistency

    config = {
        "name": "seg",
        "out_dir": str(tmp_path / "run"),
        "data": {"dataset": {"name": "segmentation_pairs", **_scene_folder(tmp_path)}, "batch_size": 2},
        "model": {"name": "segmentation", "segmenter": TINY_UNET},
        "optim": {"optimizer": "sgd", "lr_seg": 0.01, "schedule": "poly", "max_steps": 2},
        "engine": {"device": "cpu", "tensorboard": False, "progress": False, "log_every": 1},
    }
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "seg.yaml")]) == 0
    export = tmp_path / "run" / "export" / "S.safetensors"
    meta = read_metadata(export)
    assert meta["family"] == "segmenter" and meta["architecture"]["decoder_channels"] == [8, 8, 8]
    term = SemanticConsistency.from_file(export)
    images = torch.zeros(1, 3, 32, 64)
    assert term(images, images).ndim == 0
    header, first, _ = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    logged = dict(zip(header.split(","), first.split(","), strict=True))
    assert float(logged["loss"]) > 0
    assert math.isclose(float(logged["lr_S"]), 0.01 * 0.5**0.9)  # poly: the rate of step 1 of 2


def test_a_missing_weights_file_stops_i2i_train_before_training(tmp_path: Path, capsys) -> None:
    from translate.cli import main

    missing = tmp_path / "resnet18_imagenet.pth"
    assert main(["train", str(_write_yaml(tmp_path, missing))]) != 0
    assert f"segmenter weights file not found: {missing}" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def _write_yaml(tmp_path: Path, weights: Path) -> Path:
    import yaml

    config = {
        "out_dir": str(tmp_path / "run"),
        "data": {"dataset": {"name": "segmentation_pairs", **_scene_folder(tmp_path)}, "batch_size": 2},
        "model": {"name": "segmentation", "segmenter": TINY_UNET, "weights": str(weights)},
        "optim": {"max_steps": 2},
        "engine": {"device": "cpu", "tensorboard": False, "progress": False},
    }
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_checkpoint_config_from_before_the_optimiser_keys_resumes_as_adam() -> None:
    from translate.config import config_dict, trajectory_changes

    current = config_dict(load_config(None, []))
    stored = {**current, "optim": {k: v for k, v in current["optim"].items() if k in ("lr_g", "lr_d", "betas")}}
    assert trajectory_changes(stored, current) == []
    sgd = config_dict(load_config(None, ["optim.optimizer=sgd"]))
    assert trajectory_changes(stored, sgd) == ["optim.optimizer: adam -> sgd"]


def _unet(depth: int = 3):
    from translate.nets import build_network

    channels = [64, 32, 16, 16, 16][:depth]
    spec = {"name": "smp_unet", "encoder": "resnet18", "encoder_depth": depth, "decoder_channels": channels}
    torch.manual_seed(7)
    return build_network("segmenter", {**spec, "num_classes": 5})


def test_a_shallow_unet_holds_only_the_encoder_stages_it_runs_and_computes_as_smp_does() -> None:
    import segmentation_models_pytorch as smp

    net = _unet(depth=3).eval()
    torch.manual_seed(7)  # smp's own net, built from the same seed, keeps layer3 and layer4
    whole = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(64, 32, 16), classes=5)
    whole.eval()
    assert net.unused_encoder_stages == ("layer3", "layer4")
    assert not any(".layer3." in k or ".layer4." in k for k in net.state_dict())
    held = sum(p.numel() for p in net.parameters())
    assert held < 1_000_000 < sum(p.numel() for p in whole.parameters())
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), whole(x))  # the same initial weights where both have them
    assert _unet(depth=5).unused_encoder_stages == ()


def test_segmenter_files_written_with_the_unused_stages_still_load(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    from translate.nets.segmenters import load_segmenter_weights

    torch.manual_seed(3)
    whole = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(64, 32, 16), classes=5)
    old_export = {f"net.{k}": v for k, v in whole.state_dict().items()}
    assert any(".layer4." in k for k in old_export)
    net = _unet()
    net.load_state_dict(old_export)  # strict: only the dropped stages' keys are skipped
    assert torch.equal(net.net.encoder.layer1[0].conv1.weight, whole.encoder.layer1[0].conv1.weight)
    torch.save(old_export, tmp_path / "old.pth")
    load_segmenter_weights(_unet(), tmp_path / "old.pth", into="model")
    backbone = {**whole.encoder.state_dict(), "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}
    torch.save(backbone, tmp_path / "imagenet.pth")  # a whole ResNet-18 file, as torchvision's
    fresh = _unet()
    load_segmenter_weights(fresh, tmp_path / "imagenet.pth", into="encoder")
    assert torch.equal(fresh.net.encoder.layer2[1].conv2.weight, whole.encoder.layer2[1].conv2.weight)
    broken = dict(old_export)
    del broken["net.encoder.layer1.0.conv1.weight"]
    with pytest.raises(RuntimeError, match="layer1.0.conv1.weight"):
        _unet().load_state_dict(broken)


def test_exported_segmenters_with_the_unused_stages_load_as_networks_and_as_frozen_terms(tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    from translate.io import export_network, load_network
    from translate.models.frozen import frozen_network, read_export

    torch.manual_seed(5)
    before = torch.nn.Module()  # what an export written before the stages were dropped held
    before.net = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(64, 32, 16), classes=5)
    spec = {"name": "smp_unet", "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [64, 32, 16]}
    path = export_network(tmp_path / "old.safetensors", before, {**spec, "num_classes": 5}, family="segmenter")
    x = torch.rand(1, 3, 16, 24)
    expected = before.net.eval()(x)
    loaded, _ = load_network(path)
    frozen = frozen_network("segmenter", *read_export(path, "segmenter", "test", "a segmenter"), source=str(path))
    with torch.no_grad():
        assert torch.equal(loaded(x), expected) and torch.equal(frozen(x), expected)
