"""The study's typed config: a YAML is a small diff over these defaults, merged strictly (an
unknown key is an error naming it), then checked as a whole before any training starts."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translate.errors import ConfigError
from translate.strict import config_layers, strict_merge

#: where a condition's segmenter gets its training images
TRAIN_ON = ("source", "target", "translated", "ensemble")
DATA_KINDS = ("synthetic", "gta5_cityscapes")
#: where a self-training round's segmenter starts: from scratch, or from the previous round's segmenter
SELF_TRAINING_INITS = ("scratch", "previous")
#: what a self-training round trains on besides the condition's own set: the pseudo-labelled target
#: images as they are, or those images with half the classes of a source image pasted on (ClassMix)
SELF_TRAINING_MIXES = ("none", "classmix")
#: where the batch-norm statistics of a row's scoring segmenter come from: its training images, or
#: the target training images (AdaBN: ``norm_stats.py``)
NORM_STATS = ("training", "target")


@dataclass
class SyntheticData:
    """Procedural scenes: unpaired source/target training sets, a labelled target test set, and
    paired scenes (same layout in both domains) to score translators."""

    size: str = "64x128"
    n_train: int = 400  # per domain
    n_test: int = 200
    n_quality: int = 64  # paired scenes for the translator-quality table
    seed: int = 0
    source: str = "game"  # appearance preset name or appearance YAML path
    target: str = "real"  # the target domain: any preset name or appearance YAML path


@dataclass
class RealData:
    """GTA5 (source, labelled) → Cityscapes (target: unlabelled train split, labelled test split)."""

    gta5_root: str = "data/gta5"
    cityscapes_root: str = "data/cityscapes"
    target_train_split: str = "train"
    target_test_split: str = "val"
    # the literature's protocol (AdaptSegNet, FDA): GTA5 frames resized keeping their aspect (short
    # side 720: 1914×1052 → 1310×720) and trained on random crops; Cityscapes resized to target_size
    # (HxW); test predictions made at target_size and upsampled to the label's size (2048×1024)
    source_short_side: int = 720
    crop: str = "512x1024"  # HxW random crop of every segmenter training frame (source, translated, target)
    target_size: str = "512x1024"
    n_train: int | None = None  # first n of each training set (None: all but the held-out quality frames)
    n_test: int | None = None
    n_quality: int = 64  # the last GTA5 frames, held out of training, score translators (no pairs exist)
    mismatched: str = "skip"  # GTA5 frames whose label has another size: error | skip | resize_label


@dataclass
class DataSection:
    kind: str = "synthetic"  # synthetic | gta5_cityscapes
    # processes that decode test images while segmenters are scored (0: the main process)
    num_workers: int = 0
    synthetic: SyntheticData = field(default_factory=SyntheticData)
    real: RealData = field(default_factory=RealData)


@dataclass
class SegmenterSection:
    """The fixed instrument: one network and one budget for every row, trained by the engine."""

    architecture: str = "smp_unet"  # smp_unet | smp_deeplabv3 | smp_deeplabv3plus
    encoder: str = "resnet18"  # any smp encoder (resnet50, resnet101, ...)
    encoder_depth: int = 3  # smp_unet only
    decoder_channels: list[int] = field(default_factory=lambda: [64, 32, 16])  # smp_unet only
    # a local .pth/.safetensors state dict to start from (e.g. ImageNet ResNet weights); "" = from scratch
    weights: str = ""
    weights_into: str = "encoder"  # encoder | model
    steps: int = 450
    batch_size: int = 12
    lr: float = 2e-3
    optimizer: str = "adamw"  # adamw | adam | sgd (momentum 0.9)
    nesterov: bool = False  # sgd
    weight_decay: float = 1e-4
    schedule: str = "onecycle"  # onecycle | poly | cosine | linear | constant
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    save_every: int = 50
    photometric_strength: float = 1.0
    num_workers: int = 0  # data-loader processes (samples are the same with any number)
    # the engine's precision (off | bf16 | fp16 | auto: bf16 where the device computes it natively)
    amp: str = "off"
    # weights and batches in channels-last memory: the U-Net's step is 1.3× faster on the CPU in fp32
    # and in bf16 (docs/benchmarks.md); a speed option like num_workers (float rounding aside, the
    # same segmenter), so not in the stage's fingerprint, as for translators
    channels_last: bool = False
    # megabytes of decoded training images kept in memory (translate.data.cache): the embedded
    # benchmark's sets fit, so each file is decoded once instead of every epoch; a speed option
    cache_mb: float = 256.0


@dataclass
class TranslatorSection:
    """One translator: by default (kind ``gan``) trained by the engine on source (A) → target (B)
    training images; the training-free kinds (``apps/study/baselines.py``) read only ``kind``,
    ``reference_seed`` and their own options below."""

    # gan | fda | histogram | pixel_distribution
    kind: str = "gan"

    # the engine's model section, complete (a YAML's model replaces this default, it is not merged
    # into it: a model of another kind has other keys); empty: DEFAULT_TRANSLATOR_MODEL
    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 2500
    batch_size: int = 2
    lr: float = 5e-4
    ema_decay: float = 0.99
    # the engine's seed (initialisation and data order): several translators that differ only in
    # it measure the spread between GAN runs, which the segmenter seeds do not
    seed: int = 0
    # > 0: CyCADA's semantic consistency with the frozen source-only segmenter (first seed)
    lambda_semantic: float = 0.0
    # another translator (a key of `translators`) whose final weights this one starts from,
    # CyCADA's staging: image-level translation first, then fine-tuning with the semantic term
    init_from: str = ""
    # another translator (a key of `translators`) whose exported generator this one distils into a
    # small student (model.name: distill, trained on the same source/target sets; model.teacher is
    # set to that export): the generator for online augmentation, scored like any translator
    distill_from: str = ""
    save_every: int = 100
    sample_every: int = 250
    # the engine's options (translate.config): precision (off | bf16 | fp16 | auto), loading
    # processes, memory format, torch.compile, recomputing activations instead of storing them
    amp: str = "off"
    num_workers: int = 0
    channels_last: bool = False
    compile: bool = False
    grad_checkpointing: bool = False
    cache_mb: float = 256.0  # decoded training images kept in memory, as the segmenter's
    # how training frames are brought to size (translate.data.transforms): "none" trains on whole
    # frames (the embedded default); "crop" on random crop_size squares of full-resolution frames
    preprocess: str = "none"
    load_size: int = 286
    crop_size: int = 256
    # the training-free kinds: each source image gets a reference image of the target training
    # set, drawn from (reference_seed, image index)
    reference_seed: int = 0
    beta: float = 0.01  # fda: share of the (centred) amplitude spectrum taken from the reference
    blend: float = 1.0  # histogram, pixel_distribution: weight of the matched image against the source
    transform_type: str = "pca"  # pixel_distribution: pca | standard | minmax


#: the translator a section without a model trains: a small CycleGAN
DEFAULT_TRANSLATOR_MODEL = {
    "name": "cyclegan",
    "generator": {"name": "resnet", "ngf": 16, "n_blocks": 4, "upsample": "resize"},
    "discriminator": {"name": "patchgan", "ndf": 16, "n_layers": 2},
}


def checked_amp(value: str, key: str) -> str:
    """An engine precision (off | bf16 | fp16 | auto: the engine picks what the device supports),
    a bare YAML `off` read as "off"; an unknown one is an error naming ``key``."""
    from translate.devices import AMP_DTYPES, amp_name

    value, modes = amp_name(value), (*AMP_DTYPES, "auto")
    if value not in modes:
        raise ConfigError(f"{key} must be one of {', '.join(modes)}, got '{value}'")
    return value


@dataclass
class SelfTraining:
    """Rounds of self-training on the target training images (CBST, Zou et al. 2018): the previous
    round's segmenter labels them, per class the most confident ``portion`` of the pixels it gives
    that class become labels (the rest are ignored), and a new segmenter trains on the condition's
    own set plus the pseudo-labelled target images, concatenated. Round 0 is the plain segmenter."""

    rounds: int = 2
    portion: float = 0.5  # round 1's share of each class's predicted pixels kept as labels
    portion_step: float = 0.1  # added to the portion every further round ...
    max_portion: float = 0.8  # ... up to this
    # pixels at least this confident are kept whatever their class's threshold (FDA: 0.9; 1: no such rule)
    keep_above: float = 1.0
    # no class's threshold is below this: a class predicted unsure everywhere gets no labels (0: no floor)
    min_threshold: float = 0.0
    init: str = "scratch"  # scratch | previous (fine-tune the previous round's segmenter)
    steps: int = 0  # a round segmenter's steps (0: segmenter.steps)
    lr: float = 0.0  # its learning rate (0: segmenter.lr)
    # none: the pseudo-labelled target images as they are; classmix: each with half the classes of
    # a sample of the condition's own set pasted on, labels and all (DACS's cross-domain mixing)
    mix: str = "none"
    # another condition whose model (of the same seed) labels round 1 instead of the row's own
    # segmenter: an ensemble row's averaged softmax gives fewer wrong labels than any one member
    # ("": the row's own); later rounds label with the previous round's segmenter
    teacher: str = ""
    # label with each labelling model's softmax averaged over the image and its mirror image
    # (test-time flip), so a pixel must be predicted the same both ways to be confident
    flip: bool = False


@dataclass
class Condition:
    """One row of the results table: what its segmenters train on."""

    name: str = "source"
    train_on: str = "source"  # source | target | translated
    translator: str = ""  # for train_on=translated: a key of `translators`
    photometric: bool = False  # classic photometric augmentation on top
    # for train_on=translated: probability that a drawn sample is the translated one (1: always;
    # 0.5: online mixing of source and translated samples)
    p_translated: float = 1.0
    # rounds of self-training on pseudo-labelled target images after the segmenter (none: no rounds)
    self_training: SelfTraining | None = None
    # for train_on=ensemble: names of other conditions whose segmenters (same seed; a self-training
    # row's last round) are averaged, softmax by softmax (FDA's multi-band ensemble of segmenters
    # trained at several betas)
    ensemble: list[str] = field(default_factory=list)
    # where the batch-norm statistics of the segmenter that scores the row come from: "training"
    # (its own training images) or "target" (re-estimated on the unlabelled target training images,
    # AdaBN; an ensemble row: every member's)
    norm_stats: str = "training"


def default_conditions() -> list[Condition]:
    return [
        Condition("source-only", "source"),
        Condition("source + photometric", "source", photometric=True),
        Condition("CycleGAN", "translated", "cyclegan"),
        Condition("CycleGAN + photometric", "translated", "cyclegan", photometric=True),
        Condition("CycleGAN mixed p=0.5", "translated", "cyclegan", p_translated=0.5),
        Condition("CyCADA (CycleGAN + semantic)", "translated", "cycada"),
        Condition("oracle", "target"),
    ]


@dataclass
class StudyConfig:
    name: str = "study"
    out_dir: str = "runs/${name}"
    device: str = "cpu"  # cpu | cuda | cuda:N (segmenters, translators and translation)
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    progress: bool = True
    data: DataSection = field(default_factory=DataSection)
    segmenter: SegmenterSection = field(default_factory=SegmenterSection)
    translators: dict[str, TranslatorSection] = field(
        default_factory=lambda: {
            "cyclegan": TranslatorSection(),
            "cycada": TranslatorSection(lambda_semantic=1.0),
        }
    )
    conditions: list[Condition] = field(default_factory=default_conditions)
    n_examples: int = 4  # scenes in the example grid
    # stop as if killed after this many steps of one stage ("translator:cyclegan@40",
    # "segmenter:source-seed0@20", named as in stages/): a rerun must continue from the checkpoint
    interrupt: str | None = None
    # several studies from one config: variant name -> overrides (key=value) applied on top of this
    # config, each run into out_dir/NAME (unless it sets out_dir) and compared in out_dir/summary.md
    # (e.g. every target preset with the translator settings untouched: configs/study_synth_presets.yaml)
    variants: dict[str, list[str]] = field(default_factory=dict)


#: the top-level key of a study YAML naming another study YAML (relative to it) that it changes
BASE_KEY = "base"


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    layers = [*study_layers(Path(path)), *config_layers(None, overrides)]
    cfg: StudyConfig = strict_merge(StudyConfig, *layers, where=str(path))
    check_config(cfg)
    return cfg


def study_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[Any]:
    """The YAML layers of a study config: those of its ``base`` file first (a config that says only
    how it differs from another, so the shared settings are written once), then its own."""
    from omegaconf import OmegaConf

    (layer,) = config_layers(path)
    base = layer.pop(BASE_KEY, None) if OmegaConf.is_dict(layer) else None
    if base is None:
        return [layer]
    base_path = (path.parent / str(base)).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: base '{base}' leads back to a config already read")
    if not base_path.is_file():
        raise ConfigError(f"{path}: base config not found: {base} (read relative to {path.parent})")
    return [*study_layers(base_path, (*seen, path.resolve())), layer]


def check_config(cfg: StudyConfig) -> None:
    """Errors that would otherwise surface after hours of training, raised now."""
    from translate.data.transforms import PairTransform
    from translate.models import model_config

    if cfg.data.kind not in DATA_KINDS:
        raise ConfigError(f"data.kind must be one of {', '.join(DATA_KINDS)}, got '{cfg.data.kind}'")
    if cfg.data.kind != "synthetic":
        check_real_sizes(cfg.data.real)
    if not cfg.segmenter.seeds:
        raise ConfigError("segmenter.seeds must list at least one seed")
    check_segmenter(cfg.segmenter)
    cfg.segmenter.amp = checked_amp(cfg.segmenter.amp, "segmenter.amp")
    for name, t in cfg.translators.items():
        t.model = dict(t.model) or copy.deepcopy(DEFAULT_TRANSLATOR_MODEL)
        check_translator_kind(name, t, cfg.translators)
        model_config(t.model)  # strict: a misspelt option names itself
        if t.steps < 1:
            raise ConfigError(f"translators.{name}.steps must be >= 1")
        t.amp = checked_amp(t.amp, f"translators.{name}.amp")
        if t.num_workers < 0:
            raise ConfigError(f"translators.{name}.num_workers must be >= 0, got {t.num_workers}")
        if not t.cache_mb >= 0:
            raise ConfigError(f"translators.{name}.cache_mb must be >= 0, got {t.cache_mb}")
        PairTransform(t.preprocess, t.load_size, t.crop_size, True)  # an unknown mode or size names itself
        if t.init_from and (t.init_from == name or t.init_from not in cfg.translators):
            raise ConfigError(
                f"translators.{name}.init_from must name another translator, got '{t.init_from}' "
                f"(known: {', '.join(k for k in cfg.translators if k != name) or 'none'})"
            )
        if t.init_from and cfg.translators[t.init_from].init_from:
            raise ConfigError(
                f"translators.{name}.init_from: '{t.init_from}' starts from another translator itself; "
                "chain at most one level"
            )
    check_variants(cfg.variants)
    for name, t in cfg.translators.items():
        check_distill_from(cfg, name, t)
    names = [c.name for c in cfg.conditions]
    if len(set(names)) != len(names):
        raise ConfigError(f"condition names must be unique, got {names}")
    if not any(c.train_on == "source" and not c.photometric for c in cfg.conditions):
        raise ConfigError("conditions need a source-only row (train_on: source): it is the baseline of the gap")
    if not any(c.train_on == "target" for c in cfg.conditions):
        raise ConfigError("conditions need an oracle row (train_on: target): it closes the gap")
    for c in cfg.conditions:
        if c.train_on not in TRAIN_ON:
            raise ConfigError(
                f"condition '{c.name}': train_on must be one of {', '.join(TRAIN_ON)}, got '{c.train_on}'"
            )
        if c.train_on == "translated" and c.translator not in cfg.translators:
            raise ConfigError(
                f"condition '{c.name}' uses translator '{c.translator}', which is not in translators "
                f"(known: {', '.join(cfg.translators) or 'none'})"
            )
        if not 0.0 <= c.p_translated <= 1.0:
            raise ConfigError(f"condition '{c.name}': p_translated must be in [0, 1], got {c.p_translated}")
        if c.self_training is not None:
            check_self_training(c)
            check_teacher(c, cfg.conditions)
        check_ensemble(c, cfg.conditions)
        if c.norm_stats not in NORM_STATS:
            raise ConfigError(
                f"condition '{c.name}': norm_stats must be one of {', '.join(NORM_STATS)}, got '{c.norm_stats}'"
            )
        if c.norm_stats == "target" and c.train_on == "target":
            raise ConfigError(
                f"condition '{c.name}': norm_stats: target on the oracle row changes nothing it measures; "
                "the oracle already trains on target images"
            )


def check_distill_from(cfg: StudyConfig, name: str, t: TranslatorSection) -> None:
    """A distilled translator names a trained (not itself distilled) translator and is a distill model."""
    model = t.model.get("name")
    if not t.distill_from:
        if model == "distill":
            raise ConfigError(
                f"translators.{name}: model distill needs distill_from, the translator whose generator it distils"
            )
        return
    teacher = cfg.translators.get(t.distill_from)
    if teacher is None or t.distill_from == name:
        known = ", ".join(k for k in cfg.translators if k != name) or "none"
        raise ConfigError(
            f"translators.{name}.distill_from must name another translator, got '{t.distill_from}' (known: {known})"
        )
    if model != "distill":
        raise ConfigError(f"translators.{name}.distill_from needs model.name distill, got '{model}'")
    if teacher.distill_from:
        raise ConfigError(
            f"translators.{name}.distill_from: '{t.distill_from}' is distilled itself; distil a trained translator"
        )
    if t.model.get("teacher"):
        raise ConfigError(
            f"translators.{name}: model.teacher is set from distill_from ('{t.distill_from}'); leave it out"
        )
    if t.init_from:
        raise ConfigError(f"translators.{name}: distill_from and init_from cannot be combined")


def check_variants(variants: dict[str, list[str]]) -> None:
    """Variant names become folder names; each override is key=value and cannot nest variants."""
    for name, overrides in variants.items():
        if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith("."):
            raise ConfigError(f"variants: '{name}' is not a folder name (letters, digits, - _ .)")
        for override in overrides:
            if "=" not in override:
                raise ConfigError(f"variants.{name}: overrides must look like key=value, got '{override}'")
            if override.split("=", 1)[0].strip().startswith("variants"):
                raise ConfigError(f"variants.{name}: a variant cannot set variants ('{override}')")


def check_translator_kind(name: str, t: TranslatorSection, translators: dict[str, TranslatorSection]) -> None:
    """The translator's kind and options; a GAN fine-tunes only another GAN."""
    from .baselines import check_section, is_baseline

    check_section(name, t)
    if t.init_from in translators and is_baseline(translators[t.init_from]):
        raise ConfigError(
            f"translators.{name}.init_from: '{t.init_from}' is of kind '{translators[t.init_from].kind}', "
            "which has no weights to start from"
        )


