"""Distillation: student generator options (separable convolutions, small outer kernels), the MAC
counter, and the ``distill`` model: a student learns its frozen teacher's mapping, exports the
teacher's hash and both MAC counts, and resumes after the teacher file moved."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from helpers import smooth_images, tiny_cyclegan_overrides
from torch import nn

from translate.cli import main
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, model_from_checkpoint, train, train_step
from translate.errors import CheckpointError, ConfigError
from translate.io import export_network, read_metadata
from translate.nets import GENERATORS, build_generator
from translate.nets.generators import SeparableConv2d
from translate.nets.macs import count_macs

TEACHER_SPEC = {"name": "resnet", "ngf": 8, "n_blocks": 2, "n_downsampling": 1, "upsample": "resize"}
STUDENT = "{name: resnet, ngf: 4, n_blocks: 1, n_downsampling: 1, upsample: resize, outer_kernel: 3, conv: separable}"


def test_mac_count_of_known_layers() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (3, 10, 12)) == 3 * 8 * 9 * 10 * 12  # 25,920
    strided = nn.Conv2d(4, 6, 5, stride=2, padding=2)
    assert count_macs(strided, (4, 16, 16)) == 4 * 6 * 25 * 8 * 8
    separable = SeparableConv2d(8, 16, 3, 1, 1, bias=True, sn=False)
    assert count_macs(separable, (8, 10, 10)) == 8 * 9 * 100 + 8 * 16 * 100
    assert count_macs(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), (3, 2, 2)) == 60
    with pytest.raises(ConfigError, match=r"input shape must be \(channels, height, width\)"):
        count_macs(conv, (10, 12))


def test_mac_count_restores_training_mode() -> None:
    net = build_generator(TEACHER_SPEC).train()
    count_macs(net, (3, 16, 16))
    assert net.training


def test_separable_student_options_keep_any_size_and_cut_macs() -> None:
    teacher = build_generator(TEACHER_SPEC)
    student = build_generator({**TEACHER_SPEC, "ngf": 4, "outer_kernel": 3, "conv": "separable"})
    assert any(isinstance(m, SeparableConv2d) for m in student.modules())
    assert not any(isinstance(m, SeparableConv2d) for m in teacher.modules())
    x = torch.rand(2, 3, 13, 22) * 2 - 1
    assert student(x).shape == x.shape
    assert count_macs(teacher, (3, 32, 64)) >= 8 * count_macs(student, (3, 32, 64))
    assert GENERATORS.get("resnet").normalises_per_sample({**TEACHER_SPEC, "norm": "instance", "conv": "separable"})
    # every named feature is still produced, at the channels feature_info states
    features = student.forward_features(x, list(student.feature_info()))
    for name, info in student.feature_info().items():
        assert features[name].shape[1] == info["channels"], name


def test_default_generator_is_unchanged() -> None:
    """The options default to the reference layers: same parameter names and shapes as before."""
    net = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1})
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["encoder.1.weight"] == (4, 3, 7, 7)
    assert shapes["encoder.4.weight"] == (8, 4, 3, 3)
    assert shapes["blocks.0.body.1.weight"] == (16, 16, 3, 3)
    assert shapes["decoder.7.weight"] == (3, 4, 7, 7)


@pytest.mark.parametrize(
    ("option", "message"),
    [({"conv": "depthwise"}, "unknown conv 'depthwise'; known: standard, separable"), ({"outer_kernel": 4}, "odd")],
)
def test_student_option_errors(option, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_generator({**TEACHER_SPEC, **option})


@pytest.fixture
def teacher_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = build_generator(TEACHER_SPEC).eval()
    with torch.no_grad():  # a tinted, input-dependent output: far from a new student's, learnable in a few steps
        net.decoder[-2].weight.mul_(5.0)
        net.decoder[-2].bias.copy_(torch.tensor([0.8, -0.6, 0.3]))
    return export_network(tmp_path / "teacher.safetensors", net, net_spec(), "generator", {"model": "cyclegan"})


def net_spec() -> dict:
    from translate.registry import resolved_spec

    return resolved_spec(GENERATORS, TEACHER_SPEC)


def distill_overrides(teacher: Path, extra: list[str] = ()) -> list[str]:
    return [
        "model.name=distill",
        f"model.teacher={teacher}",
        f"model.student={STUDENT}",
        "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
        "model.macs_input_size=[16,32]",
        "optim.lr_g=0.01",
        "optim.max_steps=60",
        "engine.device=cpu",
        *extra,
    ]


def student_l1(rt, images: torch.Tensor) -> float:
    with torch.no_grad():
        return (rt.model.G(images) - rt.model.teacher(images)).abs().mean().item()


@pytest.mark.parametrize("adversarial", ["target", "teacher"])
def test_student_learns_the_teachers_mapping(teacher_file: Path, adversarial: str) -> None:
    torch.manual_seed(0)
    overrides = distill_overrides(teacher_file, [f"model.adversarial={adversarial}"])
    rt = build_runtime(load_config(None, overrides), DistEnv(), steps_per_epoch=1)
    frozen = {k: v.clone() for k, v in rt.model.teacher.state_dict().items()}
    smooth = torch.from_numpy(smooth_images(12, 16, seed=0)).permute(0, 3, 1, 2).float() / 127.5 - 1
    images, held_out = {"A": smooth[:4], "B": smooth[4:8]}, smooth[8:]
    before = student_l1(rt, images["A"]), student_l1(rt, held_out)
    for _ in range(40):
        logs = train_step(rt, images)
    after = student_l1(rt, images["A"]), student_l1(rt, held_out)
    assert after[0] < 0.6 * before[0], (before, after)  # on the images it trained on
    assert after[1] < 0.8 * before[1], (before, after)  # and on others
    assert set(logs) >= {"distill", "G_adv", "D"}
    for k, v in rt.model.teacher.state_dict().items():
        assert torch.equal(v, frozen[k]), f"the teacher changed: {k}"


def test_adversarial_teacher_judges_pairs_and_never_reads_the_target_images(teacher_file: Path) -> None:
    """Against the teacher, the discriminator takes (input, output) pairs and the teacher's outputs
    are its real images: the B batch changes nothing."""
    overrides = distill_overrides(teacher_file, ["model.adversarial=teacher"])
    g = torch.Generator().manual_seed(0)
    a, b1, b2 = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for _ in range(3))
    states = []
    for b in (b1, b2):
        torch.manual_seed(0)
        rt = build_runtime(load_config(None, overrides), DistEnv(), steps_per_epoch=1)
        rt.model.D(torch.zeros(1, 6, 16, 16))  # takes 3 input + 3 output channels
        logs = train_step(rt, {"A": a, "B": b})
        weights = {k: v.clone() for k, v in rt.model.state_dict().items() if isinstance(v, torch.Tensor)}
        states.append((weights, logs))
    (first, logs1), (second, logs2) = states
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert logs1["D"].item() == logs2["D"].item()
    target = build_runtime(load_config(None, distill_overrides(teacher_file)), DistEnv(), steps_per_epoch=1)
    with pytest.raises(RuntimeError):  # the target discriminator takes the image alone
        target.model.D(torch.zeros(1, 6, 16, 16))
    with pytest.raises(ConfigError, match="model.adversarial: unknown 'both'; known: target, teacher"):
        build_runtime(load_config(None, distill_overrides(teacher_file, ["model.adversarial=both"])), DistEnv(), 1)


def test_one_pass_output_and_features_equal_the_forward_pass_at_an_odd_size() -> None:
    from translate.models.distill import outputs_and_features

    net = build_generator({**TEACHER_SPEC, "n_downsampling": 2}).eval()  # pads 13 x 21 on all four sides
    x = torch.rand(2, 3, 13, 21) * 2 - 1
    output, features = outputs_and_features(net, x, ["block1"])
    torch.testing.assert_close(output, net(x))
    torch.testing.assert_close(features["block1"], net.forward_features(x, ["block1"])["block1"])


def test_feature_distillation_trains_projections(teacher_file: Path) -> None:
    features = ["model.lambda_features=1.0", "model.feature_layers={block1: block2, up1: up1}"]
    rt = build_runtime(load_config(None, distill_overrides(teacher_file, features)), DistEnv(), steps_per_epoch=1)
    assert set(rt.model.optimizer_groups()) == {"G", "D", "P"}
    weights = rt.model.projections["block1"].weight.clone()
    g = torch.Generator().manual_seed(0)
    logs = train_step(rt, {k: torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for k in ("A", "B")})
    assert torch.isfinite(logs["features"]) and logs["features"] > 0
    assert not torch.equal(weights, rt.model.projections["block1"].weight)
    assert rt.model.projections["block1"].weight.shape[:2] == (16, 8)  # student 8 -> teacher 16 channels


def run_overrides(teacher: Path, a: Path, b: Path, out_dir: Path, steps: int) -> list[str]:
    tiny = [o for o in tiny_cyclegan_overrides(a, b, out_dir, steps=steps) if not o.startswith("model.")]
    return [*tiny, *distill_overrides(teacher, [f"optim.max_steps={steps}", "engine.save_every=2"])]


def test_export_holds_teacher_hash_and_macs_and_resume_survives_a_moved_teacher(
    teacher_file: Path, tiny_unpaired, tmp_path: Path
) -> None:
    a, b = tiny_unpaired
    run = tmp_path / "run"
    sha = hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    train(load_config(None, [*run_overrides(teacher_file, a, b, run, 4), "engine.stop_at_step=2"]))
    original = {
        k: v.clone()
        for k, v in model_from_checkpoint(run / "checkpoints" / "ckpt_00000002.pt")[0].teacher.state_dict().items()
    }
    moved = tmp_path / "elsewhere" / "teacher.safetensors"
    moved.parent.mkdir()
    shutil.move(str(teacher_file), str(moved))

    result = train(load_config(None, run_overrides(teacher_file, a, b, run, 4)))
    assert result.step == 4
    for k, v in result.model.teacher.state_dict().items():
        assert torch.equal(v, original[k]), k
    info = read_metadata(result.exports["G_AB"])["info"]
    assert info["teacher"]["sha256"] == sha
    assert info["teacher"]["spec"] == net_spec()
    student = build_generator({**result.model.spec})
    assert info["macs"] == {
        "input_size": [16, 32],
        "teacher": count_macs(build_generator(TEACHER_SPEC), (3, 16, 32)),
        "student": count_macs(student, (3, 16, 32)),
        "ratio": pytest.approx(info["macs"]["teacher"] / info["macs"]["student"], abs=0.01),
    }
    assert info["macs"]["ratio"] > 5
    # `i2i export` of the run works without the teacher file too
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    assert read_metadata(tmp_path / "exported" / "G_AB.safetensors")["info"]["teacher"]["sha256"] == sha


def test_teacher_errors(tmp_path: Path, teacher_file: Path) -> None:
    def build(*extra: str):
        return build_runtime(load_config(None, distill_overrides(teacher_file, list(extra))), DistEnv(), 1)

    with pytest.raises(ConfigError, match="model.teacher: the distill model needs the path"):
        build("model.teacher=''")
    with pytest.raises(ConfigError, match="model.teacher: exported generator not found: .*missing.safetensors"):
        build(f"model.teacher={tmp_path / 'missing.safetensors'}")
    not_safetensors = tmp_path / "notes.safetensors"
    not_safetensors.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        build(f"model.teacher={not_safetensors}")
    from translate.nets import build_discriminator

    disc = tmp_path / "disc.safetensors"
    spec = {"name": "patchgan", "in_channels": 3, "ndf": 4, "n_layers": 1}
    export_network(disc, build_discriminator(spec, 3), spec, "discriminator")
    with pytest.raises(CheckpointError, match="holds a discriminator, not an exported image-to-image generator"):
        build(f"model.teacher={disc}")
    with pytest.raises(ConfigError, match="model.lambda_distill must be >= 0"):
        build("model.lambda_distill=-1")
    with pytest.raises(ConfigError, match="needs model.feature_layers"):
        build("model.lambda_features=1")
    with pytest.raises(ConfigError, match="the teacher has no feature 'block9'"):
        build("model.lambda_features=1", "model.feature_layers={block1: block9}")
    with pytest.raises(ConfigError, match="differ in resolution"):
        build("model.lambda_features=1", "model.feature_layers={block1: stem}")


def test_distill_command_refuses_another_model(tmp_path: Path, capsys) -> None:
    config = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    assert main(["distill", str(config)]) == 2
    assert "model.name is 'cyclegan', not 'distill'; train it with `i2i train`" in capsys.readouterr().err


def test_distill_quickstart_config_student_is_five_times_cheaper() -> None:
    """The shipped config's student against its teacher (the app's bundled quickstart CycleGAN)."""
    root = Path(__file__).parents[1]
    cfg = load_config(root / "configs" / "distill_quickstart.yaml", [])
    from translate.models import build_model

    model = build_model({**cfg.model, "teacher": str(root / cfg.model["teacher"])})
    macs = model.macs()
    assert macs["input_size"] == [64, 128]
    assert macs["teacher"] >= 5 * macs["student"]
