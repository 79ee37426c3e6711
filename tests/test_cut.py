"""CUT and FastCUT: built from the model contract (G, D and the projection group F), PatchNCE on
the generator's named features, exact resume, export as G_AB, bad options named, and learning."""

from __future__ import annotations

import csv
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import smooth_images, write_folder

import translate
from translate import io
from translate.cli import main
from translate.config import load_config
from translate.data.images import list_images, read_image, to_image, to_tensor
from translate.distributed import DistEnv
from translate.engine import build_runtime, train, train_step
from translate.errors import ConfigError
from translate.models import build_model

CONFIGS = Path(__file__).parents[1] / "configs"
MODELS = ["cut", "fastcut"]


def reference(model: str) -> Path:
    return CONFIGS / f"{model}_reference.yaml"


def tiny_cut_overrides(root_a: Path, root_b: Path, out_dir: Path, steps: int = 6) -> list[str]:
    """Overrides that make configs/{cut,fastcut}_reference.yaml small enough for a CPU test."""
    return [
        f"out_dir={out_dir}",
        f"data.dataset.root_a={root_a}",
        f"data.dataset.root_b={root_b}",
        "data.load_size=20",
        "data.crop_size=16",
        "model.generator.ngf=4",
        "model.generator.n_blocks=1",
        "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2",
        "model.nce_layers=[input,down1,down2,block1]",
        "model.num_patches=16",
        "model.projection_dim=8",
        f"optim.max_steps={steps}",
        "engine.device=cpu",
        "engine.log_every=2",
        "engine.sample_every=3",
        "engine.save_every=3",
        "engine.progress=false",
        "engine.tensorboard=false",
        "engine.deterministic=true",
    ]


def tiny_model(model: str, *extra: str):
    return build_model(
        load_config(reference(model), [*tiny_cut_overrides(Path("A"), Path("B"), Path("x")), *extra]).model
    )


def options(cfg) -> dict:
    """A model config's options but its network specs (the YAMLs spell out the nets' defaults)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("generator", "discriminator")}


def test_reference_defaults_are_the_papers():
    cut = build_model(load_config(reference("cut")).model)
    fast = build_model(load_config(reference("fastcut")).model)
    # the authors' layers 0, 4, 8, 12, 16 of the ResNet-9: image, both downsamplings, blocks 1 and 5
    assert cut.layers == fast.layers == ["input", "down1", "down2", "block1", "block5"]
    # one projection MLP per layer, created with the model (not on the first batch), 256 units
    widths = {name: (head[0].in_features, head[2].out_features) for name, head in cut.F.heads.items()}
    assert widths == {
        "input": (3, 256),
        "down1": (128, 256),
        "down2": (256, 256),
        "block1": (256, 256),
        "block5": (256, 256),
    }
    assert (cut.cfg.num_patches, cut.cfg.nce_temperature, cut.cfg.gan_loss) == (256, 0.07, "lsgan")
    assert (cut.cfg.lambda_nce, cut.cfg.nce_idt, cut.cfg.flip_equivariance) == (1.0, True, False)
    assert (fast.cfg.lambda_nce, fast.cfg.nce_idt, fast.cfg.flip_equivariance) == (10.0, False, True)
    # the code's defaults are the paper's too: the YAMLs only spell them out
    for built in (cut, fast):
        default = build_model({"name": built.cfg.name})
        assert default.spec == built.spec and options(default.cfg) == options(built.cfg)
    # one generator, one discriminator: a third of CycleGAN's nets
    assert set(cut.all_nets()) == {"G_AB", "D_B", "F"} and set(cut.averaged_nets()) == {"G_AB"}


@pytest.mark.parametrize("model", MODELS)
def test_one_step_trains_generator_discriminator_and_projection_groups(model):
    cfg = load_config(reference(model), tiny_cut_overrides(Path("A"), Path("B"), Path("x")))
    rt = build_runtime(cfg, DistEnv(), steps_per_epoch=1)
    assert set(rt.optimizers) == {"G", "D", "F"}
    assert rt.optimizers["F"].param_groups[0]["params"] == list(rt.model.F.parameters())
    before = {k: v.clone() for k, v in rt.model.state_dict().items()}
    torch.manual_seed(0)
    batch = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    logs = train_step(rt, batch)
    after = rt.model.state_dict()
    for prefix in ("G_AB.", "D_B.", "F.heads."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    for name, opt in rt.optimizers.items():
        assert {int(s["step"]) for s in opt.state.values()} == {1}, name
    # CUT's identity NCE on real B; FastCUT has none
    assert ("nce_idt" in logs) == (model == "cut")
    assert {"D", "G_adv", "nce", "G"} <= set(logs)


def make_flip_symmetric(net: torch.nn.Module) -> None:
    """Average every conv kernel with its mirror image: a net without strides becomes exactly
    equivariant to horizontal flips (its reflection padding is symmetric)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(0.5 * (module.weight + module.weight.flip(3)))


