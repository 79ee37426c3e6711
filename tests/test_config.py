"""Configs: strict keys, typed values, overrides, and every shipped YAML loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate.cli import main
from translate.config import load_config
from translate.errors import ConfigError

# experiment configs of `i2i train`; study_*.yaml are `i2i study` configs, checked below
CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "configs").glob("*.yaml") if not p.name.startswith("study_"))
STUDY_CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("study_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path):
    from translate.models import build_model

    cfg = load_config(path)
    model = build_model(cfg.model)
    # every shipped model declares a generator group, but the study's segmenter, which averages nothing
    assert model.averaged_nets() or cfg.model["name"] == "segmentation"


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: p.name)
def test_shipped_study_configs_load(path):
    from apps.study.config import load_study_config

    cfg = load_study_config(path)
    assert cfg.conditions and cfg.translators and len(cfg.segmenter.seeds) >= 1


def test_reference_defaults_are_the_published_ones():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml")
    assert cfg.model["generator"]["n_blocks"] == 9 and cfg.model["generator"]["ngf"] == 64
    assert cfg.model["gan_loss"] == "lsgan" and cfg.model["lambda_cycle"] == 10 and cfg.model["lambda_identity"] == 0.5
    assert cfg.model["pool_size"] == 50 and cfg.data.batch_size == 1
    assert (cfg.data.load_size, cfg.data.crop_size) == (286, 256)
    assert (cfg.optim.lr_g, cfg.optim.betas, cfg.optim.epochs_constant, cfg.optim.epochs_decay) == (
        2e-4,
        [0.5, 0.999],
        100,
        100,
    )


def test_unknown_keys_are_errors_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr_gen: 0.1\n")
    with pytest.raises(ConfigError, match="lr_gen"):
        load_config(bad)
    with pytest.raises(ConfigError, match="engine.ampp"):
        load_config(None, ["engine.ampp=bf16"])
    with pytest.raises(ConfigError, match="lambda_cycel"):
        load_config(None, ["model.lambda_cycel=3"])
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(None, ["optim.max_steps=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.max_steps"])
    with pytest.raises(ConfigError, match="unknown model 'cyclegann'"):
        load_config(None, ["model.name=cyclegann"])


def test_overrides_apply_and_models_check_their_own_options():
    cfg = load_config(None, ["model.name=pix2pix", "model.lambda_l1=50", "engine.amp=bf16"])
    assert cfg.model["lambda_l1"] == 50 and cfg.engine.amp == "bf16"
    with pytest.raises(ConfigError, match="lambda_l1"):
        load_config(None, ["model.lambda_l1=50"])  # a pix2pix option on the default cyclegan


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config file not found" in err
    assert main(["train", "--print-config", str(CONFIGS[0]), "optim.lr_g=0.5"]) == 0
    assert "lr_g: 0.5" in capsys.readouterr().out


def test_bad_engine_values_fail_before_training(tmp_path):
    from translate.distributed import DistEnv
    from translate.engine import build_runtime

    with pytest.raises(ConfigError, match="engine.amp"):
        build_runtime(load_config(None, ["engine.amp=fp8", "optim.max_steps=1"]), DistEnv(), 1)
    with pytest.raises(ConfigError, match="optim.schedule"):
        build_runtime(
            load_config(
                None,
                ["optim.schedule=step", "optim.max_steps=1", "model.generator={name: resnet, ngf: 4, n_blocks: 1}"],
            ),
            DistEnv(),
            1,
        )
