"""Files and folders: translate one image file, or every image under a folder, into PNG files."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, list_images, read_image, to_image, to_tensor
from ..errors import DataError
from ..io import atomic_write
from .cache import DEFAULT_CACHE_MB
from .lock import FolderLock
from .tiled import translate_image


@dataclass(frozen=True)
class TranslateOptions:
    """How ``translate_file``/``translate_folder`` run the generator; see ``translate_image``."""

    tile: int = 512
    overlap: int = 64
    device: str = "auto"
    amp: str = "off"
    norm_stats: str = "image"
    stat_passes: int | None = None
    cache_mb: float = DEFAULT_CACHE_MB
    cache: str = "auto"
    cache_dir: str | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    allow_unshared_norms: bool = False


def output_path(source: Path, input_root: Path | None, output_dir: Path) -> Path:
    """``output_dir`` / the source's path relative to ``input_root``, with suffix ``.png``."""
    relative = source.relative_to(input_root) if input_root is not None else Path(source.name)
    return output_dir / relative.with_suffix(".png")


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write ``rgb`` as PNG through ``io.atomic_write``: a kill leaves no half image.

    The temporary name ends in ``.tmp``, so a later ``list_images`` never mistakes it for an image.
    """
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"cannot encode PNG for {path}")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))
    return path


def translate_file(generator: nn.Module, source: str | Path, target: str | Path, options: TranslateOptions) -> Path:
    """Read ``source``, translate it, write ``target`` (PNG) atomically. Errors name the file."""
    source, target = Path(source), Path(target)
    if target.resolve() == source.resolve():
        raise DataError(f"refusing to overwrite the input {source}; choose another output folder")
    rgb = read_image(source, max_pixels=options.max_pixels)
    try:
        out = translate_image(
            generator,
            to_tensor(rgb)[None],
            tile=options.tile,
            overlap=options.overlap,
            device=options.device,
            amp=options.amp,
            norm_stats=options.norm_stats,
            stat_passes=options.stat_passes,
            cache_mb=options.cache_mb,
            cache=options.cache,
            cache_dir=options.cache_dir,
            allow_unshared_norms=options.allow_unshared_norms,
        )
    except torch.OutOfMemoryError:
        raise DataError(f"{source}: out of memory; use a smaller --tile") from None
    return write_png(target, to_image(out))


@dataclass
class FolderReport:
    written: list[Path]
    skipped: list[Path]
    failed: list[tuple[Path, str]]


def plan_outputs(inputs: list[Path], input_root: Path | None, output_dir: Path) -> list[tuple[Path, Path]]:
    """(source, target) pairs, checked before anything is written.

    Two inputs that would write the same output (``a.jpg`` and ``a.png``) or an output that is an
    input are errors here, so a run never silently overwrites an input or its own work.
    """
    pairs = [(src, output_path(src, input_root, output_dir)) for src in inputs]
    sources = {src.resolve() for src in inputs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        key = dst.resolve()
        if key in sources:
            raise DataError(f"output {dst} would overwrite an input image; choose another output folder")
        if key in seen:
            raise DataError(f"{seen[key]} and {src} would both be written to {dst}; rename one")
        seen[key] = src
    return pairs


def translate_path(
    generator: nn.Module,
    input_path: str | Path,
    output_dir: str | Path,
    options: TranslateOptions,
    skip_existing: bool = False,
    progress: bool = True,
) -> FolderReport:
    """Translate one image or every image under a folder into ``output_dir``.

    A file that cannot be read (corrupt, too large, ...) is skipped with a message and reported in
    ``failed``, so one bad file in a thousand does not throw away the other 999; the caller decides
    whether that is an error (the CLI exits non-zero). A single-file input raises instead.

    One run at a time writes into ``output_dir`` (``FolderLock``: another is refused, naming this
    one), and the run ends with ``check_outputs``: an input with neither output nor failure is an error.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    if input_path.is_file():
        if input_path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{input_path} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        pairs = plan_outputs([input_path], None, output_dir)
    else:
        pairs = plan_outputs(list_images(input_path), input_path, output_dir)
    with FolderLock(output_dir):
        if input_path.is_file():
            report = _translate_one(generator, pairs[0], options, skip_existing)
        else:
            report = _translate_all(generator, pairs, options, skip_existing, progress)
        check_outputs(pairs, {source for source, _ in report.failed})
    return report


def _translate_one(
    generator: nn.Module, pair: tuple[Path, Path], options: TranslateOptions, skip_existing: bool
) -> FolderReport:
    if skip_existing and pair[1].exists():
        return FolderReport([], [pair[1]], [])
    return FolderReport([translate_file(generator, *pair, options)], [], [])


def _translate_all(
    generator: nn.Module, pairs: list[tuple[Path, Path]], options: TranslateOptions, skip_existing: bool, progress: bool
) -> FolderReport:
    from tqdm import tqdm

    report = FolderReport([], [], [])
    for src, dst in tqdm(pairs, desc="translate", unit="image", disable=not progress):
        if skip_existing and dst.exists():
            report.skipped.append(dst)
            continue
        try:
            report.written.append(translate_file(generator, src, dst, options))
        except (DataError, OSError) as exc:  # OSError: a full disk, a folder without write permission
            message = str(exc) if isinstance(exc, DataError) else f"{src}: cannot write {dst}: {exc}"
            tqdm.write(f"skipping: {message}", file=sys.stderr)
            report.failed.append((src, message))
    return report


def check_outputs(pairs: list[tuple[Path, Path]], failed: set[Path]) -> None:
    """Every (source, target) pair has its target, or its source failed with a reported reason;
    else a ``DataError`` naming the rest. A target goes missing without a failure when it is
    removed during the run or a write is lost; either way the output is not what it claims to be."""
    missing = [target for source, target in pairs if source not in failed and not target.exists()]
    if missing:
        shown = ", ".join(str(target) for target in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{len(missing)} of {len(pairs)} inputs have no output after the run and no reported failure: "
            f"{shown}{more}; run again to complete them"
        )
