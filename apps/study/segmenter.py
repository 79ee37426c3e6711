"""A small semantic segmenter (segmentation-models-pytorch, no pretrained weights), trained and scored.

The domain-adaptation study asks one question over and over: how well does a segmenter trained
on data X do on the target domain? This module is the fixed instrument for that question — one
model, one training budget, one mIoU — so that only the training data changes between rows of
the study's table. It works on in-memory arrays (images N×H×W×3 uint8, trainId labels N×H×W
uint8), which any dataset of translate.segdata can fill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from translate.data.images import to_tensor
from translate.nets.layers import crop_to, pad_to_multiple
from translate.segdata.classes import IGNORE, NUM_CLASSES
from translate.segdata.datasets import ArraySet

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class SegmenterConfig:
    """The network: a U-Net on a ResNet-18 encoder cut at stride 8 (enough for small images)."""

    encoder: str = "resnet18"
    encoder_depth: int = 3
    decoder_channels: tuple[int, ...] = (64, 32, 16)
    num_classes: int = NUM_CLASSES


@dataclass
class TrainConfig:
    steps: int = 450
    batch_size: int = 12
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flip: bool = True
    log_every: int = 50


def segmenter_spec(cfg: SegmenterConfig | None = None) -> dict:
    """The plain-data architecture spec of the ``segmenter`` network family (stored in exports)."""
    cfg = cfg or SegmenterConfig()
    return {
        "name": "smp_unet",
        "num_classes": cfg.num_classes,
        "encoder": cfg.encoder,
        "encoder_depth": cfg.encoder_depth,
        "decoder_channels": list(cfg.decoder_channels),
    }


def build_segmenter(cfg: SegmenterConfig | None = None) -> torch.nn.Module:
    from translate.nets import build_network

    return build_network("segmenter", segmenter_spec(cfg))


def input_multiple(model: torch.nn.Module) -> int:
    """What the input's height and width are padded to a multiple of: the encoder's output stride
    (2**encoder_depth), the same in training and prediction."""
    multiple = getattr(model, "input_multiple", None)
    if multiple is None:
        raise ValueError(f"cannot tell the input multiple of a {type(model).__name__}; pass multiple=")
    return int(multiple)


def _logits(model: torch.nn.Module, images: np.ndarray, multiple: int) -> torch.Tensor:
    """N×classes×H×W logits of N×H×W×3 uint8 images, padded to ``multiple`` and cropped back."""
    device = next(model.parameters()).device
    padded, size = pad_to_multiple(to_tensor(images).to(device), multiple)
    return crop_to(model(padded), size)


def training_batch(
    samples,
    rng: np.random.Generator,
    batch_size: int,
    augment: Augment | None = None,
    flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``batch_size`` samples of ``samples`` (a ``translate.segdata.SegmentationSet``: read
    from disk, each with its random crop), augment each image (photometric: labels unchanged) and
    flip image and label together; all randomness from ``rng``."""
    idx = rng.integers(0, len(samples), batch_size)
    drawn = [samples.sample(int(i), rng) for i in idx]
    batch = np.stack([image for image, _ in drawn])
    target = np.stack([label for _, label in drawn])
    if augment is not None:
        batch = np.stack([augment(img, rng) for img in batch])
    if flip:
        flipped = rng.random(batch_size) < 0.5
        batch = np.where(flipped[:, None, None, None], batch[:, :, ::-1], batch)
        target = np.where(flipped[:, None, None], target[:, :, ::-1], target)
    return batch, target


