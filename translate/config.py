"""Typed experiment configuration.

An experiment YAML is a small diff over the dataclass defaults below. Loading is strict: a key
that does not exist (a typo) is an error that names the key. Model-specific options live under
``model:`` and are checked against the chosen model's own ``Config`` dataclass; network and
dataset options are checked against their constructors when they are built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .models import model_config
from .strict import config_layers, strict_merge


@dataclass
class DataConfig:
    # which dataset, and its own options (checked against the dataset's constructor)
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "unpaired_folders"})
    # how images are brought to training size, the same way for both halves of a pair:
    # resize_and_crop | scale_shortside_and_crop | crop | none
    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    batch_size: int = 1
    num_workers: int = 0
    # megabytes of decoded images each loading process keeps in memory, for datasets that take
    # cache_mb (translate.data.cache): a small set is decoded once instead of every epoch
    cache_mb: float = 0.0


@dataclass
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lr_seg: float = 1e-2  # the segmentation model's rate
    # adam (the GAN default) | adamw | sgd; one optimiser of this kind per group the model declares
    optimizer: str = "adam"
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # adam, adamw
    weight_decay: float = 0.0  # decoupled in adamw, L2 in adam and sgd
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    # constant | linear | cosine | poly | onecycle. "linear" keeps the rate for epochs_constant epochs and then
    # decays it linearly over epochs_decay epochs, the last one training at 1/(epochs_decay + 1)
    # of it (the CycleGAN/pix2pix schedule, applied per step). "poly": (1 - step/total) ** 0.9, the
    # segmentation literature's (DeepLab). "onecycle": torch's OneCycleLR (cosine warm-up over 10 %
    # from 1/25 of the rate, then cosine decay; Adam's beta1 / SGD's momentum cycled 0.95 -> 0.85 -> 0.95).
    schedule: str = "linear"
    epochs_constant: int = 100
    epochs_decay: int = 100
    # total optimisation steps; when set it replaces the epoch count, keeping the same proportions
    max_steps: int | None = None


@dataclass
class EngineConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "off"  # off | auto (bf16 where the device computes it natively) | bf16 | fp16
    grad_checkpointing: bool = False
    channels_last: bool = False
    compile: bool = False
    ema_decay: float = 0.0  # 0 disables the EMA copy of the generators
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    sample_every: int = 500
    save_every: int = 1000
    tensorboard: bool = True
    progress: bool = True
    # stop after this step as if killed there, without changing the schedule (for resume checks)
    stop_at_step: int | None = None


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out_dir: str = "runs/${name}"
    # auto | never | path to a checkpoint | force | force:PATH (resume although keys that change the
    # training trajectory differ from the checkpoint's config; see RESUME_FREE_KEYS)
    resume: str = "auto"
    # fine-tuning: a training checkpoint of another run whose net weights (and EMA copies) this
    # run starts from; step, optimisers and schedule start fresh. Ignored when the run resumes.
    init_from: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "cyclegan"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


# Keys that may differ between a checkpoint's config and the config resuming it: they choose where
# and how fast a run goes, or what it reports, but not what it trains. Every other key (model,
# data, batch size, optimiser, schedule, steps, seeds, amp, ...) changes the training trajectory,
# so a new key is trajectory-changing unless it is added here on purpose.
RESUME_FREE_KEYS = frozenset(
    {
        "name",  # labels the run (and the default out_dir)
        "out_dir",  # the run folder may be moved
        "resume",
        "init_from",  # only read when a run starts, never on resume
        "data.num_workers",  # loading processes; every sample is a function of (index, seed)
        "data.cache_mb",  # decoded images kept in memory: the same pixels, read once
        "engine.device",  # another (or fewer) GPU(s), e.g. cuda:3 -> cuda
        "engine.grad_checkpointing",  # recompute instead of store: the same gradients
        "engine.channels_last",  # memory format
        "engine.compile",
        "engine.deterministic",  # kernel choice: bit-exactness, not the trajectory
        "engine.log_every",
        "engine.sample_every",
        "engine.save_every",
        "engine.tensorboard",
        "engine.progress",
        "engine.stop_at_step",
    }
)


def flat_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config mapping as ``{"dotted.key": value}``; lists are values, not flattened."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def trajectory_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every trajectory-changing key whose value differs between two
    config mappings (a key on one side only reads ``<absent>`` on the other). An optimiser key the
    stored config lacks (a checkpoint of a version before it existed) reads as its default, which
    is what that version trained with."""
    optim_defaults = flat_config({"optim": dataclasses.asdict(OptimConfig())})
    old, new = {**optim_defaults, **flat_config(stored)}, flat_config(current)
    absent = "<absent>"
    return [
        f"{key}: {old.get(key, absent)} -> {new.get(key, absent)}"
        for key in sorted(set(old) | set(new))
        if key not in RESUME_FREE_KEYS and old.get(key, absent) != new.get(key, absent)
    ]


def config_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """``cfg`` as plain nested data (what checkpoints store)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load an experiment YAML (optional), apply ``key=value`` overrides, and check every key."""
    layers = config_layers(path, overrides)
    return _resolve(layers, where=str(path or "config"))


def config_from_dict(data: dict[str, Any], where: str) -> ExperimentConfig:
    """An experiment config from a plain mapping (e.g. the one stored in a checkpoint), checked
    as strictly as a YAML file."""
    return _resolve([OmegaConf.create(data)], where)


def _resolve(layers: list[Any], where: str) -> ExperimentConfig:
    cfg: ExperimentConfig = strict_merge(ExperimentConfig, *layers, where=where)
    cfg.model = dataclasses.asdict(model_config(cfg.model))
    return cfg


def to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
