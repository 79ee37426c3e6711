"""Text to image (GAN-INT-CLS): captions from measured attributes, the tokeniser, the joint
embedding, the matching-aware discriminator loss, the exported sampler (`i2i sample --text`, the
Python API, SyntheticMix) and a short run that learns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from translate import io
from translate.cli import main
from translate.data.captions import (
    DIGIT_VOCABULARY,
    UNSTATED,
    AttributeThresholds,
    DigitCaptions,
    Tokeniser,
    caption_for,
    held_out,
    ink_mass,
    ink_slant,
    parse_combination,
    split_words,
)
from translate.errors import ConfigError
from translate.models.text2image import (
    joint_embedding_loss,
    matching_aware_d_loss,
    meaning_matches,
    mismatched_captions,
)
from translate.nets import SAMPLERS
from translate.nets.text import ImageEncoder, TextEncoder
from translate.objectives import build_objective
from translate.registry import resolved_spec
from translate.sampling import TextSampler, load_sampler

CONFIG = Path(__file__).parents[1] / "configs" / "text2image_digits.yaml"


@pytest.fixture(scope="module")
def captioned():
    return DigitCaptions(split="train", size=32)


def export_text_sampler(path: Path) -> Path:
    spec = resolved_spec(
        SAMPLERS,
        {"name": "text_dcgan", "vocabulary": list(DIGIT_VOCABULARY), "text_width": 8, "text_dim": 8, "width": 4},
    )
    torch.manual_seed(0)
    net = SAMPLERS.build(spec).eval()
    info = {"model": "text2image", "input": "text", "class_captions": [caption_for(k) for k in range(10)]}
    return io.export_network(path, net, spec, "sampler", info)


# --- captions and tokeniser -------------------------------------------------------------------


def test_tokeniser_round_trip_and_clear_errors_for_unknown_empty_and_long_captions():
    tok = Tokeniser(DIGIT_VOCABULARY)
    ids = tok.encode("The digit 7, written THICK and slanted left.")
    assert ids.shape == (12,) and ids.dtype == torch.long and int(ids[8]) == 0  # 8 words, then padding
    assert tok.decode(ids) == "the digit 7 written thick and slanted left"
    assert torch.equal(tok.encode("an eight"), tok.encode("a eight")) and caption_for(8) == "an eight"
    with pytest.raises(ConfigError, match=r"caption 'a fat seven': unknown word\(s\) fat; known words: 0, 1"):
        tok.encode("a fat seven")
    with pytest.raises(ConfigError, match="caption '  ,' is empty"):
        tok.encode("  ,")
    with pytest.raises(ConfigError, match="has 13 words; at most 12"):
        tok.encode(" ".join(["a"] * 13))
    with pytest.raises(ConfigError, match="unknown word"):  # the padding token is no word
        tok.encode("a <pad> seven")


def test_attributes_follow_ink_and_slant():
    image = -torch.ones(1, 1, 32, 32)
    thin, thick, lean = image.clone(), image.clone(), image.clone()
    thin[..., 4:28, 15:17] = 1  # a vertical bar, 2 px
    thick[..., 4:28, 13:19] = 1  # 6 px
    for row in range(4, 28):  # a bar whose top lies to the right
        lean[..., row, 24 - (row - 4) // 2 : 26 - (row - 4) // 2] = 1
    assert float(ink_mass(thick)) > 2.5 * float(ink_mass(thin))
    assert float(ink_slant(lean)) > 0.3 and abs(float(ink_slant(thin))) < 1e-6
    # thresholds measured on images split them: the thick bar is judged thick, the thin one thin
    labels = torch.zeros(4, dtype=torch.long)
    th = AttributeThresholds.measure(torch.cat([thin, thin, thick, thick]), labels, classes=1)
    thickness, _ = th.judge(torch.cat([thin, thick]), labels[:2])
    assert thickness.tolist() == [0, 1]


def test_captions_state_the_label_and_measured_attributes(captioned):
    words = {0: ("thin", "light"), 1: ("thick", "bold")}
    for index in range(0, 200, 7):
        text, thickness, slant = captioned.caption(index, seed=index)
        digit = int(captioned.labels[index])
        assert {str(digit), caption_for(digit).split()[-1]} & set(split_words(text)), text
        if thickness != UNSTATED:
            assert any(w in text for w in words[thickness]), text
        if slant != UNSTATED:
            assert ("left" if slant == 0 else "right") in text, text
    # a new key seed may bring a new phrasing of the same item
    assert len({captioned.caption(0, seed)[0] for seed in range(20)}) > 3


def test_hold_out_removes_a_combination_and_bad_entries_are_named(captioned):
    threes = captioned.labels == 3
    held = held_out(captioned.labels, captioned.thickness, captioned.slant, [parse_combination("thick 3")])
    assert int((threes & (captioned.thickness == 1)).sum()) > 20
    assert torch.equal(held, threes & (captioned.thickness == 1))
    assert parse_combination("left 7") == (7, "slant", 0)
    with pytest.raises(ConfigError, match=r"hold_out entry 'fat 3' must be an attribute and a digit, e.g. 'thick 3'"):
        DigitCaptions(hold_out=["fat 3"])


# --- joint embedding and GAN-CLS --------------------------------------------------------------


def test_contrastive_encoders_score_matching_pairs_above_mismatched(captioned):
    torch.manual_seed(0)
    items = [captioned[(i, i)] for i in range(0, 1400, 11)][:96]
    tokens = torch.stack([it["tokens"] for it in items])
    images = torch.stack([it["image"] for it in items])
    fits = meaning_matches(*(torch.stack([it[k] for it in items]) for k in ("label", "thickness", "slant")))
    text, image = TextEncoder(len(DIGIT_VOCABULARY), 16, 16), ImageEncoder(width=8, dim=16)
    opt = torch.optim.Adam([*text.parameters(), *image.parameters()], lr=3e-3)

    def gap() -> float:
        with torch.no_grad():
            sim = text(tokens) @ image(images).t()
        return float(sim[fits].mean() - sim[~fits].mean())

    before = gap()
    for _ in range(25):
        loss = joint_embedding_loss(text(tokens), image(images), fits, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = gap()
    assert abs(before) < 0.1 and after > 0.3, (before, after)


def test_matching_aware_loss_has_its_three_terms():
    nsgan = build_objective("nsgan")
    real, fake, wrong = torch.tensor([[2.0], [1.0]]), torch.tensor([[-1.0], [0.5]]), torch.tensor([[0.3], [-2.0]])
    expected = (
        F.softplus(-real).mean() + 0.5 * F.softplus(fake).mean() + 0.5 * F.softplus(wrong).mean()
    )  # Reed: log D(real, right) + ½ [log(1 - D(real, wrong)) + log(1 - D(fake, right))]
    assert torch.allclose(matching_aware_d_loss(nsgan, real, fake, wrong, 0.5), expected)
    # the mismatched pairs pull the loss up when D calls them real, and not at all without the term
    assert matching_aware_d_loss(nsgan, real, fake, wrong + 3, 0.5) > matching_aware_d_loss(
        nsgan, real, fake, wrong, 0.5
    )
    plain = F.softplus(-real).mean() + F.softplus(fake).mean()
    assert torch.allclose(matching_aware_d_loss(nsgan, real, fake, wrong, 0.0), plain)
    assert torch.allclose(matching_aware_d_loss(nsgan, real, fake, wrong + 3, 0.0), plain)


def test_mismatched_captions_do_not_fit_their_image():
    label = torch.tensor([3, 3, 3, 5, 5, 7])
    thickness = torch.tensor([1, UNSTATED, 1, 0, 0, 1])
    slant = torch.full((6,), UNSTATED)
    fits = meaning_matches(label, thickness, slant)
    assert bool(fits[1, 0]) and not bool(fits[0, 3])  # "a three" fits a thick 3; "a thick 3" no 5
    wrong = mismatched_captions(fits)
    assert not bool(fits[wrong, torch.arange(6)].any())
    assert wrong.tolist() == [3, 2, 3, 5, 5, 0]  # the nearest following caption that does not fit (a thick 3 is
    # not a middling one)


# --- the exported sampler -----------------------------------------------------------------------


def test_sample_text_writes_images_and_api_matches(tmp_path, capsys):
    ckpt = export_text_sampler(tmp_path / "G.safetensors")
    args = ["sample", "--checkpoint", str(ckpt), "--n", "3", "--seed", "5", "--text", "a thick seven"]
    assert main([*args, "--text-to", "a thin one", "--output", str(tmp_path / "out")]) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["classes.png", "grid.png", "interpolation.png", *[f"sample_{i:05d}.png" for i in range(3)]]
    assert Image.open(tmp_path / "out/interpolation.png").size == (8 * 34 + 2, 4 * 34 + 2)
    sampler = load_sampler(ckpt)
    assert isinstance(sampler, TextSampler) and sampler.classes == 10
    expected = sampler.sample(3, text="a thick seven", seed=5)
    written = np.asarray(Image.open(tmp_path / "out/sample_00001.png").convert("L"), np.float32)
    assert np.abs(written - (expected[1, 0].add(1).div(2).clamp(0, 1) * 255).numpy()).max() <= 1.0
    # different captions give different images at the same noise; a label asks through its caption
    assert not torch.equal(expected, sampler.sample(3, text="a thin one", seed=5))
    assert torch.equal(sampler.sample(2, label=7, seed=1), sampler.sample(2, text="a seven", seed=1))
    walk = sampler.interpolate(rows=2, steps=4, text="a thick seven", text_to="a thin one")
    assert torch.allclose(walk[0], sampler.sample(1, text="a thick seven", noise=sampler.noise(2, 0)[:1])[0])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text", ""], "caption '' is empty"),
        (["--text", "a fat seven"], r"unknown word\(s\) fat"),
        ([], r"this sampler draws images for a caption: give one \(--text, or text= in Python\) or a label"),
        (["--text", "a seven", "--label", "3"], "give a caption \\(text\\) or a label, not both"),
        (["--text", "a seven", "--code", "1,0"], "this sampler takes no code"),
    ],
)
def test_sample_text_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    ckpt = export_text_sampler(tmp_path / "G.safetensors")
    assert main(["sample", "--checkpoint", str(ckpt), "--output", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("i2i sample: error: ") and re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_text_option_on_a_class_sampler_is_refused(tmp_path, capsys):
    from test_samplers_cli import export_sampler

    ckpt = export_sampler(tmp_path / "G.safetensors", classes=3)
    assert main(["sample", "--checkpoint", str(ckpt), "--text", "a seven", "--output", str(tmp_path / "out")]) == 2
    assert "is not a text-to-image sampler: it takes no --text" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_synthetic_mix_draws_text_samples_per_class(tmp_path):
    from augment.mixing import SyntheticMix
    from translate.data.sampling_sets import Digits

    real = Digits(split="test", size=32)
    sampler = load_sampler(export_text_sampler(tmp_path / "G.safetensors"))
    mixed = SyntheticMix(real, sampler, ratio=0.2, seed=0)
    generated = [mixed[i] for i in range(len(real), len(mixed))][:20]
    assert len(mixed) == len(real) + round(len(real) * 0.25)
    assert all(mixed.is_synthetic(len(real) + i) for i in range(len(generated)))
    for item in generated:
        assert item["image"].shape == (1, 32, 32) and 0 <= int(item["label"]) <= 9
    label = int(generated[0]["label"])
    assert generated[0]["image"].abs().max() <= 1.0 and sampler.info["class_captions"][label] == caption_for(label)


# --- through the engine ---------------------------------------------------------------------------


def tiny_overrides(out_dir: Path, steps: int, *extra: str) -> list[str]:
    return [
        f"out_dir={out_dir}",
        f"optim.max_steps={steps}",
        "model.encoder_steps=3",
        "model.generator={noise_dim: 8, width: 4}",
        "model.discriminator={width: 4}",
        "model.text_width=8",
        "model.text_dim=8",
        "model.proj_dim=4",
        "data.dataset.split=test",
        "data.batch_size=8",
        "engine.progress=false",
        "engine.sample_every=1000",
        "engine.save_every=2",
        *extra,
    ]


def tiny_run(out_dir: Path, steps: int, *extra: str):
    from translate.config import load_config

    return load_config(CONFIG, tiny_overrides(out_dir, steps, *extra))


@pytest.mark.slow
def test_both_phases_resume_exactly_and_export_one_text_sampler(tmp_path):
    from translate.engine import train

    straight = train(tiny_run(tmp_path / "straight", 6))
    train(tiny_run(tmp_path / "split", 6, "engine.stop_at_step=2"))  # stops in the encoder phase
    train(tiny_run(tmp_path / "split", 6))
    ref = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000006.pt")
    got = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000006.pt")
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    # 3 encoder steps, then 3 GAN steps; the text encoder stays as the encoder phase left it
    steps = {g: {int(s["step"]) for s in ref["optimizers"][g]["state"].values()} for g in ("E", "G", "D")}
    assert steps == {"E": {3}, "G": {3}, "D": {3}}
    after_phase_1 = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000004.pt")["model"]
    assert all(torch.equal(after_phase_1[k], v) for k, v in ref["model"].items() if k.startswith("T."))
    # one export: the frozen text encoder and the averaged generator, drawn from a caption
    exported = io.load_network(straight.exports["G"])[0].state_dict()
    assert all(torch.equal(exported[f"text.{k[2:]}"], v) for k, v in ref["model"].items() if k.startswith("T."))
    assert all(torch.equal(exported[f"body.{k}"], v) for k, v in ref["ema"]["G"].items())
    sampler = load_sampler(straight.exports["G"])
    assert sampler.sample(2, text="a thick seven").shape == (2, 1, 32, 32)
    header = (tmp_path / "straight/metrics.csv").read_text().splitlines()[0].split(",")
    assert {"E_contrastive", "E_retrieval", "D", "D_wrong_logit", "G_adv", "G_int"} <= set(header)


def test_bad_model_options_are_named(tmp_path):
    from translate.engine import train

    for option, message in [
        ("model.mismatch_weight=1.0", r"model.mismatch_weight must be in \[0, 1\), got 1.0"),
        ("model.captions=birds", "model.captions must be one of digits, got 'birds'"),
        ("model.gan_loss=wgan-gp", "text2image takes gan_loss nsgan, minimax, lsgan or hinge"),
        ("data.dataset.hold_out=[thick]", "hold_out entry 'thick' must be an attribute and a digit"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(tiny_run(tmp_path / option.split("=")[0], 2, option))


@pytest.mark.slow
def test_a_short_run_draws_thick_and_thin_digits_as_captioned(tmp_path):
    """About a minute: after 100 encoder and 400 GAN steps, samples for "a thick <digit>" carry more
    ink than for "a thin <digit>" for (nearly) every digit. (The digits themselves are not legible
    yet at this budget: that takes about 1,500 GAN steps, docs/samplers.md.)"""
    from translate.config import load_config
    from translate.engine import train

    cfg = load_config(
        CONFIG,
        [
            f"out_dir={tmp_path}",
            "optim.max_steps=500",
            "model.encoder_steps=100",
            "engine.progress=false",
            "engine.sample_every=1000",
            "engine.save_every=1000",
        ],
    )
    sampler = load_sampler(train(cfg).exports["G"])
    thick = torch.stack([ink_mass(sampler.sample(32, text=caption_for(d, 1), seed=d)).mean() for d in range(10)])
    thin = torch.stack([ink_mass(sampler.sample(32, text=caption_for(d, 0), seed=d)).mean() for d in range(10)])
    assert int((thick > thin).sum()) >= 8 and float((thick - thin).mean()) > 0.01, thick - thin
    # and D tells matching captions from mismatched ones (GAN-CLS's third term)
    last = (tmp_path / "metrics.csv").read_text().splitlines()[-1].split(",")
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    logged = dict(zip(header, last, strict=True))
    assert float(logged["D_wrong_logit"]) < float(logged["D_real_logit"]) - 1, logged


def test_bf16_autocast_trains_both_phases(tmp_path):
    from translate.engine import train

    result = train(tiny_run(tmp_path, 4, "engine.amp=bf16", "model.encoder_steps=2", "engine.save_every=4"))
    state = io.load_checkpoint(tmp_path / "checkpoints/ckpt_00000004.pt")["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert torch.isfinite(load_sampler(result.exports["G"]).sample(2, text="a thin one")).all()


@pytest.mark.slow
def test_two_processes_keep_every_group_in_step(tmp_path):
    from test_ddp import WORKER, free_port

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    overrides = tiny_overrides(tmp_path / "run", 4, "model.encoder_steps=2")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    done = subprocess.run(
        [*cmd, str(script), str(CONFIG), str(tmp_path), *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    w0, w1 = torch.load(tmp_path / "weights_rank0.pt"), torch.load(tmp_path / "weights_rank1.pt")
    # every weight the same on both ranks (gradients averaged in each phase); batch norm's running
    # statistics are each rank's own data, as with every batch-norm sampler here
    differing = sorted(k for k in w0 if not torch.equal(w0[k], w1[k]))
    assert differing and all("running_" in k or "num_batches" in k for k in differing), differing
    assert (tmp_path / "run/export/G.safetensors").is_file()