def train_segmenter(
    images,
    labels: np.ndarray | None = None,
    cfg: TrainConfig | None = None,
    model_cfg: SegmenterConfig | None = None,
    augment: Augment | None = None,
    log: Callable[[str], None] | None = print,
    checkpoint: str | Path | None = None,
    save_every: int = 100,
    progress: str | None = None,
    device: str = "cpu",
    stop_at: int | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> torch.nn.Module | None:
    """Train from scratch on ``images``/``labels`` (255 = ignore) with AdamW and a one-cycle schedule.
    ``images`` is a set of (image, label) samples read lazily (``translate.segdata.SegmentationSet``,
    ``labels`` None) or an array of images with ``labels`` beside it.

    ``augment(image, rng)`` is applied to each training image (photometric augmentation); the
    draw order depends only on ``cfg.seed``. With ``checkpoint``, the complete state (weights,
    optimiser, schedule, both random generators, step) is written there atomically every
    ``save_every`` steps and training continues from it when it exists, with the same result as
    an uninterrupted run. ``progress``: a tqdm bar with this description. ``stop_at``: save and
    return None after this step, as if killed there (to check resuming). ``on_resume(step)`` is
    called with the step of the checkpoint training continues from, when it loads one.
    """
    from translate.io import load_checkpoint, save_checkpoint

    cfg = cfg or TrainConfig()
    model_cfg = model_cfg or SegmenterConfig()
    samples = images if labels is None else ArraySet(images, labels)
    if len(samples) == 0:
        raise ValueError("need at least one training sample")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_segmenter(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    start_step = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        model.to(device)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_step = int(state["step"])
        if on_resume is not None:
            on_resume(start_step)

    def save(step: int) -> None:
        save_checkpoint(
            checkpoint,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state(),
                "step": step,
            },
        )

    multiple = input_multiple(model)
    model.train()
    start = time.time()
    running, seen = 0.0, 0
    bar = _bar(cfg.steps, start_step, progress)
    for step in range(start_step + 1, cfg.steps + 1):
        batch, target = training_batch(samples, rng, cfg.batch_size, augment, cfg.flip)
        y = torch.from_numpy(np.ascontiguousarray(target)).long().to(device)
        loss = F.cross_entropy(_logits(model, batch, multiple), y, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running, seen = running + loss.item(), seen + 1
        if bar is not None:
            bar.update(1)
        if checkpoint is not None and (step % save_every == 0 or step == cfg.steps):
            save(step)
        if step % cfg.log_every == 0 or step == cfg.steps:
            if bar is not None:
                bar.set_postfix(loss=f"{running / seen:.3f}")
            elif log:
                log(f"  step {step}/{cfg.steps}  loss {running / seen:.3f}  ({time.time() - start:.0f}s)")
            running, seen = 0.0, 0
        if stop_at is not None and step >= stop_at:
            if checkpoint is not None:
                save(step)
            if bar is not None:
                bar.close()
            return None
    if bar is not None:
        bar.close()
    model.eval()
    return model


def _bar(total: int, initial: int, description: str | None):
    if description is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="step", dynamic_ncols=True)


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: np.ndarray, batch_size: int = 32, multiple: int | None = None
) -> np.ndarray:
    """Predicted trainId maps (N×H×W uint8). Inputs are padded as in training: to ``multiple``,
    by default the model's own (``input_multiple``)."""
    model.eval()
    multiple = multiple or input_multiple(model)
    out = []
    for i in range(0, len(images), batch_size):
        out.append(_logits(model, images[i : i + batch_size], multiple).argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def evaluate(
    model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, classes: Sequence[int] | None = None
) -> dict:
    """Per-class IoU, mIoU over ``classes`` (default: those present in ``labels``) and pixel accuracy."""
    from .metrics import score

    return score(predict(model, images), labels, classes)


def photometric_augmentation(strength: float = 1.0) -> Augment:
    """Classic photometric augmentation (albumentations): colour jitter, Gaussian blur, Gaussian noise.

    This is the baseline the study compares translation against: it changes global colour,
    sharpness and noise, but knows nothing about how each class looks in the target domain.
    """
    import albumentations as A

    s = strength
    transform = A.Compose(
        [
            A.ColorJitter(brightness=0.5 * s, contrast=0.5 * s, saturation=0.6 * s, hue=0.12 * s, p=0.9),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.5),
            A.GaussNoise(std_range=(0.01, 0.08), p=0.5),
        ]
    )

    def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        transform.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        return transform(image=image)["image"]

    return augment


def chain(*augments: Augment | None) -> Augment | None:
    """Apply the given augmentations in order (None entries skipped); None when there are none."""
    steps = [a for a in augments if a is not None]
    if not steps:
        return None

    def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in steps:
            image = step(image, rng)
        return image

    return augment
