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
from translate.engine import model_from_checkpoint, train
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


def state_of(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in net.state_dict().items()}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_train_exports_the_ema_weights_and_export_command_the_raw_ones(tiny_unpaired, tmp_path, capsys):
    a, b = tiny_unpaired
    out, decay = tmp_path / "run", 0.9
    overrides = [*tiny_cyclegan_overrides(a, b, out, steps=3), f"engine.ema_decay={decay}", "engine.save_every=1"]
    result = train(load_config(REFERENCE, overrides))
    assert set(result.exports) == {"G_AB", "G_BA"}
    meta = io.read_metadata(result.exports["G_AB"])
    assert meta["info"]["ema"] is True and meta["info"]["direction"] == "A->B"

    # the last two checkpoints (steps 2 and 3) hold the live weights and their running average
    _, ema_2, step_2 = model_from_checkpoint(out / "checkpoints" / "ckpt_00000002.pt")
    model_3, ema_3, step_3 = model_from_checkpoint(out / "checkpoints" / "ckpt_00000003.pt")
    assert (step_2, step_3) == (2, 3)
    for name in ("G_AB", "G_BA"):
        live = model_3.generators()[name]
        # the engine advanced the average once, after step 3's update: e3 = d e2 + (1 - d) w3
        for e2, e3, w3 in zip(
            ema_2.copies[name].parameters(), ema_3.copies[name].parameters(), live.parameters(), strict=True
        ):
            torch.testing.assert_close(e3, decay * e2 + (1 - decay) * w3, rtol=1e-6, atol=1e-7)
        # training exported exactly the average, not the last iterate
        assert_same_tensors(state_of(translate.load_generator(result.exports[name])), state_of(ema_3.copies[name]))

    # `i2i export --no-ema` writes exactly the live weights of the latest checkpoint
    assert main(["export", str(out), "--out", str(tmp_path / "raw"), "--no-ema"]) == 0
    raw = translate.load_generator(tmp_path / "raw" / "G_AB.safetensors")
    assert io.read_metadata(tmp_path / "raw" / "G_AB.safetensors")["info"]["ema"] is False
    assert_same_tensors(state_of(raw), state_of(model_3.generators()["G_AB"]))
    # and by default the command writes the average again, the same file contents as training's export
    assert main(["export", str(out), "--out", str(tmp_path / "again")]) == 0
    again = translate.load_generator(tmp_path / "again" / "G_AB.safetensors")
    assert_same_tensors(state_of(again), state_of(ema_3.copies["G_AB"]))

    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
