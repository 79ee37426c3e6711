"""Before/after grids of the bundled models on held-out images, for docs/app.md.

    python3 -m apps.app.grids --out docs/images

Style models: the held-out photos (and, for the reverse direction, those photos through the
style filter), next to what the filter itself makes. Street models: held-out benchmark scenes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from translate.data.images import list_images

from .catalogue import BUNDLED_DIR, read_card
from .imaging import Limits, ResultFolder, load_upload
from .service import InferenceSettings, TranslationService
from .style_data import HELD_OUT, resize_short_side, source_photos, stylize

LABEL_HEIGHT = 22


def labelled_row(images: list[np.ndarray], labels: list[str], height: int) -> np.ndarray:
    """Images scaled to one height, side by side, each with a caption above."""
    tiles = []
    for image, label in zip(images, labels, strict=False):
        scaled = Image.fromarray(image).resize(
            (round(image.shape[1] * height / image.shape[0]), height), Image.Resampling.LANCZOS
        )
        canvas = Image.new("RGB", (scaled.width + 6, height + LABEL_HEIGHT), (255, 255, 255))
        canvas.paste(scaled, (3, LABEL_HEIGHT))
        ImageDraw.Draw(canvas).text((6, 5), label, fill=(20, 20, 20))
        tiles.append(np.asarray(canvas))
    return np.concatenate(tiles, axis=1)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="before/after grids of the bundled models")
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--scenes", default="data/quickstart/test/images", help="held-out benchmark scenes")
    parser.add_argument("--short-side", type=int, default=256, help="photo size the style models see")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cards = {p.name: read_card(p) for p in sorted(BUNDLED_DIR.glob("*.safetensors"))}
    service = TranslationService(
        list(cards.values()), ResultFolder(out / ".tmp"), Limits(), InferenceSettings(device="cpu")
    )

    def run(rgb: np.ndarray, file: str) -> np.ndarray:
        with service.generators.borrow(cards[file]) as net:
            return service.translate(net, rgb)

    photos = [resize_short_side(source_photos()[name], args.short_side) for name in HELD_OUT]
    rows = []
    for photo in photos:
        styled = stylize(photo)
        rows.append(
            labelled_row(
                [photo, run(photo, "photo_to_ink.safetensors"), styled, run(styled, "ink_to_photo.safetensors")],
                [
                    "held-out photo",
                    "photo -> ink & wash (model)",
                    "the filter itself (target)",
                    "ink & wash -> photo (model)",
                ],
                args.short_side,
            )
        )
    Image.fromarray(stack(rows)).save(out / "app_style_grid.png")

    scenes = [load_upload(p, Limits()) for p in list_images(args.scenes)[:4]]
    rows = [
        labelled_row(
            [
                scene,
                run(scene, "sim_to_real.safetensors"),
                run(run(scene, "sim_to_real.safetensors"), "real_to_sim.safetensors"),
            ],
            ["held-out synthetic scene", "-> photo-like (model)", "and back (reverse model)"],
            128,
        )
        for scene in scenes
    ]
    Image.fromarray(stack(rows)).save(out / "app_street_grid.png")
    for leftover in (out / ".tmp").glob("*"):
        leftover.unlink()
    (out / ".tmp").rmdir()
    print(f"wrote {out / 'app_style_grid.png'} and {out / 'app_street_grid.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
