"""What determines each stage of the study: the config values it reads and the stages it reads.

Every stage here is computed from the config alone, so the fingerprints of a whole run are known
before anything trains, and a changed key redoes exactly the stages that read it and those
downstream of them. Keys that only set a cadence (how often a checkpoint or sample grid is
written) or how a run is shown (progress bars, threads) leave results unchanged and are left out.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from translate.devices import resolve_amp

from .baselines import BASELINE_KEYS, is_baseline, section_inputs
from .config import Condition, StudyConfig
from .stages import STAGE_PREFIX, VERSION_KEY, Stage, flatten, package_version

#: section keys that set how often state is written, not what is trained
CADENCE_KEYS = ("save_every", "sample_every")
#: segmenter keys that set how fast a segmenter trains, not what: every sample is a function of its key
SEGMENTER_SPEED_KEYS = ("num_workers", "channels_last", "cache_mb")
#: translator keys that change how fast, not what, the engine trains (as the engine's resume check
#: holds: every sample is a function of its key, recomputation gives the same gradients); ``amp``
#: changes the numbers and stays in the fingerprint
SPEED_KEYS = ("num_workers", "channels_last", "compile", "grad_checkpointing", "cache_mb")
#: translator and segmenter options of features added after studies were run: left out of the
#: fingerprint while at their section's default, so a run folder made before them keeps its stages
OPTIONAL_TRANSLATOR_KEYS = ("distill_from", "seed")
OPTIONAL_SEGMENTER_KEYS = ("amp",)


def stage_keys(section: Any, ignored: tuple[str, ...], optional: tuple[str, ...], **resolved: Any) -> dict:
    """A config section's keys that determine a stage: all but ``ignored``, the ``optional`` ones only
    when they differ from the section's default, ``resolved`` values in place of the written ones."""
    default = asdict(type(section)())
    fields = {**asdict(section), **resolved}
    return {k: v for k, v in fields.items() if k not in ignored and not (k in optional and v == default[k])}


@dataclass(frozen=True)
class Recipe:
    """What one segmenter trains on; conditions sharing a recipe and seed share the segmenter."""

    train_on: str
    translator: str = ""
    photometric: bool = False
    p_translated: float = 1.0

    @classmethod
    def of(cls, c: Condition) -> Recipe:
        if c.train_on != "translated":
            return cls(c.train_on, "", c.photometric, 1.0)
        return cls(c.train_on, c.translator, c.photometric, c.p_translated)

    def key(self, seed: int) -> str:
        parts = [self.train_on] + ([self.translator] if self.translator else [])
        parts += ["photometric"] if self.photometric else []
        parts += [f"p{self.p_translated:g}"] if self.train_on == "translated" and self.p_translated < 1 else []
        return "-".join(parts) + f"-seed{seed}"


