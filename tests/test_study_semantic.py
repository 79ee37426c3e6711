"""Segmenters as an exportable network family, and CyCADA's semantic-consistency term: what it
measures, that it trains the translator and never the frozen segmenter, and its config errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_cyclegan_overrides

from translate.cli import main
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, model_from_checkpoint, train, train_step
from translate.errors import ConfigError
from translate.io import export_network, load_network, read_metadata
from translate.models.semantic import SemanticConsistency, read_exported_segmenter

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"

SPEC = {"name": "smp_unet", "num_classes": 5, "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [8, 8, 8]}


@pytest.fixture
def segmenter_file(tmp_path: Path) -> Path:
    from translate.nets import build_network

    torch.manual_seed(0)
    net = build_network("segmenter", SPEC).eval()
    return export_network(tmp_path / "seg.safetensors", net, SPEC, family="segmenter", info={"trained_on": "A"})


def test_segmenter_exports_and_loads_with_its_spec(segmenter_file: Path) -> None:
    meta = read_metadata(segmenter_file)
    assert meta["family"] == "segmenter" and meta["architecture"]["num_classes"] == 5
    net, _ = load_network(segmenter_file)
    x = torch.rand(2, 3, 20, 36) * 2 - 1  # not a multiple of 8: padded inside, cropped back
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 5, 20, 36)


def test_semantic_term_is_low_for_the_same_content_and_high_for_other_content(segmenter_file: Path) -> None:
    term = SemanticConsistency.from_file(segmenter_file)
    g = torch.Generator().manual_seed(0)
    source = torch.rand(4, 3, 24, 40, generator=g) * 2 - 1
    same = term(source, source)
    other = term(source, torch.rand(4, 3, 24, 40, generator=g) * 2 - 1)
    assert same < other
    assert all(not p.requires_grad for p in term.segmenter.parameters())
    term.train()
    assert not term.segmenter.training  # batch-norm statistics of the frozen net never drift


def test_cyclegan_with_semantic_weight_trains_the_generator_only(segmenter_file: Path) -> None:
    overrides = [
        "model.name=cyclegan",
        "model.generator={name: resnet, ngf: 4, n_blocks: 1}",
        "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
        "model.pool_size=0",
        "model.lambda_semantic=1.0",
        f"model.semantic_segmenter={segmenter_file}",
        "optim.max_steps=4",
        "engine.device=cpu",
    ]
    rt = build_runtime(load_config(None, overrides), DistEnv(), steps_per_epoch=1)
    frozen = {k: v.clone() for k, v in rt.model.semantic.segmenter.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for k in ("A", "B")}
    logs = train_step(rt, batch)
    assert "semantic" in logs and torch.isfinite(logs["semantic"])
    for k, v in rt.model.semantic.segmenter.state_dict().items():
        torch.testing.assert_close(v, frozen[k], msg=k)
    # the term changes G's update and nothing else: same start, same batch, with and without it
    with_term = build_runtime(load_config(None, overrides), DistEnv(), steps_per_epoch=1)
    without = build_runtime(
        load_config(None, [o for o in overrides if "semantic" not in o]), DistEnv(), steps_per_epoch=1
    )
    for name, net in without.model.all_nets().items():
        for (k, a), b in zip(
            net.state_dict().items(), with_term.model.all_nets()[name].state_dict().values(), strict=False
        ):
            torch.testing.assert_close(a, b, msg=f"{name}.{k} starts equal")
    train_step(with_term, batch)
    train_step(without, batch)
    g_moved = [
        not torch.equal(a, b)
        for a, b in zip(with_term.model.G_AB.parameters(), without.model.G_AB.parameters(), strict=False)
    ]
    assert any(g_moved)
    for a, b in zip(with_term.model.D_A.parameters(), without.model.D_A.parameters(), strict=False):
        torch.testing.assert_close(a, b)


def test_semantic_term_config_errors(tmp_path: Path) -> None:
    base = ["model.name=cyclegan", "model.generator={name: resnet, ngf: 4, n_blocks: 1}", "engine.device=cpu"]
    with pytest.raises(ConfigError, match="semantic_segmenter"):
        build_runtime(load_config(None, [*base, "model.lambda_semantic=1.0"]), DistEnv(), steps_per_epoch=1)
    with pytest.raises(ConfigError, match="segmenter file not found"):
        build_runtime(
            load_config(
                None, [*base, "model.lambda_semantic=1.0", f"model.semantic_segmenter={tmp_path / 'x.safetensors'}"]
            ),
            DistEnv(),
            steps_per_epoch=1,
        )
    from translate.errors import CheckpointError
    from translate.models.semantic import semantic_term
    from translate.nets import build_generator

    generator = {"name": "resnet", "ngf": 4, "n_blocks": 1}
    not_a_segmenter = export_network(tmp_path / "g.safetensors", build_generator(generator), generator)
    with pytest.raises(CheckpointError, match=r"g\.safetensors holds a generator, not an exported segmenter"):
        semantic_term(1.0, str(not_a_segmenter))
    # weights stored in a checkpoint that do not fit the stored spec are refused, not half-loaded
    with pytest.raises(CheckpointError, match="the segmenter weights do not fit its spec"):
        semantic_term(1.0, "", stored=(SPEC, {"encoder.conv1.weight": torch.zeros(1)}))


def test_scores_use_present_classes_and_ignore_255() -> None:
    from apps.study.metrics import score

    label = np.array([[0, 0, 1, 255]], np.uint8)[None]
    pred = np.array([[0, 1, 1, 2]], np.uint8)[None]
    report = score(pred, label)
    assert set(report["per_class"]) == {"road", "sidewalk"}  # class 2 never in the labels: not judged
    assert report["per_class"]["road"] == pytest.approx(0.5) and report["per_class"]["sidewalk"] == pytest.approx(0.5)
    assert report["pixel_accuracy"] == pytest.approx(2 / 3)  # the ignored pixel counts for nothing


def assert_same_weights(net: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = net.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key].cpu(), value), key


def test_cycada_checkpoint_carries_its_segmenter(segmenter_file: Path, tiny_unpaired, tmp_path: Path) -> None:
    """Export and resume of a CyCADA run work after its run folder moved and its segmenter file
    went away, and use the segmenter weights stored in the checkpoint, not whatever the path holds."""
    a, b = tiny_unpaired
    first, moved = tmp_path / "run", tmp_path / "elsewhere" / "run"
    semantic = ["model.lambda_semantic=1.0", f"model.semantic_segmenter={segmenter_file}", "engine.save_every=2"]
    train(load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, first, steps=4), *semantic, "engine.stop_at_step=2"]))
    _, original = read_exported_segmenter(segmenter_file)
    shutil.move(str(first), str(moved))
    segmenter_file.unlink()

    assert main(["export", str(moved), "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "G_AB.safetensors").is_file()
    model, _, step = model_from_checkpoint(moved / "checkpoints" / "ckpt_00000002.pt")
    assert step == 2
    assert_same_weights(model.semantic.segmenter, original)

    # the same command resumes in the moved folder without the file ...
    resume = [*tiny_cyclegan_overrides(a, b, moved, steps=4), *semantic]
    result = train(load_config(REFERENCE, [*resume, "engine.stop_at_step=3"]))
    assert result.step == 3
    assert_same_weights(result.model.semantic.segmenter, original)
    # ... and ignores another segmenter (another architecture) put at the old path
    from translate.nets import build_network

    other = {**SPEC, "num_classes": 4}
    export_network(segmenter_file, build_network("segmenter", other), other, family="segmenter")
    result = train(load_config(REFERENCE, resume))
    assert result.step == 4
    assert_same_weights(result.model.semantic.segmenter, original)