def test_flip_equivariance_compares_the_flipped_output_with_the_unflipped_input():
    model = tiny_model("fastcut", "model.generator.n_downsampling=0", "model.nce_layers=[input,stem,block1]")
    make_flip_symmetric(model.G_AB)
    torch.manual_seed(1)
    real = torch.rand(2, 3, 12, 12) * 2 - 1
    with torch.no_grad():
        output = model.G_AB(real)
        output_of_flipped = model.G_AB(real.flip(3))
        torch.testing.assert_close(output_of_flipped, output.flip(3))  # the generator is equivariant

        def nce(out: torch.Tensor, flipped: bool) -> float:
            torch.manual_seed(2)  # the same patch locations each time
            return model.nce(real, out, flipped).item()

        plain = nce(output, flipped=False)
        # the flipped step compares features flipped back: for an equivariant G, the same loss
        assert nce(output_of_flipped, flipped=True) == pytest.approx(plain, rel=1e-5)
        # ... which is not what comparing them unaligned would give
        assert abs(nce(output_of_flipped, flipped=False) - plain) > 0.1


@pytest.mark.parametrize(("model", "flips"), [("cut", False), ("fastcut", True)])
def test_fastcut_translates_the_flipped_batch_on_about_half_of_the_steps(model, flips):
    rt = build_runtime(load_config(reference(model), tiny_cut_overrides(Path("A"), Path("B"), Path("x"))), DistEnv(), 1)
    batch = {"A": torch.rand(1, 3, 16, 16) * 2 - 1, "B": torch.rand(1, 3, 16, 16) * 2 - 1}
    seen = []
    translate_inputs = rt.model.translate_inputs

    def recording(inputs_a, inputs_b):
        seen.append("flipped" if torch.equal(inputs_a, batch["A"].flip(3)) else "plain")
        assert torch.equal(inputs_a, batch["A"]) or torch.equal(inputs_a, batch["A"].flip(3))
        return translate_inputs(inputs_a, inputs_b)

    rt.model.translate_inputs = recording
    for _ in range(20):
        train_step(rt, batch)
    flipped = seen.count("flipped")
    assert 4 <= flipped <= 16 if flips else flipped == 0, seen


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.nce_layers=[input,block7]",
            r"model.nce_layers \['input', 'block7'\]: .*no feature\(s\) \['block7'\]; known: input, stem",
        ),
        ("model.nce_layers=[]", r"model.nce_layers is empty"),
        ("model.channels_b=1", r"channels_a and channels_b must be equal, got 3 and 1"),
        ("model.num_patches=0", r"model.num_patches must be >= 1, got 0"),
        ("model.nce_temperature=0", r"model.nce_temperature must be > 0, got 0"),
        ("model.lambda_nce=-1", r"model.lambda_nce and lambda_gan must be >= 0"),
        ("model.pool_size=50", r"pool_size"),
    ],
)
def test_bad_options_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        tiny_model("cut", override)


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in io.load_checkpoint(path)["model"].items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("model", MODELS)
def test_resume_is_exact_and_the_generator_exports_as_g_ab(model, tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    straight = train(load_config(reference(model), tiny_cut_overrides(a, b, tmp_path / "straight", steps=6)))
    split = tiny_cut_overrides(a, b, tmp_path / "split", steps=6)
    assert train(load_config(reference(model), [*split, "engine.stop_at_step=3"])).step == 3
    assert train(load_config(reference(model), split)).step == 6
    ref_ckpt = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000006.pt")
    got_ckpt = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000006.pt")
    ref, got = (
        model_tensors(tmp_path / "straight/checkpoints/ckpt_00000006.pt"),
        model_tensors(tmp_path / "split/checkpoints/ckpt_00000006.pt"),
    )
    assert ref.keys() == got.keys() and any(k.startswith("F.heads.") for k in ref)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    for group in ("G", "D", "F"):
        for pid, state in ref_ckpt["optimizers"][group]["state"].items():
            assert torch.equal(state["exp_avg_sq"], got_ckpt["optimizers"][group]["state"][pid]["exp_avg_sq"]), group

    # one exported net, under CycleGAN's name for its A→B generator, loadable with no training config
    assert set(straight.exports) == {"G_AB"}
    meta = io.read_metadata(straight.exports["G_AB"])
    assert meta["info"]["model"] == model and meta["info"]["direction"] == "A->B"
    generator = translate.load_generator(straight.exports["G_AB"])
    with torch.no_grad():
        expected = straight_model_output(tmp_path / "straight/checkpoints/ckpt_00000006.pt")
        torch.testing.assert_close(generator(torch.zeros(1, 3, 16, 16)), expected)
    assert main(["export", str(tmp_path / "split"), "--out", str(tmp_path / "exported")]) == 0
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["G_AB.safetensors"]


def straight_model_output(checkpoint: Path) -> torch.Tensor:
    from translate.engine.state import model_from_checkpoint

    model, _, _ = model_from_checkpoint(checkpoint)
    return model.G_AB.eval()(torch.zeros(1, 3, 16, 16))


@pytest.mark.slow
def test_bench_train_measures_cut_and_fastcut():
    for model in MODELS:
        cmd = [sys.executable, "-m", "translate.cli", "bench", "train", "--model", model, "--config"]
        cmd += [str(reference(model)), "--size", "32", "--steps", "1", "--warmup", "1", "--device", "cpu"]
        cmd += ["--threads", "1", "--variants", "fp32", "model.generator.ngf=4", "model.generator.n_blocks=2"]
        cmd += ["model.nce_layers=[input,down1,down2,block1]", "model.discriminator.ndf=4"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"# {model} from" in done.stdout, done.stdout
        assert re.search(r"^fp32: [0-9.]+ s/iter, peak [0-9.]+ GB", done.stdout, re.MULTILINE), done.stdout


# --- learning ------------------------------------------------------------------------------------


def colour_swap(images: np.ndarray) -> np.ndarray:
    return images[..., ::-1].copy()


@pytest.fixture
def warm_and_swapped(tmp_path: Path) -> tuple[Path, Path]:
    """A: warm (orange) smooth images; B: other such images with red and blue swapped (cool).
    B's images are not the swaps of A's (unpaired), so a translator must find a mapping that
    keeps each input's content; the swap is one, a swap with inverted contrast another."""
    base = smooth_images(24, 16, seed=5).astype(np.float32) - 127.5
    warm = (base * 0.6 + np.array([190, 120, 50])).clip(0, 255).astype(np.uint8)
    return write_folder(tmp_path / "A", warm[:12]), write_folder(tmp_path / "B", colour_swap(warm[12:]))


def read_column(metrics: Path, column: str) -> list[float]:
    with open(metrics, newline="") as fh:
        return [float(row[column]) for row in csv.DictReader(fh) if row.get(column)]


@pytest.mark.slow
def test_cut_learns_a_colour_swap_and_keeps_the_content(warm_and_swapped, tmp_path):
    a, b = warm_and_swapped
    overrides = [
        *tiny_cut_overrides(a, b, tmp_path / "run", steps=160),
        "data.preprocess=none",
        "data.batch_size=4",
        "model.generator.ngf=8",
        "model.generator.n_blocks=2",
        "model.discriminator.ndf=8",
        "model.projection_dim=32",
        "model.num_patches=32",
        "optim.lr_g=0.002",
        "optim.lr_d=0.002",
        "engine.log_every=10",
        "engine.save_every=1000",
        "engine.sample_every=1000",
        "engine.deterministic=false",
    ]
    result = train(load_config(reference("cut"), overrides))
    nce = read_column(tmp_path / "run/metrics.csv", "nce")
    assert nce[-1] < 0.5 * nce[0], nce

    real_a = np.stack([read_image(p) for p in list_images(a)])
    real_b = np.stack([read_image(p) for p in list_images(b)])
    generator = translate.load_generator(result.exports["G_AB"])
    with torch.no_grad():
        fake_b = np.stack([to_image(generator(to_tensor(img)[None])) for img in real_a])
    colour = {name: imgs.reshape(-1, 3).mean(0) for name, imgs in {"A": real_a, "B": real_b, "fake": fake_b}.items()}
    before, after = np.linalg.norm(colour["A"] - colour["B"]), np.linalg.norm(colour["fake"] - colour["B"])
    assert after < 0.3 * before, f"mean colour distance to B: {before:.1f} -> {after:.1f}"
    # and the content is A's: a per-pixel affine colour map of its own input explains each output
    # far better than one of another input. With λ_NCE = 0 (the GAN alone) the outputs take B's
    # colours but not A's content: R² 0.09 own against 0.11 other (0.37 against 0.13 with NCE).
    own, other = affine_fit(fake_b, real_a).mean(), affine_fit(fake_b, np.roll(real_a, 1, axis=0)).mean()
    assert own > 0.25 and own > 2 * other, f"R² of the outputs from their own inputs {own:.2f}, from others {other:.2f}"


def affine_fit(outputs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Per image, the R² of the least-squares per-pixel affine colour map from input to output:
    1 when the output is a colour transform of the input, about 0 when it ignores it."""
    scores = []
    for out, inp in zip(outputs, inputs, strict=True):
        design = np.c_[inp.reshape(-1, 3).astype(np.float64), np.ones(inp.size // 3)]
        target = out.reshape(-1, 3).astype(np.float64)
        matrix, *_ = np.linalg.lstsq(design, target, rcond=None)
        scores.append(1 - ((target - design @ matrix) ** 2).sum() / ((target - target.mean(0)) ** 2).sum())
    return np.array(scores)
