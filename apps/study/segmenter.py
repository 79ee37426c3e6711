"""The study's segmenter: the fixed instrument, trained by the engine and scored one way.

The domain-adaptation study asks one question over and over: how well does a segmenter trained
on data X do on the target domain? Every row's segmenter is the ``segmentation`` model of the
registry (``translate/models/segmentation.py``) trained by ``translate.engine`` — the same loop,
checkpoints, exact resume, AMP, workers and multi-process training as the translators — on a
``segmentation_pairs`` dataset of image and label folders, so only the training data changes
between rows of the table. Predictions and scores work on in-memory arrays (images N×H×W×3 uint8,
trainId labels N×H×W uint8) and go through the study's one scorer (``metrics.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.images import to_tensor
from translate.nets.layers import crop_to, pad_to_multiple
from translate.segdata.classes import NUM_CLASSES
from translate.segdata.datasets import photometric_augmentation

from .config import SegmenterSection

__all__ = [
    "build_segmenter",
    "evaluate",
    "experiment",
    "input_multiple",
    "photometric_augmentation",
    "predict",
    "segmenter_spec",
    "train_segmenter",
    "write_segmentation_folder",
]

#: the U-Net's options; the DeepLab heads take the encoder alone
UNET_OPTIONS = ("encoder_depth", "decoder_channels")


def segmenter_spec(section: SegmenterSection | None = None) -> dict[str, Any]:
    """The plain-data ``segmenter`` network spec a study section describes (stored in exports)."""
    s = section or SegmenterSection()
    spec: dict[str, Any] = {"name": s.architecture, "num_classes": NUM_CLASSES, "encoder": s.encoder}
    if s.architecture == "smp_unet":
        spec.update(encoder_depth=s.encoder_depth, decoder_channels=list(s.decoder_channels))
    return spec


def build_segmenter(section: SegmenterSection | None = None) -> torch.nn.Module:
    from translate.nets import build_network

    return build_network("segmenter", segmenter_spec(section))


def experiment(
    section: SegmenterSection,
    dataset: dict[str, Any],
    seed: int,
    out_dir: Path,
    device: str = "cpu",
    progress: bool = False,
    stop_at: int | None = None,
):
    """The engine's experiment config for one segmenter: ``dataset`` are the options of a
    ``segmentation_pairs`` dataset, ``seed`` the initialisation and data order."""
    from translate.config import config_from_dict

    s = section
    return config_from_dict(
        {
            "name": f"segmenter-{Path(out_dir).name}",
            "out_dir": str(out_dir),
            "data": {
                "dataset": {"name": "segmentation_pairs", **dataset},
                "batch_size": s.batch_size,
                "num_workers": s.num_workers,
                "cache_mb": s.cache_mb,
            },
            "model": {
                "name": "segmentation",
                "segmenter": segmenter_spec(s),
                "weights": s.weights or None,
                "weights_into": s.weights_into,
            },
            "optim": {
                "optimizer": s.optimizer,
                "lr_seg": s.lr,
                "betas": [0.9, 0.999],
                "weight_decay": s.weight_decay,
                "momentum": 0.9,
                "nesterov": s.nesterov,
                "schedule": s.schedule,
                "max_steps": s.steps,
            },
            "engine": {
                "device": device,
                "amp": s.amp,
                "channels_last": s.channels_last,
                "seed": seed,
                "log_every": 50,
                "sample_every": s.steps,
                "save_every": s.save_every,
                "tensorboard": False,
                "progress": progress,
                "stop_at_step": stop_at,
            },
        },
        where="segmenter",
    )


def train_segmenter(
    section: SegmenterSection,
    dataset: dict[str, Any],
    seed: int,
    out_dir: Path,
    device: str = "cpu",
    progress: bool = False,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train (or continue from ``out_dir``'s latest checkpoint) one segmenter with the engine.
    Returns {"file": the exported segmenter, or None when stopped at ``stop_at``, "resumed_at":
    the step it continued from, "step", "last_logs"}."""
    from translate.engine import train
    from translate.io import checkpoint_step, latest_checkpoint

    out_dir = Path(out_dir)
    exp = experiment(section, dataset, seed, out_dir, device, progress, stop_at)
    checkpoints = out_dir / "checkpoints"
    last = latest_checkpoint(checkpoints) if checkpoints.is_dir() else None
    result = train(exp)
    exported = result.exports.get("S")
    return {
        "file": str(exported) if exported else None,
        "resumed_at": checkpoint_step(last) if last is not None else 0,
        "step": result.step,
        "last_logs": result.last_logs,
    }


def write_segmentation_folder(images: np.ndarray, labels: np.ndarray, folder: Path) -> dict[str, str]:
    """Arrays as ``folder/images/NNNNNN.png`` and ``folder/labels/NNNNNN.png`` (trainIds), the layout
    ``segmentation_pairs`` reads; returns those dataset options."""
    from translate.data.images import write_image

    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        write_image(folder / "images" / f"{i:06d}.png", image)
        write_label(folder / "labels" / f"{i:06d}.png", label)
    return {"images": str(folder / "images"), "labels": str(folder / "labels")}


def write_label(path: Path, label: np.ndarray) -> None:
    """A trainId map as an 8-bit grey PNG, written atomically."""
    from PIL import Image

    from translate.io import atomic_write

    atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8)).save(tmp, "PNG"))


# --- prediction and scores -----------------------------------------------------------------------


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
