"""Translator stages: train a source→target translator with the engine (which resumes a killed
run from its latest checkpoint; its options — precision, loading workers, memory format, compile,
gradient checkpointing, crops of full-resolution frames — come from the study's translator
section), then translate the source training set offline, once, into files read lazily later."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import StudyConfig, TranslatorSection


def experiment(
    cfg: StudyConfig,
    name: str,
    t: TranslatorSection,
    data_dir: Path,
    out_dir: Path,
    segmenter_file: Path | None,
    stop_at: int | None = None,
    init_from: Path | None = None,
    teacher: Path | None = None,
):
    """The engine's experiment config for translator ``name`` (``init_from``: the checkpoint of
    the translator it fine-tunes; ``teacher``: the exported generator it distils)."""
    from translate.config import config_from_dict

    model = dict(t.model)
    if t.lambda_semantic > 0:
        model.update(lambda_semantic=t.lambda_semantic, semantic_segmenter=str(segmenter_file))
    if teacher is not None:
        model.update(teacher=str(teacher))
    return config_from_dict(
        {
            "name": name,
            "out_dir": str(out_dir),
            "init_from": str(init_from) if init_from else None,
            "data": {
                "dataset": {
                    "name": "unpaired_folders",
                    "root_a": str(data_dir / "source_train" / "images"),
                    "root_b": str(data_dir / "target_train" / "images"),
                },
                "preprocess": t.preprocess,
                "load_size": t.load_size,
                "crop_size": t.crop_size,
                "flip": True,
                "batch_size": t.batch_size,
                "num_workers": t.num_workers,
                "cache_mb": t.cache_mb,
            },
            "model": model,
            "optim": {
                "lr_g": t.lr,
                "lr_d": t.lr,
                "max_steps": t.steps,
                "schedule": "linear",
                "epochs_constant": 1,
                "epochs_decay": 1,
            },
            "engine": {
                "device": cfg.device,
                "amp": t.amp,
                "channels_last": t.channels_last,
                "compile": t.compile,
                "grad_checkpointing": t.grad_checkpointing,
                "ema_decay": t.ema_decay,
                "seed": t.seed,
                "log_every": 20,
                "sample_every": t.sample_every,
                "save_every": t.save_every,
                "tensorboard": False,
                "progress": cfg.progress,
                "stop_at_step": stop_at,
            },
        },
        where=f"translators.{name}",
    )


def train_translator(
    cfg: StudyConfig,
    name: str,
    data_dir: Path,
    out_dir: Path,
    segmenter_file: Path | None,
    stop_at: int | None = None,
    init_from: Path | None = None,
    teacher: Path | None = None,
) -> dict:
    """Train (or continue) translator ``name``; returns {"generator": export path or None, "resumed_at": step}."""
    from translate.engine import train
    from translate.io import checkpoint_step, latest_checkpoint

    exp = experiment(cfg, name, cfg.translators[name], data_dir, out_dir, segmenter_file, stop_at, init_from, teacher)
    last = latest_checkpoint(out_dir / "checkpoints") if (out_dir / "checkpoints").is_dir() else None
    resumed_at = checkpoint_step(last) if last is not None else 0
    result = train(exp)
    generator = result.exports.get("G_AB")
    return {
        "generator": str(generator) if generator else None,
        "resumed_at": resumed_at,
        "step": result.step,
        "last_logs": result.last_logs,
    }


def translate_folder(generator_file: Path, source_dir: Path, out_dir: Path, device: str, progress: bool) -> int:
    """Every source training image translated into ``out_dir`` (same names); a rerun skips finished
    files. Returns the number of images; a translation left incomplete (an image that failed, an
    input without its output) is an error naming the first such image, never a finished stage."""
    from translate.data.images import list_images
    from translate.errors import DataError
    from translate.infer import TranslateOptions, output_path, translate_path
    from translate.io import load_generator

    generator = load_generator(generator_file, device=device if device != "auto" else "cpu")
    options = TranslateOptions(device=device)
    report = translate_path(generator, source_dir, out_dir, options, skip_existing=True, progress=progress)
    inputs = list_images(source_dir)
    if report.failed:
        source, reason = report.failed[0]
        raise DataError(
            f"translating {source_dir} into {out_dir}: {len(report.failed)} of {len(inputs)} images failed "
            f"(first {source}: {reason})"
        )
    missing = [src for src in inputs if not output_path(src, source_dir, out_dir).is_file()]
    if missing:
        raise DataError(
            f"translating {source_dir} into {out_dir}: {len(missing)} of {len(inputs)} images have no "
            f"translation (first {missing[0].name})"
        )
    return len(inputs)


def translate_arrays(generator_file: Path, images: np.ndarray, device: str, batch_size: int = 16) -> np.ndarray:
    """Whole small images through the generator in batches (for scoring: no files involved)."""
    import torch

    from translate.data.images import to_images, to_tensor
    from translate.io import load_generator

    generator = load_generator(generator_file, device=device)
    with torch.no_grad():
        out = [
            to_images(generator(to_tensor(images[i : i + batch_size]).to(device)))
            for i in range(0, len(images), batch_size)
        ]
    return np.concatenate(out)
