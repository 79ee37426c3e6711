"""`i2i data`: make, preview and describe the embedded synthetic street-scene benchmark.

i2i data synth   --out DIR --domain source|target --n N [--size HxW] [--seed S] [--paired]
                 [--preset NAME] [--config YAML]
i2i data synth   --out DIR --layout gta5|cityscapes --n N [--split train|val] [--size HxW] [--render-size HxW]
i2i data preview --out PNG [--n 6] [--size HxW] [--seed S] [--preset NAME] [--config YAML]
i2i data stats   [--n 200] [--size HxW] [--seed S] [--root DIR]
"""

from __future__ import annotations

import argparse

from ..synthetic.trees import LAYOUTS

DEFAULT_SIZE = "128x256"


def register(sub) -> None:
    parser = sub.add_parser("data", help="synthetic benchmark: write scene sets, preview, class statistics")
    kinds = parser.add_subparsers(dest="data_command", required=True, metavar="WHAT")

    synth = kinds.add_parser(
        "synth",
        help="write procedural street scenes with trainId labels (GTA5 folder layout)",
        description="Write N scenes: DIR/images/NNNNN.png, DIR/labels/NNNNN.png (trainIds) and DIR/manifest.json. "
        "With --paired both domains are written from the same layouts, into DIR/source and DIR/target. "
        "With --layout the scenes stand in for a real dataset, in its folder layout, with its label ids and "
        "by default at its resolution: gta5 (source look; DIR/images/00001.png, DIR/labels/00001.png palette "
        "ids; 1052x1914) or cityscapes (target look; DIR/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png, "
        "DIR/gtFine/SPLIT/CITY/*_gtFine_labelIds.png; 1024x2048); scenes are rendered at --render-size "
        "(default half of --size) and upscaled, since rendering at full size is slow and adds no detail. "
        "Run again after a kill, the same command renders only the missing scenes.",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--domain", choices=("source", "target"), help="appearance domain (required unless --paired)")
    synth.add_argument("--n", type=int, required=True, help="number of scenes")
    _common(synth)
    synth.add_argument("--paired", action="store_true", help="render the same layouts in both domains")
    synth.add_argument(
        "--layout", choices=LAYOUTS, help="write a stand-in for this real dataset (its folders, ids and size)"
    )
    synth.add_argument("--split", default="train", help="Cityscapes split of a --layout cityscapes tree (train, val)")
    synth.add_argument("--render-size", help="HxW the scenes are rendered at before upscaling (with --layout)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)

    preview = kinds.add_parser("preview", help="contact sheet: the same layouts in both domains, with label overlays")
    preview.add_argument("--out", required=True, help="PNG file to write")
    preview.add_argument("--n", type=int, default=6, help="number of scenes (rows)")
    _common(preview)
    preview.set_defaults(func=run_preview)

    stats = kinds.add_parser("stats", help="class-frequency report: share of scenes containing each class, pixel share")
    stats.add_argument("--n", type=int, default=200, help="number of scenes to draw (ignored with --root)")
    stats.add_argument("--root", help="report on a written scene set (a folder with manifest.json) instead")
    stats.add_argument("--domain", choices=("source", "target"), help="domain folder of a paired --root")
    _common(stats)
    stats.set_defaults(func=run_stats)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", help="HxW (default 128x256; with --layout the real dataset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--preset",
        help="appearance preset of the target domain (or of --domain source); known: game, real, overcast, dusk",
    )
    p.add_argument("--config", help="YAML with appearance overrides (and optionally 'preset: NAME')")


def _appearances(args: argparse.Namespace, domain: str) -> tuple[dict, dict]:
    """(appearances, preset names) for the generator, from --preset/--config applied to ``domain``."""
    from ..synthetic import DEFAULT_PRESET, appearance_from, load_appearance

    name = args.preset or DEFAULT_PRESET[domain]
    if args.config:
        name, app = load_appearance(args.config, name)
        name = f"{name}+{args.config}"
    else:
        app = appearance_from(name)
    return {domain: app}, {domain: name}


def run_synth(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..synthetic import parse_size, write_scene_set

    if args.layout:
        return run_tree(args)
    if args.render_size:
        raise ConfigError("--render-size applies to --layout trees only")
    args.size = args.size or DEFAULT_SIZE
    if not args.paired and args.domain is None:
        raise ConfigError("--domain source|target is required (or --paired for both)")
    if args.paired and args.domain is not None:
        raise ConfigError("--paired writes both domains; leave out --domain (--preset/--config apply to the target)")
    domain = "target" if args.paired else args.domain
    appearances, presets = _appearances(args, domain)
    manifest = write_scene_set(
        args.out,
        n=args.n,
        seed=args.seed,
        size=parse_size(args.size),
        domain=args.domain,
        paired=args.paired,
        appearances=appearances,
        presets=presets,
        progress=not args.no_progress,
    )
    print(f"wrote {args.n} {'paired ' if args.paired else ''}scenes to {args.out}")
    _print_classes(manifest["classes"])
    return 0


def run_tree(args: argparse.Namespace) -> int:
    """``i2i data synth --layout``: a stand-in tree of a real dataset (``translate.synthetic.trees``)."""
    from ..errors import ConfigError
    from ..synthetic import parse_size
    from ..synthetic.trees import LAYOUT_DOMAIN, REAL_SIZES, write_tree

    if args.paired or args.domain:
        raise ConfigError(f"--layout {args.layout} sets the domain itself; leave out --paired and --domain")
    size = parse_size(args.size) if args.size else REAL_SIZES[args.layout]
    render_size = parse_size(args.render_size) if args.render_size else None
    appearances, _ = _appearances(args, LAYOUT_DOMAIN[args.layout])
    written = write_tree(
        args.out,
        args.layout,
        args.n,
        size,
        render_size,
        split=args.split,
        seed=args.seed,
        appearance=appearances[LAYOUT_DOMAIN[args.layout]],
        progress=not args.no_progress,
    )
    where = f" ({args.split} split)" if args.layout == "cityscapes" else ""
    print(f"wrote {written} of {args.n} {args.layout} frames{where} at {size[1]}×{size[0]} to {args.out}")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from ..data.images import write_image
    from ..synthetic import SceneGenerator, contact_sheet, parse_size

    h, w = parse_size(args.size or DEFAULT_SIZE)
    appearances, _ = _appearances(args, "target")
    gen = SceneGenerator(seed=args.seed, height=h, width=w, paired=True, appearances=appearances)
    path = write_image(args.out, contact_sheet(gen, args.n))
    print(f"wrote {path}: {args.n} layouts, columns: source | target | labels over target")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from ..segdata.classes import class_report
    from ..synthetic import SceneGenerator, parse_size

    if args.root:
        from ..segdata.datasets import SyntheticSceneDataset

        ds = SyntheticSceneDataset(args.root, domain=args.domain)
        labels = (ds[i][1] for i in range(len(ds)))
        n = len(ds)
    else:
        h, w = parse_size(args.size or DEFAULT_SIZE)
        appearances, _ = _appearances(args, "target")
        gen = SceneGenerator(seed=args.seed, height=h, width=w, appearances=appearances)
        labels = (gen.layout(i, args.domain or "target").label for i in range(args.n))
        n = args.n
    print(f"{n} scenes")
    _print_classes(class_report(labels))
    return 0


def _print_classes(report: dict) -> None:
    print(f"{'class':<14}{'scenes with it':>16}{'pixel share':>14}")
    for name, r in report.items():
        print(f"{name:<14}{r['scene_share']:>15.1%}{r['pixel_share']:>14.2%}")
