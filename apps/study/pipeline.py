"""The domain-adaptation study, stage by stage, each cached in the run folder:

data → source-only and oracle segmenters (first seed) → translators → offline translation of the
source training set → translator quality (FCN score, class flips, distance to paired target) →
one segmenter per condition and seed → evaluation on the labelled target test split → report.

A rerun skips finished stages; a killed translator continues from the engine's checkpoint, a
killed segmenter from its own; a killed translation skips the images already written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Condition, StudyConfig
from .stages import Interrupted, StageRunner


@dataclass(frozen=True)
class Recipe:
    """What one segmenter trains on; conditions sharing a recipe and seed share the segmenter."""

    train_on: str
    translator: str = ""
    photometric: bool = False
    p_translated: float = 1.0

    @classmethod
    def of(cls, c: Condition) -> "Recipe":
        if c.train_on != "translated":
            return cls(c.train_on, "", c.photometric, 1.0)
        return cls(c.train_on, c.translator, c.photometric, c.p_translated)

    def key(self, seed: int) -> str:
        parts = [self.train_on] + ([self.translator] if self.translator else [])
        parts += ["photometric"] if self.photometric else []
        parts += [f"p{self.p_translated:g}"] if self.train_on == "translated" and self.p_translated < 1 else []
        return "-".join(parts) + f"-seed{seed}"


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

    # --- stages ---------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        from .data import build_data, save_data

        def work() -> dict:
            data = build_data(self.cfg, self.cfg.progress)
            save_data(data, self.data_dir)
            return {name: int(len(getattr(data, name)[0])) for name in ("source_train", "target_train", "target_test", "quality")}

        self.stages.run("data", work)

    def segmenter(self, recipe: Recipe, seed: int) -> dict:
        key = recipe.key(seed)
        return self.stages.run(f"segmenter:{key}", lambda: self._train_segmenter(recipe, seed, key))

    def _train_segmenter(self, recipe: Recipe, seed: int, key: str) -> dict:
        from translate.io import export_network, load_checkpoint

        from .segmenter import SegmenterConfig, TrainConfig, chain, evaluate, photometric_augmentation, segmenter_spec, train_segmenter

        s = self.cfg.segmenter
        images, labels, online = self._training_set(recipe)
        folder = self.root / "segmenters" / key
        state = folder / "train_state.pt"
        resumed_at = int(load_checkpoint(state)["step"]) if state.is_file() else 0
        model_cfg = SegmenterConfig(s.encoder, s.encoder_depth, tuple(s.decoder_channels))
        model = train_segmenter(
            images, labels, TrainConfig(steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=seed), model_cfg,
            augment=chain(online, photometric_augmentation(s.photometric_strength) if recipe.photometric else None),
            checkpoint=state, save_every=s.save_every, progress=f"segmenter {key}" if self.cfg.progress else None,
            device=self.cfg.device, stop_at=interrupt_step(self.cfg, f"segmenter:{key}"), log=None,
        )
        if model is None:
            raise Interrupted(f"segmenter {key} stopped as asked")
        model = model.cpu()
        file = export_network(folder / "segmenter.safetensors", model, segmenter_spec(model_cfg), family="segmenter",
                              info={"recipe": recipe.__dict__, "seed": seed, "steps": s.steps})
        test_images, test_labels = self.data.target_test
        return {"file": str(file), "resumed_at": resumed_at, "target_test": evaluate(model, test_images, test_labels, self.classes)}

    def _training_set(self, recipe: Recipe):
        """(images, labels, online augmentation or None) a recipe's segmenters train on."""
        from .translators import online_translation

        d = self.data
        if recipe.train_on == "source":
            return *d.source_train, None
        if recipe.train_on == "target":
            return *d.target_train, None
        if recipe.p_translated >= 1:  # always translated: translate once, offline
            return self.translated_images(recipe.translator), d.source_train[1], None
        # online mixing: each drawn source sample is translated with probability p
        generator = Path(self.translator(recipe.translator)["generator"])
        return *d.source_train, online_translation(generator, recipe.p_translated, self.cfg.device)

    def translator(self, name: str) -> dict:
        from .translators import train_translator

        def work() -> dict:
            section = self.cfg.translators[name]
            semantic_from = self.source_segmenter_file() if section.lambda_semantic > 0 else None
            start = self.final_checkpoint(section.init_from) if section.init_from else None
            out = train_translator(self.cfg, name, self.data_dir, self.root / "translators" / name, semantic_from,
                                   interrupt_step(self.cfg, f"translator:{name}"), start)
            if out["generator"] is None:
                raise Interrupted(f"translator {name} stopped at step {out['step']}")
            return out

        return self.stages.run(f"translator:{name}", work)

    def final_checkpoint(self, name: str) -> Path:
        """The last training checkpoint of translator ``name`` (trained first if need be)."""
        from translate.io import latest_checkpoint

        self.translator(name)
        return latest_checkpoint(self.root / "translators" / name / "checkpoints")

    def translation(self, name: str) -> Path:
        from .translators import translate_folder

        folder = self.data_dir / "translated" / name
        generator = Path(self.translator(name)["generator"])

        def work() -> dict:
            translate_folder(generator, self.data_dir / "source_train", folder, self.cfg.device, self.cfg.progress)
            return {"folder": str(folder)}

        self.stages.run(f"translation:{name}", work)
        return folder

    def translated_images(self, name: str) -> np.ndarray:
        from .translators import read_folder

        return read_folder(self.translation(name))

    def quality(self, name: str) -> dict:
        from .quality import translation_quality
        from .translators import translate_arrays

        def work() -> dict:
            source, labels, paired = self.data.quality
            translated = source if name == "none" else translate_arrays(Path(self.translator(name)["generator"]), source, self.cfg.device)
            (self.root / "quality").mkdir(exist_ok=True)
            np.save(self.root / "quality" / f"{name}.npy", translated)  # for the sample grid
            return translation_quality(source, labels, translated, paired, self.load_segmenter(self.oracle_file()),
                                       self.load_segmenter(self.source_segmenter_file()), self.classes)

        return self.stages.run(f"quality:{name}", work)

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
        from .data import check_sources, load_data
        from .metrics import present_classes
        from .report import write_report

        check_sources(self.cfg)  # before anything is written or trained
        self.stages = StageRunner(self.root)
        write_setup(self.cfg, self.root)
        self.prepare_data()
        self.data = load_data(self.data_dir)
        self.classes = present_classes(self.data.target_test[1])
        self.source_segmenter_file()
        self.oracle_file()
        translators = list(dict.fromkeys(c.translator for c in self.cfg.conditions if c.train_on == "translated"))
        quality = {"none": self.quality("none")}
        for name in translators:
            self.translation(name)
            quality[name] = self.quality(name)
        rows = {}
        for c in self.cfg.conditions:
            rows[c.name] = {seed: self.segmenter(Recipe.of(c), seed) for seed in self.cfg.segmenter.seeds}
        return write_report(self, rows, quality)


def write_setup(cfg: StudyConfig, root: Path) -> None:
    """The exact resolved config and the versions of the packages that produced the numbers."""
    import platform
    from importlib import metadata

    from omegaconf import OmegaConf

    (root / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    versions = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "segmentation-models-pytorch", "torchmetrics", "albumentations", "numpy", "opencv-python-headless", "i2i-translate"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    (root / "versions.json").write_text(json.dumps(versions, indent=2))


def run_study(cfg: StudyConfig) -> dict:
    import torch

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    return Study(cfg).run()