def check_ensemble(c: Condition, conditions: list[Condition]) -> None:
    """An ensemble row names two or more other rows that train segmenters; only an ensemble row names any."""
    if c.train_on != "ensemble":
        if c.ensemble:
            raise ConfigError(f"condition '{c.name}': ensemble is for train_on: ensemble, got train_on '{c.train_on}'")
        return
    trained = [o.name for o in conditions if o.train_on != "ensemble"]
    unknown = [m for m in c.ensemble if m not in trained]
    if unknown:
        raise ConfigError(
            f"condition '{c.name}': ensemble names '{unknown[0]}', which is not a condition that trains "
            f"segmenters (known: {', '.join(trained)})"
        )
    if len(set(c.ensemble)) < 2:
        raise ConfigError(
            f"condition '{c.name}': ensemble must name at least two different conditions, got {c.ensemble}"
        )


def check_segmenter(s: SegmenterSection) -> None:
    """The segmenter section's choices, and its weights file, checked before anything trains."""
    from translate.engine.runtime import OPTIMIZERS, SCHEDULES
    from translate.nets.segmenters import SEGMENTERS, WEIGHTS_TARGETS

    if s.architecture not in SEGMENTERS:
        raise ConfigError(
            f"segmenter.architecture must be one of {', '.join(SEGMENTERS.names())}, got '{s.architecture}'"
        )
    if s.architecture == "smp_unet" and len(s.decoder_channels) != s.encoder_depth:
        raise ConfigError("segmenter.decoder_channels needs one entry per encoder stage (segmenter.encoder_depth)")
    for key, value, known in (
        ("optimizer", s.optimizer, OPTIMIZERS),
        ("schedule", s.schedule, SCHEDULES),
        ("weights_into", s.weights_into, WEIGHTS_TARGETS),
    ):
        if value not in known:
            raise ConfigError(f"segmenter.{key} must be one of {', '.join(known)}, got '{value}'")
    if s.weights and not Path(s.weights).is_file():
        raise ConfigError(f"segmenter.weights: file not found: {s.weights}")
    if not s.cache_mb >= 0:
        raise ConfigError(f"segmenter.cache_mb must be >= 0, got {s.cache_mb}")