class Plan:
    """The stages of one study config, each with its inputs (see ``stages.Stage``)."""

    def __init__(self, cfg: StudyConfig) -> None:
        self.cfg = cfg
        self.version = package_version()

    def _stage(self, name: str, config: dict[str, Any], reads: list[Stage]) -> Stage:
        inputs = {**config, **{STAGE_PREFIX + s.name: s.fingerprint for s in reads}, VERSION_KEY: self.version}
        return Stage(name, inputs)

    def data(self) -> Stage:
        kind = self.cfg.data.kind
        section = self.cfg.data.synthetic if kind == "synthetic" else self.cfg.data.real
        return self._stage("data", {"data.kind": kind, **flatten(asdict(section), f"data.{kind}")}, [])

    def segmenter(self, recipe: Recipe, seed: int) -> Stage:
        config = self._segmenter_config(recipe, seed)
        return self._stage(f"segmenter:{recipe.key(seed)}", config, [self.data(), *self._training_set(recipe)])

    def _segmenter_config(self, recipe: Recipe, seed: int) -> dict[str, Any]:
        ignored = ("seeds", *CADENCE_KEYS, *SEGMENTER_SPEED_KEYS)
        segmenter = self.cfg.segmenter
        section = stage_keys(segmenter, ignored, OPTIONAL_SEGMENTER_KEYS, amp=self._precision(segmenter.amp))
        if not recipe.photometric:
            section.pop("photometric_strength")
        return {
            **flatten(section, "segmenter"),
            **weights_identity(self.cfg.segmenter.weights),
            "segmenter.seed": seed,
            "device": self.cfg.device,
            **flatten(asdict(recipe), "recipe"),
        }

    def _training_set(self, recipe: Recipe) -> list[Stage]:
        """The stages besides ``data`` whose output a recipe's segmenters train on."""
        if recipe.train_on != "translated":
            return []
        return [self.translation(recipe.translator)]  # translated once; mixed rows draw from it with p

    def source_segmenter(self) -> Stage:
        return self.segmenter(Recipe("source"), self.cfg.segmenter.seeds[0])

    def oracle(self) -> Stage:
        return self.segmenter(Recipe("target"), self.cfg.segmenter.seeds[0])

    def _precision(self, amp: str) -> str:
        """The precision a stage computes in: "auto" resolved for the study's device (bf16 on a
        bf16-native CPU, full precision on another), so a run folder moved to another machine redoes
        what would come out different there, and an "auto" that means full precision keeps the
        full-precision stages. A CUDA device this machine lacks keeps the name as written."""
        device = torch.device(self.cfg.device)
        if amp != "auto" or (device.type == "cuda" and not torch.cuda.is_available()):
            return amp
        return resolve_amp(amp, device)

    def translator(self, name: str) -> Stage:
        section = self.cfg.translators[name]
        if is_baseline(section):  # nothing trained: the stage holds the keys its translation reads
            return self._stage(f"translator:{name}", flatten(section_inputs(section), f"translators.{name}"), [])
        ignored = (*CADENCE_KEYS, *SPEED_KEYS, *BASELINE_KEYS)
        fields = stage_keys(section, ignored, OPTIONAL_TRANSLATOR_KEYS, amp=self._precision(section.amp))
        reads = [self.data()]
        if section.lambda_semantic > 0:
            reads.append(self.source_segmenter())  # the frozen segmenter of the semantic term
        if section.init_from:
            reads.append(self.translator(section.init_from))
        if section.distill_from:
            reads.append(self.translator(section.distill_from))  # the teacher's exported generator
        config = {**flatten(fields, f"translators.{name}"), "device": self.cfg.device}
        return self._stage(f"translator:{name}", config, reads)

    def translation(self, name: str) -> Stage:
        config = {} if is_baseline(self.cfg.translators[name]) else {"device": self.cfg.device}
        return self._stage(f"translation:{name}", config, [self.data(), self.translator(name)])

    def ensemble(self, c: Condition, seed: int) -> Stage:
        """A row scored by the averaged softmax of other rows' segmenters of the same seed."""
        members = self.ensemble_members(c, seed)
        keys = [re.sub(rf"-seed{seed}(?=$|-round)", "", member_key(m.name)) for m in members]
        return self._stage(f"ensemble:{'+'.join(keys)}-seed{seed}", {}, [self.data(), *members])

    def ensemble_members(self, c: Condition, seed: int) -> list[Stage]:
        """The stages of an ensemble row's member segmenters: each member row's scoring segmenter,
        re-estimated on the target (``norm_stats: target``) when the ensemble row asks for it."""
        members = []
        for name in c.ensemble:
            member = self.condition(name)
            final = self.final_segmenter(member, seed)
            members.append(self.norm_stats(final) if adapts_member(c, member) else final)
        return members

    def final_segmenter(self, c: Condition, seed: int) -> Stage:
        """The segmenter a trained row ends with: its last self-training round's, else its own."""
        return self._trained_stages(c, seed)[-1]

    def scoring_segmenter(self, c: Condition, seed: int) -> Stage:
        """The segmenter that scores a trained row: its final one, with batch-norm statistics
        re-estimated on the target training images when the row says ``norm_stats: target``."""
        final = self.final_segmenter(c, seed)
        return self.norm_stats(final) if c.norm_stats == "target" else final

    def norm_stats(self, segmenter: Stage) -> Stage:
        """``segmenter`` with its batch-norm statistics re-estimated on the target training images."""
        key = segmenter.name.removeprefix("segmenter:")
        return self._stage(f"normstats:{key}", {"device": self.cfg.device}, [self.data(), segmenter])

    def row(self, c: Condition, seed: int) -> Stage:
        """The stage that scores condition ``c`` with segmenter seed ``seed``."""
        return self.ensemble(c, seed) if c.train_on == "ensemble" else self.segmenter(Recipe.of(c), seed)

    def condition(self, name: str) -> Condition:
        return next(c for c in self.cfg.conditions if c.name == name)

    def quality(self, name: str) -> Stage:
        reads = [self.data(), self.oracle(), self.source_segmenter()]
        reads += [] if name == "none" else [self.translator(name)]
        return self._stage(f"quality:{name}", {"device": self.cfg.device}, reads)

    def translator_names(self) -> list[str]:
        """The translators some condition trains on, in the order the conditions name them."""
        return list(dict.fromkeys(c.translator for c in self.cfg.conditions if c.train_on == "translated"))

    def report(self) -> Stage:
        seeds = self.cfg.segmenter.seeds
        rows = [stage for c in self.cfg.conditions for seed in seeds for stage in self.row_stages(c, seed)]
        quality = [self.quality(name) for name in ["none", *self.translator_names()]]
        config = {
            "conditions": [c.name for c in self.cfg.conditions],
            "segmenter.seeds": list(seeds),
            "n_examples": self.cfg.n_examples,
        }
        for c in self.cfg.conditions:
            fields = {k: v for k, v in asdict(c).items() if k != "name"}
            if c.norm_stats == "training":  # added later: left out at its default so reports stay cached
                del fields["norm_stats"]
            config.update(flatten(fields, f"conditions.{c.name}"))
        unique_rows = {s.name: s for s in rows}.values()  # conditions sharing a recipe share its segmenters
        return self._stage("report", config, [self.data(), *unique_rows, *quality])

    def all_stages(self) -> list[Stage]:
        """Every stage of a complete run, each once, in the order the pipeline reaches them."""
        stages = [self.data(), self.source_segmenter(), self.oracle(), self.quality("none")]
        for name in self.translator_names():
            section = self.cfg.translators[name]
            stages += [self.translator(t) for t in (section.init_from, section.distill_from) if t]
            stages += [self.translator(name), self.translation(name), self.quality(name)]
        stages += [
            s for c in self.cfg.conditions for seed in self.cfg.segmenter.seeds for s in self.row_stages(c, seed)
        ]
        stages.append(self.report())
        return list({s.name: s for s in stages}.values())

    # --- self-training rows ---------------------------------------------------------------------

    def row_stages(self, c: Condition, seed: int) -> list[Stage]:
        """The stages whose results make row ``c``'s numbers for ``seed``: its segmenter, for a
        self-training row every round's pseudo-labels and segmenter, and for ``norm_stats: target``
        the last segmenter re-estimated on the target (the last stage scores the row)."""
        if c.train_on == "ensemble":  # its members re-estimated here, then the ensemble that scores it
            adapted = [m for m in self.ensemble_members(c, seed) if m.name.startswith("normstats:")]
            return [*adapted, self.ensemble(c, seed)]
        stages = self._trained_stages(c, seed)
        if c.norm_stats == "target":
            stages.append(self.norm_stats(stages[-1]))
        return stages

    def _trained_stages(self, c: Condition, seed: int) -> list[Stage]:
        rounds = c.self_training.rounds if c.self_training is not None else 0
        stages = [self.row(c, seed)]
        for r in range(1, rounds + 1):
            stages += [self.pseudo_labels(c, seed, r), self.round_segmenter(c, seed, r)]
        return stages

    def pseudo_labels(self, c: Condition, seed: int, round_: int) -> Stage:
        """Round ``round_``'s labels of the target training images, by the previous round's segmenter
        (round 1 with a ``teacher``: by that condition's model of the same seed)."""
        from .self_training import round_portion

        st = c.self_training
        config = {
            "self_training.portion": round_portion(st, round_),
            "self_training.keep_above": st.keep_above,
            "device": self.cfg.device,
        }
        if st.min_threshold > 0:  # read only when set, so rows without a floor keep their labels
            config["self_training.min_threshold"] = st.min_threshold
        if st.flip:  # likewise
            config["self_training.flip"] = True
        labeller = self.labeller(c, seed, round_)
        return self._stage(f"pseudolabels:{c.name}-seed{seed}-round{round_}", config, [self.data(), labeller])

    def labeller(self, c: Condition, seed: int, round_: int) -> Stage:
        """The stage whose model labels round ``round_`` of row ``c``: the teacher's row for round 1
        when the row names one, else the previous round's segmenter."""
        teacher = c.self_training.teacher
        if round_ == 1 and teacher:
            row = self.condition(teacher)
            return self.ensemble(row, seed) if row.train_on == "ensemble" else self.scoring_segmenter(row, seed)
        return self.round_segmenter(c, seed, round_ - 1)

    def round_segmenter(self, c: Condition, seed: int, round_: int) -> Stage:
        """Round ``round_``'s segmenter (round 0: the condition's plain one, shared with other rows)."""
        recipe = Recipe.of(c)
        if round_ == 0:
            return self.segmenter(recipe, seed)
        st = c.self_training
        config = {
            **self._segmenter_config(recipe, seed),
            "segmenter.steps": st.steps or self.cfg.segmenter.steps,
            "segmenter.lr": st.lr or self.cfg.segmenter.lr,
            "self_training.init": st.init,
        }
        if st.mix != "none":  # read only when set, so rows without mixing keep their segmenters
            config["self_training.mix"] = st.mix
        reads = [self.data(), *self._training_set(recipe), self.pseudo_labels(c, seed, round_)]
        reads += [self.round_segmenter(c, seed, round_ - 1)] if st.init == "previous" else []
        return self._stage(f"segmenter:{c.name}-seed{seed}-round{round_}", config, reads)


def adapts_member(ensemble: Condition, member: Condition) -> bool:
    """Whether an ensemble row scores ``member`` with target batch-norm statistics: when either row
    asks for them (the member's own scoring segmenter is then the adapted one)."""
    return "target" in (ensemble.norm_stats, member.norm_stats)


def member_key(stage_name: str) -> str:
    """An ensemble member's part of the ensemble's stage name: the segmenter's key, marked when its
    statistics were re-estimated on the target (so the two ensembles are different stages)."""
    kind, _, key = stage_name.partition(":")
    return f"targetnorm-{key}" if kind == "normstats" else key


def weights_identity(path: str) -> dict[str, Any]:
    """The pretrained weights file as a stage input: its size and modification time, so replacing
    the file at the same path redoes the segmenters (without reading hundreds of MB per plan)."""
    if not path:
        return {}
    stat = Path(path).stat()
    return {"segmenter.weights_file": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}}
