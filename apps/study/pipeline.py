"""The domain-adaptation study, stage by stage, each cached in the run folder:

data → source-only and oracle segmenters (first seed) → translators → offline translation of the
source training set → translator quality (FCN score, class flips, distance to paired target) →
one segmenter per condition and seed → evaluation on the labelled target test split → report.

A rerun skips finished stages whose inputs (``plan.Plan``) are unchanged and redoes the others
and everything downstream of them; a killed translator continues from the engine's checkpoint, a
killed segmenter (trained by the engine too) from its checkpoint, a killed translation skips the images already written — each only
when its inputs are the same. The run folder keeps every config it was run with (``configs/``).
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np

from translate.errors import DataError

from .baselines import is_baseline
from .config import Condition, SegmenterSection, StudyConfig
from .plan import Plan, Recipe, adapts_member
from .stages import Interrupted, Stage, StageRunner, slug

#: bookkeeping entries of a stage record, not results
RECORD_KEYS = ("fingerprint", "inputs")


def interrupt_step(cfg: StudyConfig, stage: str) -> int | None:
    """The step at which ``stage`` ("translator:NAME", "segmenter:KEY") should stop, if asked."""
    if not cfg.interrupt:
        return None
    where, _, step = cfg.interrupt.rpartition("@")
    return int(step) if where == stage else None


class Study:
    def __init__(self, cfg: StudyConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.out_dir)
        self.data_dir = self.root / "data"
        self.plan = Plan(cfg)

    # --- stages ---------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        from .data import PAIRED, SETS, write_data

        def work() -> dict:
            return write_data(self.cfg, self.data_dir, self.cfg.progress)

        # the set folders are cleared for other inputs: a smaller n_train must not leave extra images
        self.stages.run(self.plan.data(), work, [self.data_dir / name for name in (*SETS, PAIRED)])

    def segmenter(self, recipe: Recipe, seed: int) -> dict:
        folder = self.root / "segmenters" / recipe.key(seed)
        work = partial(self._train_segmenter, recipe, seed, folder)
        return self.stages.run(self.plan.segmenter(recipe, seed), work, [folder])

    def _train_segmenter(
        self,
        recipe: Recipe,
        seed: int,
        folder: Path,
        section: SegmenterSection | None = None,
        dataset: dict | None = None,
        key: str = "",
    ) -> dict:
        """One segmenter trained by the engine in ``folder`` (a killed one continues from its
        latest checkpoint there), then scored on the labelled target test set. ``section`` and
        ``dataset`` (``segmentation_pairs`` options, or another dataset's with its ``name``) default
        to the study's segmenter and the recipe's training set; ``key`` names it (stage ``segmenter:KEY``)."""
        from .evaluation import evaluate_set
        from .segmenter import train_segmenter

        key = key or recipe.key(seed)
        out = train_segmenter(
            section or self.cfg.segmenter,
            dataset or self._training_set(recipe),
            seed,
            folder,
            device=self.cfg.device,
            progress=self.cfg.progress,
            stop_at=interrupt_step(self.cfg, f"segmenter:{key}"),
        )
        if out["file"] is None:
            raise Interrupted(f"segmenter {key} stopped at step {out['step']}")
        model = self.load_segmenter(Path(out["file"]))
        scores = evaluate_set(model, self.data.target_test, self.classes, num_workers=self.cfg.data.num_workers)
        # a finished segmenter is read from its export alone: its training checkpoints (weights and
        # optimiser state, hundreds of MB for a DeepLab, one set per row and seed) only served resume
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        return {"file": out["file"], "resumed_at": out["resumed_at"], "target_test": scores}

    def _training_set(self, recipe: Recipe) -> dict:
        """The ``segmentation_pairs`` dataset options a recipe's segmenters train on: the source or
        target set's image and label folders, read lazily with that set's label format, sizes and
        crop; translated rows draw the translation of each source image (written once by the
        translation stage, resized and cropped as the source image) with probability
        ``p_translated``, the source image otherwise; photometric rows add the photometric
        augmentation."""
        own = "target_train" if recipe.train_on == "target" else "source_train"
        samples = getattr(self.data, own)
        dataset = {
            "images": str(self.data_dir / own / "images"),
            "labels": str(self.data_dir / own / "labels"),
            "label_format": samples.label_format,
            "mismatched": samples.mismatched,
            "size": list(samples.size) if samples.size is not None else None,
            "short_side": samples.short_side,
            "crop": list(samples.crop) if samples.crop is not None else None,
        }
        if recipe.train_on == "translated":
            self.translated_images(recipe.translator)  # every source image has its translation
            folder = self.data_dir / "translated" / recipe.translator
            dataset.update(alternative_images=str(folder), p_alternative=recipe.p_translated)
        if recipe.photometric:
            dataset["photometric"] = self.cfg.segmenter.photometric_strength
        return dataset

    def translator(self, name: str) -> dict:
        from .translators import train_translator

        if is_baseline(self.cfg.translators[name]):  # nothing to train
            return self.stages.run(self.plan.translator(name), lambda: {"kind": self.cfg.translators[name].kind})
        out_dir = self.root / "translators" / name

        def work() -> dict:
            section = self.cfg.translators[name]
            semantic_from = self.source_segmenter_file() if section.lambda_semantic > 0 else None
            start = self.final_checkpoint(section.init_from) if section.init_from else None
            teacher = Path(self.translator(section.distill_from)["generator"]) if section.distill_from else None
            out = train_translator(
                self.cfg,
                name,
                self.data_dir,
                out_dir,
                semantic_from,
                interrupt_step(self.cfg, f"translator:{name}"),
                start,
                teacher,
            )
            if out["generator"] is None:
                raise Interrupted(f"translator {name} stopped at step {out['step']}")
            return out

        return self.stages.run(self.plan.translator(name), work, [out_dir])

    def final_checkpoint(self, name: str) -> Path:
        """The last training checkpoint of translator ``name`` (trained first if need be)."""
        from translate.io import latest_checkpoint

        self.translator(name)
        return latest_checkpoint(self.root / "translators" / name / "checkpoints")

    def translation(self, name: str) -> Path:
        from . import baselines
        from .translators import translate_folder

        folder = self.data_dir / "translated" / name
        section = self.cfg.translators[name]
        if is_baseline(section):
            self.translator(name)

            def transformed() -> dict:
                n = baselines.translate_folder(section, self.data_dir, folder, self.cfg.progress)
                return {"folder": str(folder), "images": n}

            self.stages.run(self.plan.translation(name), transformed, [folder])
            return folder
        generator = Path(self.translator(name)["generator"])

        def work() -> dict:
            n = translate_folder(
                generator, self.data_dir / "source_train" / "images", folder, self.cfg.device, self.cfg.progress
            )
            return {"folder": str(folder), "images": n}

        self.stages.run(self.plan.translation(name), work, [folder])
        return folder

    def translated_images(self, name: str):
        """The translated source training set (written once by ``translation``, read lazily) with
        the source labels, matched by file name."""
        from .data import translated_set

        folder = self.translation(name)
        n = len(list(folder.glob("*.png")))
        expected = len(self.data.source_train)
        if n != expected:
            raise DataError(
                f"{folder} holds {n} translated images, the source training set {expected}; remove {folder} and rerun"
            )
        return translated_set(self.data, folder)

    def quality(self, name: str) -> dict:
        from .quality import translation_quality

        samples = self.root / "quality" / f"{name}.npy"  # for the sample grid

        def work() -> dict:
            from .data import stack

            # the quality set is bounded by data.*.n_quality, not by the dataset: held as arrays
            source, labels = stack(self.data.quality)
            paired = stack(self.data.quality_target)[0] if self.data.quality_target is not None else None
            translated = source if name == "none" else self._translate_quality(name, source)
            samples.parent.mkdir(exist_ok=True)
            np.save(samples, translated)
            return translation_quality(
                source,
                labels,
                translated,
                paired,
                self.load_segmenter(self.oracle_file()),
                self.load_segmenter(self.source_segmenter_file()),
                self.classes,
            )

        return results_of(self.stages.run(self.plan.quality(name), work, [samples]))

    def _translate_quality(self, name: str, source: np.ndarray) -> np.ndarray:
        from . import baselines
        from .translators import translate_arrays

        section = self.cfg.translators[name]
        if is_baseline(section):
            self.translator(name)
            return baselines.translate_arrays(section, self.data_dir, source)
        return translate_arrays(Path(self.translator(name)["generator"]), source, self.cfg.device)

    def ensemble(self, c: Condition, seed: int) -> dict:
        """Condition ``c`` scored by the averaged softmax of its members' segmenters of ``seed``."""
        from .evaluation import evaluate_set

        members = []
        for name in c.ensemble:
            member = self.plan.condition(name)
            record = self.self_training(member, seed)[-1]["segmenter"]
            if adapts_member(c, member):
                record = self.norm_adapted(self.plan.final_segmenter(member, seed), record)
            members.append(record)

        def work() -> dict:
            models = [self.load_segmenter(Path(m["file"])) for m in members]
            return {
                "members": [m["file"] for m in members],
                "target_test": evaluate_set(
                    models, self.data.target_test, self.classes, num_workers=self.cfg.data.num_workers
                ),
            }

        return self.stages.run(self.plan.ensemble(c, seed), work)

    def row(self, c: Condition, seed: int) -> dict:
        """The record of condition ``c``'s own segmenter (an ensemble row: its members' scores) with
        segmenter seed ``seed``, before any self-training round."""
        return self.ensemble(c, seed) if c.train_on == "ensemble" else self.segmenter(Recipe.of(c), seed)

    def scored(self, c: Condition, seed: int) -> dict:
        """The record that scores condition ``c`` with seed ``seed``: its last round's segmenter, with
        batch-norm statistics re-estimated on the target training images for ``norm_stats: target``."""
        return self._scoring(c, seed, self.self_training(c, seed)[-1]["segmenter"])

    def _scoring(self, c: Condition, seed: int, final: dict) -> dict:
        """``final`` (row ``c``'s last record), or its segmenter re-estimated on the target for
        ``norm_stats: target`` (an ensemble row adapted its members already)."""
        if c.norm_stats != "target" or c.train_on == "ensemble":
            return final
        return self.norm_adapted(self.plan.final_segmenter(c, seed), final)

    def norm_adapted(self, segmenter: Stage, record: dict) -> dict:
        """The segmenter of ``record`` (made by stage ``segmenter``) with its batch-norm statistics
        re-estimated on the target training images (AdaBN), exported and scored on the target test set."""
        from .evaluation import evaluate_set
        from .norm_stats import adapt_segmenter

        stage = self.plan.norm_stats(segmenter)
        folder = self.root / "norm_stats" / slug(stage.name.removeprefix("normstats:"))

        def work() -> dict:
            workers = self.cfg.data.num_workers
            file = adapt_segmenter(
                Path(record["file"]),
                self.data.target_train,
                folder / "S.safetensors",
                self.cfg.segmenter.batch_size,
                workers,
                self.cfg.device,
            )
            model = self.load_segmenter(file)
            scores = evaluate_set(model, self.data.target_test, self.classes, num_workers=workers)
            return {"file": str(file), "adapted_from": record["file"], "target_test": scores}

        return self.stages.run(stage, work, [folder])

    def report(self) -> dict:
        """Every row and translator-quality stage (each run or found cached), then the tables and plots."""
        from .report import write_report

        self.source_segmenter_file()
        self.oracle_file()
        quality = {"none": self.quality("none")}
        for name in self.plan.translator_names():
            self.translation(name)
            quality[name] = self.quality(name)
        seeds = self.cfg.segmenter.seeds
        rounds = {c.name: {seed: self.self_training(c, seed) for seed in seeds} for c in self.cfg.conditions}
        rows = {
            c.name: {
                seed: self._scoring(c, seed, per_round[-1]["segmenter"]) for seed, per_round in rounds[c.name].items()
            }
            for c in self.cfg.conditions
        }
        rounds = {c.name: rounds[c.name] for c in self.cfg.conditions if c.self_training is not None}
        return results_of(self.stages.run(self.plan.report(), lambda: write_report(self, rows, quality, rounds)))

    # --- self-training rows ---------------------------------------------------------------------

    def self_training(self, c: Condition, seed: int) -> list[dict]:
        """Row ``c``'s rounds for ``seed``: round 0 ({"segmenter": the plain segmenter's record}),
        then {"portion", "pseudo": the pseudo-labels' score, "segmenter"} per round (none for a
        condition without self-training)."""
        from .self_training import round_portion

        rounds = [{"segmenter": self.row(c, seed)}]
        for r in range(1, (c.self_training.rounds if c.self_training is not None else 0) + 1):
            labels = self.pseudo_labels(c, seed, r, self.labeller_files(c, seed, r, rounds[-1]["segmenter"]))
            segmenter = self.round_segmenter(c, seed, r, Path(labels["folder"]), Path(rounds[-1]["segmenter"]["file"]))
            rounds.append(
                {"portion": round_portion(c.self_training, r), "pseudo": labels["score"], "segmenter": segmenter}
            )
        return rounds

    def _round_dir(self, c: Condition, seed: int, round_: int) -> Path:
        return self.root / "self_training" / slug(c.name) / f"seed{seed}-round{round_}"

    def labeller_files(self, c: Condition, seed: int, round_: int, previous: dict) -> list[Path]:
        """The segmenter files whose (averaged) softmax labels round ``round_``: the teacher row's
        (an ensemble's members) for round 1 when ``c`` names one, else the ``previous`` round's."""
        teacher = c.self_training.teacher
        if round_ == 1 and teacher:
            row = self.plan.condition(teacher)
            if row.train_on == "ensemble":
                return [Path(f) for f in self.ensemble(row, seed)["members"]]
            return [Path(self.scored(row, seed)["file"])]
        return [Path(previous["file"])]

    def pseudo_labels(self, c: Condition, seed: int, round_: int, labellers: list[Path]) -> dict:
        """The target training images labelled by ``labellers`` (segmenter files; several: their
        averaged softmax), once per round and seed."""
        from .self_training import round_portion, write_pseudo_labels

        folder = self._round_dir(c, seed, round_) / "labels"
        portion, keep_above = round_portion(c.self_training, round_), c.self_training.keep_above

        def work() -> dict:
            models = [self.load_segmenter(path).to(self.cfg.device) for path in labellers]
            st = c.self_training
            return write_pseudo_labels(
                models if len(models) > 1 else models[0],
                self.data.target_train,
                folder,
                portion,
                keep_above,
                self.classes,
                min_threshold=st.min_threshold,
                flip=st.flip,
            )

        return self.stages.run(self.plan.pseudo_labels(c, seed, round_), work, [folder])

    def round_segmenter(self, c: Condition, seed: int, round_: int, labels: Path, previous: Path) -> dict:
        """Round ``round_``'s segmenter: the condition's own training set and the pseudo-labelled
        target images (``mix: classmix``: with source classes pasted on), concatenated; from
        scratch, or fine-tuning ``previous`` (``init: previous``)."""
        from .self_training import pseudo_labelled_part, round_section

        st = c.self_training
        folder = self._round_dir(c, seed, round_) / "segmenter"

        def work() -> dict:
            recipe = Recipe.of(c)
            section = round_section(self.cfg.segmenter, st, previous if st.init == "previous" else None)
            own = self._training_set(recipe)
            pseudo = pseudo_labelled_part(self.data_dir, self.data.target_train, labels)
            if st.mix == "classmix":
                pseudo = {"name": "segmentation_classmix", "target": pseudo, "source": own}
            parts = [own, pseudo]
            dataset = {"name": "segmentation_concat", "parts": parts}
            return self._train_segmenter(recipe, seed, folder, section, dataset, f"{c.name}-seed{seed}-round{round_}")

        return self.stages.run(self.plan.round_segmenter(c, seed, round_), work, [folder])

    # --- helpers --------------------------------------------------------------------------------

    def source_segmenter_file(self) -> Path:
        return Path(self.segmenter(Recipe("source"), self.cfg.segmenter.seeds[0])["file"])

    def oracle_file(self) -> Path:
        return Path(self.segmenter(Recipe("target"), self.cfg.segmenter.seeds[0])["file"])

    @staticmethod
    def load_segmenter(path: Path):
        from translate.io import load_network

        return load_network(path)[0]

    # --- the whole study ------------------------------------------------------------------------

    def run(self) -> dict:
        from .data import check_sources, load_data, present_classes

        check_sources(self.cfg)  # before anything is written or trained
        self.stages = StageRunner(self.root)
        config_file = write_setup(self.cfg, self.root)
        self.stages.log("run", config=str(config_file.relative_to(self.root)))
        self.prepare_data()
        self.data = load_data(self.cfg, self.data_dir)
        self.classes = present_classes(self.data.target_test)
        result = self.report()
        if (self.root / "results.md").is_file():
            print((self.root / "results.md").read_text())
        return result


def results_of(record: dict) -> dict:
    """A stage record without its bookkeeping (what went into it), as the report shows it."""
    return {k: v for k, v in record.items() if k not in RECORD_KEYS}


def write_setup(cfg: StudyConfig, root: Path) -> Path:
    """The exact resolved config (``config.yaml``, and kept in ``configs/`` beside every earlier one
    this run folder was run with) and the versions of the packages that produced the numbers.
    Returns the file in ``configs/`` that holds this run's config."""
    import platform
    from importlib import metadata

    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    kept = keep_config(root, text)
    _write_text(root / "config.yaml", text)
    versions = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "torchvision",
        "segmentation-models-pytorch",
        "torchmetrics",
        "albumentations",
        "numpy",
        "opencv-python-headless",
        "i2i-translate",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    (root / "versions.json").write_text(json.dumps(versions, indent=2))
    return kept


def keep_config(root: Path, text: str) -> Path:
    """``configs/config_NNNN.yaml`` holding ``text``: the latest kept config when it is the same,
    else a new one. A ``config.yaml`` from before this history is kept first, so none is lost."""
    history = root / "configs"
    history.mkdir(parents=True, exist_ok=True)
    kept = sorted(history.glob("config_*.yaml"), key=lambda p: int(p.stem.split("_")[1]))
    if not kept and (root / "config.yaml").is_file():
        kept.append(_write_text(history / "config_0001.yaml", (root / "config.yaml").read_text()))
    if kept and kept[-1].read_text() == text:
        return kept[-1]
    number = int(kept[-1].stem.split("_")[1]) + 1 if kept else 1
    return _write_text(history / f"config_{number:04d}.yaml", text)


def _write_text(path: Path, text: str) -> Path:
    from translate.io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def run_study(cfg: StudyConfig) -> dict:
    import torch

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    return Study(cfg).run()
