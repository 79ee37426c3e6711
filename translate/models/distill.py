"""Distillation: a small student generator learns a trained teacher's mapping (GAN Compression,
Li et al. 2020), so that translation is cheap enough for per-sample online augmentation.

The teacher is an exported image-to-image generator (one ``.safetensors`` file), frozen. The
student translates the teacher's source images and is trained on

* L1 reconstruction of the teacher's output (``lambda_distill``);
* an adversarial term (a discriminator trained alongside, ``lambda_adv``) whose real images are
  either the target domain's (``adversarial: target``: the student's textures stay the target
  domain's) or the teacher's outputs, judged beside their input (``adversarial: teacher``: the
  teacher's outputs as paired targets, pix2pix's conditional discriminator, so the student is
  pushed towards the teacher's own textures rather than towards any target-like ones);
* optionally, feature distillation (``lambda_features``): chosen student features, projected by
  1×1 convolutions to the teacher's channels, regress the teacher's features at the same
  resolution (mean squared error), through ``forward_features``.

Data: the teacher's own unpaired training data (A: images to translate, B: target images).
From the first step on, the teacher's weights and spec travel in the model's state (as
``teacher.*`` and extra state), so resume and export no longer need its file; its SHA-256 is
kept and exported with the student, beside the MAC counts of both nets at ``macs_input_size``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import file_sha256
from ..errors import CheckpointError, ConfigError
from ..nets import GENERATORS, build_discriminator, build_generator
from ..nets.layers import crop_to
from ..nets.macs import count_macs
from ..objectives import build_objective, d_loss, g_loss, gradient_penalty, reconstruction
from ..registry import resolved_spec
from .base import MODELS, GANModel, OptimGroup, clip_weights, set_requires_grad
from .frozen import frozen_network, read_export

#: where the frozen teacher's weights sit in the model's state
TEACHER_PREFIX = "teacher."
#: what the discriminator takes as real: target-domain images, or the teacher's outputs (paired)
ADVERSARIAL = ("target", "teacher")


@dataclass
class DistillConfig:
    name: str = "distill"
    teacher: str = ""  # an exported generator (.safetensors): the translator to distil
    # the student: any registered generator spec; channels come from the teacher
    student: dict[str, Any] = field(
        default_factory=lambda: {"name": "resnet", "ngf": 8, "n_blocks": 3, "outer_kernel": 3, "conv": "separable"}
    )
    discriminator: dict[str, Any] = field(default_factory=lambda: {"name": "patchgan"})
    gan_loss: Any = "lsgan"
    lambda_distill: float = 10.0  # L1 between the student's and the teacher's outputs
    lambda_adv: float = 1.0  # adversarial term
    adversarial: str = "target"  # its real images: target (the B images) | teacher (its outputs, paired)
    lambda_features: float = 0.0  # feature distillation
    # student feature name -> teacher feature name (see each net's feature_info()), e.g. {block3: block4}
    feature_layers: dict[str, str] = field(default_factory=dict)
    init: str = "normal"
    init_gain: float = 0.02
    macs_input_size: list[int] = field(default_factory=lambda: [256, 256])  # H, W of the exported MAC counts


def read_teacher(path: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """(architecture spec, weights, SHA-256) of the exported generator at ``path``."""
    if not path:
        raise ConfigError("model.teacher: the distill model needs the path of an exported generator (.safetensors)")
    label, expected = "model.teacher: exported generator", "an exported image-to-image generator"
    spec, weights = read_export(path, "generator", label, expected)
    return spec, weights, file_sha256(Path(path))


def frozen_teacher(spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """The generator of ``spec`` with ``weights``, in eval mode with gradients switched off."""
    return frozen_network("generator", spec, weights, source)


def outputs_and_features(
    net: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``net(x)`` and its features ``layers``: one pass where the net names its output as a
    feature (the ResNet does), else a full pass plus a partial one."""
    if not layers:
        return net(x), {}
    if "output" in net.feature_info():
        found = net.forward_features(x, [*layers, "output"])
        return crop_to(found.pop("output"), x.shape[-2:]), found
    return net(x), net.forward_features(x, list(layers))


