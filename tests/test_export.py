"""Exported generators: one safetensors file that rebuilds itself, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_cyclegan_overrides
from safetensors.torch import save_file

import translate
from translate import io
from translate.cli import main
from translate.config import load_config
from translate.engine import train
from translate.errors import CheckpointError
from translate.nets import build_generator

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"


def test_export_roundtrip_reproduces_outputs(tmp_path):
    spec = {"name": "unet", "ngf": 4, "num_downs": 3, "norm": "instance", "upsample": "resize", "spectral_norm": True}
    net = build_generator(spec).eval()
    path = io.export_network(tmp_path / "g.safetensors", net, spec, info={"direction": "A->B"})
    loaded = translate.load_generator(path)
    x = torch.rand(1, 3, 21, 30) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    meta = io.read_metadata(path)
    assert meta["architecture"] == spec and meta["info"]["direction"] == "A->B"


def test_wrong_architecture_is_named(tmp_path):
    spec = {"name": "resnet", "ngf": 4, "n_blocks": 1}
    path = io.export_network(tmp_path / "g.safetensors", build_generator(spec), spec)
    other = build_generator({"name": "resnet", "ngf": 8, "n_blocks": 2})
    from safetensors.torch import load_file

    with pytest.raises(CheckpointError, match=r"g\.safetensors does not fit.*missing.*shape"):
        io.load_state_strict(other, load_file(str(path)), str(path))


def test_plain_safetensors_and_garbage_are_rejected(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an exported i2i network"):
        translate.load_generator(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        translate.load_generator(junk)
    with pytest.raises(CheckpointError, match="not found"):
        translate.load_generator(tmp_path / "missing.safetensors")


def test_train_exports_and_export_command(tiny_unpaired, tmp_path, capsys):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    result = train(load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, out, steps=3), "engine.ema_decay=0.9"]))
    assert set(result.exports) == {"G_AB", "G_BA"}
    meta = io.read_metadata(result.exports["G_AB"])
    assert meta["info"]["ema"] is True and meta["info"]["direction"] == "A->B"
    assert main(["export", str(out), "--out", str(tmp_path / "raw"), "--no-ema"]) == 0
    raw = translate.load_generator(tmp_path / "raw" / "G_AB.safetensors")
    ema = translate.load_generator(result.exports["G_AB"])
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(raw(x), ema(x))  # EMA weights differ from the last iterate
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