def check_real_sizes(real: RealData) -> None:
    """The real protocol's sizes parse, and the crop fits inside the resized frames of both domains."""
    from translate.synthetic import parse_size

    crop = parse_size(real.crop)
    target = parse_size(real.target_size)
    if real.source_short_side < crop[0]:
        raise ConfigError(
            f"data.real.crop {real.crop} is taller than the resized GTA5 frames "
            f"(data.real.source_short_side {real.source_short_side})"
        )
    if crop[0] > target[0] or crop[1] > target[1]:
        raise ConfigError(f"data.real.crop {real.crop} is larger than data.real.target_size {real.target_size}")


def check_teacher(c: Condition, conditions: list[Condition]) -> None:
    """A self-training teacher is another row that no target label reached (the oracle, or an
    ensemble holding it, would hand the hidden labels to the student) and that does not itself
    wait for this row: a teacher may be, or hold, rows that self-train (students teaching the next
    generation), as long as no chain of teachers and members leads back to ``c``."""
    name, where = c.self_training.teacher, f"condition '{c.name}': self_training.teacher"
    if not name:
        return
    by_name = {o.name: o for o in conditions}
    if name == c.name or name not in by_name:
        others = ", ".join(o.name for o in conditions if o.name != c.name)
        raise ConfigError(f"{where} '{name}' must be another condition (known: {others})")
    teacher = by_name[name]
    members = [by_name[m] for m in teacher.ensemble if m in by_name] if teacher.train_on == "ensemble" else [teacher]
    if any(m.train_on == "target" for m in members):
        raise ConfigError(f"{where} '{name}' is trained on the target labels, which self-training must not see")
    if c.name in _rows_read_by(teacher, by_name):
        raise ConfigError(f"{where} '{name}' needs this row's own segmenters (a cycle of teachers)")