@MODELS.register("distill")
class Distill(GANModel):
    Config = DistillConfig

    def __init__(self, cfg: DistillConfig, stored: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        for key in ("lambda_distill", "lambda_adv", "lambda_features"):
            if getattr(cfg, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {getattr(cfg, key)}")
        if len(cfg.macs_input_size) != 2 or min(cfg.macs_input_size) < 1:
            raise ConfigError(f"model.macs_input_size must be [height, width] >= 1, got {list(cfg.macs_input_size)}")
        if cfg.adversarial not in ADVERSARIAL:
            raise ConfigError(f"model.adversarial: unknown '{cfg.adversarial}'; known: {', '.join(ADVERSARIAL)}")
        self.objective = build_objective(cfg.gan_loss)
        # rebuilt from a checkpoint, the teacher is the one stored in it, not the file
        extra = (stored or {}).get("_extra_state", {})
        if extra.get("teacher_spec"):
            spec = json.loads(extra["teacher_spec"])
            weights = {k[len(TEACHER_PREFIX) :]: v for k, v in stored.items() if k.startswith(TEACHER_PREFIX)}
            self.teacher_sha256 = extra["teacher_sha256"]
            self.teacher = frozen_teacher(spec, weights, "the checkpoint's teacher")
        else:
            spec, weights, self.teacher_sha256 = read_teacher(cfg.teacher)
            self.teacher = frozen_teacher(spec, weights, f"model.teacher {cfg.teacher}")
        self.teacher_spec = dict(spec)
        channels_in, channels_out = spec["in_channels"], spec["out_channels"]
        self.spec = resolved_spec(GENERATORS, {**cfg.student, "in_channels": channels_in, "out_channels": channels_out})
        self.G = build_generator(self.spec, cfg.init, cfg.init_gain)
        # against the teacher, the discriminator sees each image beside its input (a paired target)
        d_channels = channels_out + (channels_in if cfg.adversarial == "teacher" else 0)
        self.D = build_discriminator(cfg.discriminator, d_channels, cfg.init, cfg.init_gain)
        self.projections = self.build_projections() if cfg.lambda_features > 0 else None
        self._macs: dict[str, Any] | None = None

    @classmethod
    def rebuild(cls, cfg: DistillConfig, stored: Mapping[str, Any]) -> Distill:
        return cls(cfg, stored)

    def build_projections(self) -> nn.ModuleDict:
        """One 1×1 convolution per distilled feature, student channels -> teacher channels."""
        pairs = self.cfg.feature_layers
        if not pairs:
            raise ConfigError(
                "model.lambda_features > 0 needs model.feature_layers: {student_feature: teacher_feature}"
            )
        student_info, teacher_info = self.G.feature_info(), self.teacher.feature_info()
        projections = nn.ModuleDict()
        for s_name, t_name in pairs.items():
            for name, info, whose in [(s_name, student_info, "student"), (t_name, teacher_info, "teacher")]:
                if name not in info:
                    raise ConfigError(
                        f"model.feature_layers: the {whose} has no feature '{name}'; known: {', '.join(info)}"
                    )
            if student_info[s_name]["reduction"] != teacher_info[t_name]["reduction"]:
                raise ConfigError(
                    f"model.feature_layers: student '{s_name}' (1/{student_info[s_name]['reduction']} resolution) and "
                    f"teacher '{t_name}' (1/{teacher_info[t_name]['reduction']}) differ in resolution"
                )
            projections[s_name] = nn.Conv2d(student_info[s_name]["channels"], teacher_info[t_name]["channels"], 1)
        return projections

    def discriminate(self, image: torch.Tensor, source: torch.Tensor) -> Any:
        """The discriminator's verdict on ``image`` (a translation of ``source``, or a real one)."""
        if self.cfg.adversarial == "teacher":
            return self.D(torch.cat([source, image], 1))
        return self.D(image)

    def train(self, mode: bool = True) -> Distill:
        super().train(mode)
        self.teacher.eval()  # frozen: its norms and dropout behave as at inference
        return self

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        # the student is named for the mapping it learns, the run's A -> B, as CycleGAN's G_AB
        groups = {
            "G": OptimGroup({"G_AB": self.G}, lr="lr_g", averaged=True),
            "D": OptimGroup({"D": self.D}, lr="lr_d"),
        }
        if self.projections is not None:
            groups["P"] = OptimGroup({"projections": self.projections}, lr="lr_g")
        return groups

    def training_step(self, batch, ctx) -> dict[str, torch.Tensor]:
        cfg, obj = self.cfg, self.objective
        real_a, real_b = batch["A"], batch["B"]
        student_layers = list(cfg.feature_layers) if self.projections is not None else []
        teacher_layers = [cfg.feature_layers[name] for name in student_layers]

        with torch.no_grad(), ctx.autocast():
            target, teacher_features = outputs_and_features(self.teacher, real_a, teacher_layers)
        real = target if cfg.adversarial == "teacher" else real_b
        judge = partial(self.discriminate, source=real_a)
        set_requires_grad([self.D], False)
        with ctx.autocast():
            fake, student_features = outputs_and_features(self.G, real_a, student_layers)
            adv = g_loss(obj, judge(fake))
        distill = reconstruction(fake, target)
        loss_g = cfg.lambda_distill * distill + cfg.lambda_adv * adv
        logs = {"distill": distill, "G_adv": adv}
        groups = ["G"]
        if self.projections is not None:
            features = torch.stack(
                [
                    F.mse_loss(self.projections[s].float()(student_features[s].float()), teacher_features[t].float())
                    for s, t in zip(student_layers, teacher_layers, strict=True)
                ]
            ).mean()
            loss_g = loss_g + cfg.lambda_features * features
            logs["features"] = features
            groups.append("P")
        ctx.optimize(groups, loss_g)

        set_requires_grad([self.D], True)
        with ctx.autocast():
            loss_d = 0.5 * d_loss(obj, judge(real), judge(fake.detach()))
        if obj.gp_weight:
            gp = gradient_penalty(judge, real, fake.detach())
            loss_d = loss_d + obj.gp_weight * gp
            logs["gp"] = gp
        ctx.optimize("D", loss_d)
        if obj.clip_weights:
            clip_weights([self.D], obj.clip_weights)
        logs.update(D=loss_d, G=loss_g)
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def visuals(self, batch, nets) -> dict[str, torch.Tensor]:
        return {
            "real_A": batch["A"],
            "teacher": self.teacher(batch["A"]),
            "student": nets["G_AB"](batch["A"]),
            "real_B": batch["B"],
        }

    def macs(self) -> dict[str, Any]:
        """MAC counts of teacher and student on one input of ``macs_input_size`` (counted once)."""
        if self._macs is None:
            shape = (self.teacher_spec["in_channels"], *self.cfg.macs_input_size)
            teacher, student = count_macs(self.teacher, shape), count_macs(self.G, shape)
            self._macs = {
                "input_size": list(self.cfg.macs_input_size),
                "teacher": teacher,
                "student": student,
                "ratio": round(teacher / max(student, 1), 2),
            }
        return self._macs

    def export_info(self) -> dict[str, dict[str, Any]]:
        teacher = {"sha256": self.teacher_sha256, "file": Path(self.cfg.teacher).name, "spec": self.teacher_spec}
        info = {
            "model": "distill",
            "direction": "A->B",
            "value_range": [-1, 1],
            "teacher": teacher,
            "macs": self.macs(),
        }
        return {"G_AB": {"family": "generator", "spec": self.spec, "info": info}}

    # the teacher's spec and hash are stored beside its weights (in the state as teacher.*), so a
    # rebuild from a checkpoint needs no file
    def get_extra_state(self) -> dict:
        return {"teacher_spec": json.dumps(self.teacher_spec, sort_keys=True), "teacher_sha256": self.teacher_sha256}

    def set_extra_state(self, state: dict) -> None:
        if state.get("teacher_sha256") != self.teacher_sha256:
            raise CheckpointError(
                f"the checkpoint's teacher (sha256 {state.get('teacher_sha256')}) is not this model's "
                f"({self.teacher_sha256}); rebuild the model from the checkpoint (build_model(cfg, stored=...))"
            )
