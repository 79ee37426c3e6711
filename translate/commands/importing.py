"""`i2i import`: turn a generator of the reference CycleGAN/pix2pix or CUT code into an exported generator."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    parser = sub.add_parser(
        "import",
        help="import a reference CycleGAN/pix2pix or CUT generator (.pth)",
        description="Read a generator state_dict saved by the reference CycleGAN/pix2pix code or by CUT/FastCUT "
        "(e.g. latest_net_G_A.pth) safely (tensors only), infer its architecture from its keys and shapes, and "
        "write it as a self-describing .safetensors generator that every i2i command loads. Options state the "
        "architecture; one the file contradicts is an error naming the key.",
    )
    parser.add_argument("checkpoint", help="the .pth file (a bare state_dict)")
    parser.add_argument("--out", help="output .safetensors file (default: the checkpoint's name with .safetensors)")
    parser.add_argument("--arch", help="the reference's --netG: resnet_9blocks, resnet_6blocks, unet_256, unet_128")
    parser.add_argument("--norm", choices=("instance", "batch", "none"), help="the reference's --norm")
    parser.add_argument(
        "--dropout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the generator was trained with dropout (U-Net default: yes, as pix2pix; no effect on outputs)",
    )
    parser.add_argument(
        "--antialias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CUT: anti-aliased downsampling (--no-antialias is CUT's --no_antialias)",
    )
    parser.add_argument(
        "--antialias-up",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CUT: anti-aliased upsampling (--no-antialias-up is CUT's --no_antialias_up)",
    )
    parser.add_argument(
        "--code-base", choices=("cyclegan", "cut"), help="record which code trained it (default: inferred)"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..importers import import_reference_checkpoint

    result = import_reference_checkpoint(
        args.checkpoint,
        args.out,
        arch=args.arch,
        norm=args.norm,
        dropout=args.dropout,
        antialias=args.antialias,
        antialias_up=args.antialias_up,
        code_base=args.code_base,
    )
    arch = result.architecture
    print(
        f"{args.checkpoint}: {arch.name}, norm {arch.norm}, {arch.in_channels} -> {arch.out_channels} channels, "
        f"ngf {arch.ngf} ({result.info['imported_from']['code_base']})"
    )
    print(f"wrote {result.path} (generator '{result.spec['name']}')")
    return 0
