"""`i2i sample`: draw new data from an exported sampler (GAN, cGAN, InfoGAN, text to image) into PNG files."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "sample",
        help="draw samples from an exported sampler",
        description="Write N samples of an exported sampler as PNG files, plus a grid of them, a latent "
        "interpolation grid and (for class-conditional samplers) a per-class grid. The same --seed gives "
        "the same samples.",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="exported sampler (.safetensors from `i2i train`/`i2i export`)"
    )
    parser.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    parser.add_argument("--label", type=int, help="class to sample (conditional samplers; default: random classes)")
    parser.add_argument(
        "--code", help="InfoGAN code as comma-separated values (one-hot categorical parts, then continuous)"
    )
    parser.add_argument(
        "--text",
        help="caption to draw (text-to-image samplers), e.g. 'a thick seven'; words from the sampler's vocabulary",
    )
    parser.add_argument(
        "--text-to",
        help="text-to-image samplers: interpolation.png walks from the --text caption to this one (GAN-INT)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def parse_code(text: str | None) -> list[float] | None:
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--code must be comma-separated numbers, got '{text}'") from None


def run(args) -> int:
    from torchvision.utils import make_grid, save_image

    from ..errors import ConfigError
    from ..sampling import TextSampler, load_sampler

    sampler = load_sampler(args.checkpoint, args.device)
    if isinstance(sampler, TextSampler):
        samples = sampler.sample(args.n, args.label, parse_code(args.code), args.seed, text=args.text)
        walk = sampler.interpolate(
            rows=4, steps=8, seed=args.seed, label=args.label, text=args.text, text_to=args.text_to
        )
    elif args.text is not None or args.text_to is not None:
        raise ConfigError(f"{args.checkpoint} is not a text-to-image sampler: it takes no --text")
    else:
        samples = sampler.sample(args.n, args.label, parse_code(args.code), args.seed)
        walk = sampler.interpolate(rows=4, steps=8, seed=args.seed, label=args.label)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if samples.ndim != 4:
        raise ConfigError(
            f"this sampler draws {tuple(samples.shape[1:])}-shaped points, not images; use the Python API "
            "(translate.sampling.load_sampler) for them"
        )
    to_unit = lambda x: x.add(1).div(2).clamp(0, 1)  # noqa: E731
    for i, image in enumerate(samples):
        save_image(to_unit(image), str(out / f"sample_{i:05d}.png"))
    rows = max(1, int(args.n**0.5))
    save_image(make_grid(to_unit(samples), nrow=rows, padding=2, pad_value=1.0), str(out / "grid.png"))
    save_image(make_grid(to_unit(walk), nrow=8, padding=2, pad_value=1.0), str(out / "interpolation.png"))
    written = [f"{args.n} samples", "grid.png", "interpolation.png"]
    if sampler.classes:
        grid = sampler.class_grid(per_class=8, seed=args.seed)
        save_image(make_grid(to_unit(grid), nrow=8, padding=2, pad_value=1.0), str(out / "classes.png"))
        written.append("classes.png")
    print(f"wrote {', '.join(written)} to {out}")
    return 0