def _rows_read_by(row: Condition, by_name: dict[str, Condition]) -> set[str]:
    """Names of every row whose segmenters ``row`` needs: its ensemble's members and its teacher,
    and theirs, transitively."""
    seen: set[str] = set()
    pending = [row]
    while pending:
        current = pending.pop()
        needs = list(current.ensemble)
        if current.self_training is not None and current.self_training.teacher:
            needs.append(current.self_training.teacher)
        for name in needs:
            if name in by_name and name not in seen:
                seen.add(name)
                pending.append(by_name[name])
    return seen


def check_self_training(c: Condition) -> None:
    """A condition's self-training settings, each checked with the key it came from."""
    st, where = c.self_training, f"condition '{c.name}': self_training"
    if c.train_on == "target":
        raise ConfigError(f"{where} needs train_on source or translated (the oracle has the target labels already)")
    if st.rounds < 1:
        raise ConfigError(f"{where}.rounds must be >= 1, got {st.rounds}")
    for key in ("portion", "max_portion", "keep_above"):
        value = getattr(st, key)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{where}.{key} must be in (0, 1], got {value}")
    if not 0.0 <= st.min_threshold < 1.0:
        raise ConfigError(f"{where}.min_threshold must be in [0, 1), got {st.min_threshold}")
    if st.portion_step < 0:
        raise ConfigError(f"{where}.portion_step must be >= 0, got {st.portion_step}")
    if st.init not in SELF_TRAINING_INITS:
        raise ConfigError(f"{where}.init must be one of {', '.join(SELF_TRAINING_INITS)}, got '{st.init}'")
    if st.mix not in SELF_TRAINING_MIXES:
        raise ConfigError(f"{where}.mix must be one of {', '.join(SELF_TRAINING_MIXES)}, got '{st.mix}'")
    if st.steps < 0 or st.lr < 0:
        raise ConfigError(f"{where}.steps and .lr must be >= 0 (0: the segmenter's), got {st.steps} and {st.lr}")
