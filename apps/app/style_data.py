"""Build the paired photo / ink-and-wash data set the bundled style translators are trained on.

Photos: the real photographs that ship with scikit-image and scikit-learn (no download). Style:
the same photos through OpenCV's edge-preserving ``stylization`` filter, which flattens colour
regions and inks their edges, like a watercolour with pen outlines. Because every style image is a
function of its photo, the pairs are exactly aligned and pix2pix can learn both directions.

Each photo is stored at several scales, so random training crops see the filter's strokes at
more than one size relative to the scene. A few photos are held out for the before/after grids.

    python3 -m apps.app.style_data --out data/app_style
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

#: photos shown only in the before/after grids, never trained on
HELD_OUT = ("chelsea", "flower")
#: shorter side (pixels) of each stored copy of a training photo
SCALES = (192, 288, 384)
#: filter strength: spatial extent of the smoothing and how strongly colour edges are kept
STYLE_SIGMA_S = 60.0
STYLE_SIGMA_R = 0.45


def source_photos() -> dict[str, np.ndarray]:
    """Name → RGB uint8 photograph, from the images bundled with scikit-image and scikit-learn."""
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    photos = {
        "astronaut": sk.astronaut(),
        "coffee": sk.coffee(),
        "chelsea": sk.chelsea(),
        "rocket": sk.rocket(),
        "motorcycle": sk.stereo_motorcycle()[0],
        "camera": _gray_to_rgb(sk.camera()),
        "clock": _gray_to_rgb(sk.clock()),
        "coins": _gray_to_rgb(sk.coins()),
    }
    china, flower = load_sample_images().images
    photos.update(china=china, flower=flower)
    return photos


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def stylize(rgb: np.ndarray) -> np.ndarray:
    """The ink-and-wash style of an RGB uint8 image (OpenCV works in BGR, hence the flips)."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    out = cv2.stylization(bgr, sigma_s=STYLE_SIGMA_S, sigma_r=STYLE_SIGMA_R)
    return np.ascontiguousarray(out[:, :, ::-1])


def resize_short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = short / min(h, w)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interp)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f"could not write {path}")


def build(out: Path) -> dict[str, int]:
    """Write ``out/{train,held_out}/{photo,style}/NAME.png``; returns how many pairs each split got."""
    counts = {"train": 0, "held_out": 0}
    for name, photo in source_photos().items():
        if name in HELD_OUT:
            split, scales = "held_out", (min(photo.shape[:2]),)
        else:
            split, scales = "train", SCALES
        for short in scales:
            image = resize_short_side(photo, short)
            stem = f"{name}_{short}"
            write_rgb(out / split / "photo" / f"{stem}.png", image)
            write_rgb(out / split / "style" / f"{stem}.png", stylize(image))
            counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/app_style", help="output folder")
    args = parser.parse_args(argv)
    counts = build(Path(args.out))
    print(f"{args.out}: {counts['train']} training pairs, {counts['held_out']} held-out pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
