"""Copy trained generators into the app's package data, each with its model card.

The card (title, domains, training data, limitations) is written into the export's metadata, so
the app needs nothing but the ``.safetensors`` file. Run after training the configs named below
(the sim <-> real pair is the quickstart's run; see docs/app.md, "Retraining the bundled models"):

    python3 -m apps.app.bundle            # reads runs/app_*/export, writes apps/app/models/
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from translate.errors import CheckpointError
from translate.io import export_network, load_network

from .catalogue import BUNDLED_DIR


@dataclass(frozen=True)
class BundledModel:
    file: str  # name under apps/app/models/
    export: str  # the training run's exported generator
    config: str  # the config that trains it
    title: str
    source: str
    target: str
    trained_on: str
    notes: str


_STYLE_DATA = (
    "8 photos shipped with scikit-image and scikit-learn (astronaut, coffee, rocket, motorcycle, china, "
    "camera, clock, coins) at 3 scales, random 96×96 crops, paired with the same photos through OpenCV's "
    "stylization filter; the cat and flower photos are held out"
)
_SYNTH_DATA = (
    "300 procedural game-like street scenes and 300 unrelated photo-like scenes from `i2i data synth` "
    "(64×128 px), unpaired"
)

BUNDLE = (
    BundledModel(
        file="photo_to_ink.safetensors",
        export="runs/app_photo2ink/export/G.safetensors",
        config="configs/app_photo2ink.yaml",
        title="Photo → ink & wash",
        source="photo",
        target="ink & wash",
        trained_on=_STYLE_DATA,
        notes="keeps the photo's colours, draws dark ink outlines along strong edges and flattens shading into "
        "washes, close to the filter itself; outlines are thinner and more broken than the filter's, fine texture "
        "(fur) turns to speckle and dark teal shifts towards blue. Strokes have a fixed size in pixels: downscale "
        "very large photos for a bolder look.",
    ),
    BundledModel(
        file="ink_to_photo.safetensors",
        export="runs/app_ink2photo/export/G.safetensors",
        config="configs/app_ink2photo.yaml",
        title="Ink & wash → photo",
        source="ink & wash",
        target="photo",
        trained_on=_STYLE_DATA + " (the pairs reversed)",
        notes="removes the ink outlines and softens the washes of images made by the same filter, giving back a "
        "photo-like image with the original colours; it cannot restore detail the filter removed (results look "
        "painted and smooth) and other drawing styles are outside what it has seen.",
    ),
    BundledModel(
        file="sim_to_real.safetensors",
        export="runs/quickstart/export/G_AB.safetensors",
        config="configs/quickstart.yaml",
        title="Synthetic street → photo-like",
        source="game-like street scene",
        target="photo-like street scene",
        trained_on=_SYNTH_DATA,
        notes="the quickstart's translator (CycleGAN): turns flat game colours into grey, textured, photo-like "
        "facades and cobbled roads while keeping cars, people, trees and windows in place; the grain is partly "
        "the target domain's own texture and partly blotchy artefacts; made for 64×128 scenes like those of "
        "`i2i data synth`; on real photos it only shifts colours and adds texture.",
    ),
    BundledModel(
        file="real_to_sim.safetensors",
        export="runs/quickstart/export/G_BA.safetensors",
        config="configs/quickstart.yaml",
        title="Photo-like street → synthetic",
        source="photo-like street scene",
        target="game-like street scene",
        trained_on=_SYNTH_DATA,
        notes="the reverse generator of the same CycleGAN: gives photo-like benchmark scenes flat, saturated game "
        "colours with blurred edges; on real photos it only shifts colours.",
    ),
)


def bundle_one(model: BundledModel, root: Path, out_dir: Path, order: int = 0) -> Path:
    export = root / model.export
    if not export.is_file():
        raise CheckpointError(f"{export} not found: train and export {model.config} first")
    net, meta = load_network(export)
    card = {
        "title": model.title,
        "source": model.source,
        "target": model.target,
        "trained_on": model.trained_on,
        "notes": model.notes,
        "config": model.config,
        "order": order,
    }
    info = {**meta["info"], "card": card}
    return export_network(out_dir / model.file, net, meta["architecture"], meta["family"], info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="copy trained generators into the app with their cards")
    parser.add_argument("--root", default=".", help="project root holding runs/")
    parser.add_argument("--out", default=str(BUNDLED_DIR))
    parser.add_argument("--only", nargs="*", help="bundle only these files (e.g. photo_to_ink.safetensors)")
    args = parser.parse_args(argv)
    for order, model in enumerate(BUNDLE):
        if args.only and model.file not in args.only:
            continue
        path = bundle_one(model, Path(args.root), Path(args.out), order)
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
