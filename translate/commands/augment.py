"""`i2i augment`: data augmentation with a trained generator (offline dataset translation)."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("augment", help="augment data with a trained generator")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    dataset = actions.add_parser(
        "translate-dataset",
        help="translate every image of a folder tree (resumable; shards over torchrun processes)",
        description="Translate every image under --input into the same place under --output; files "
        "matching --labels-glob and files that are not images are copied byte for byte. Files already "
        "in the output are skipped, so a killed run resumes. Under torchrun each process takes every "
        "N-th file.",
    )
    dataset.add_argument("--checkpoint", required=True, help="exported generator (.safetensors)")
    dataset.add_argument("--input", required=True, help="root of the dataset tree to translate")
    dataset.add_argument("--output", required=True, help="root of the translated copy")
    dataset.add_argument(
        "--labels-glob",
        action="append",
        default=[],
        metavar="PATTERN",
        help="relative paths to copy unchanged although they are images, e.g. 'labels/*' (repeatable)",
    )
    dataset.add_argument("--device", default="auto", help="auto, cpu, cuda (cuda:LOCAL_RANK under torchrun)")
    dataset.add_argument("--tile", type=int, default=512, help="images with a larger side are translated in tiles")
    dataset.add_argument("--amp", default="off", help="off, bf16, fp16 or auto")
    dataset.add_argument("--batch-size", type=int, default=8, help="consecutive images of one size per forward pass")
    dataset.add_argument("--no-progress", action="store_true", help="no progress bar")
    dataset.set_defaults(func=run_translate_dataset)


def run_translate_dataset(args) -> int:
    from augment.offline import translate_dataset_distributed

    mine, total, rank = translate_dataset_distributed(
        checkpoint=args.checkpoint,
        input_root=args.input,
        output_root=args.output,
        labels_glob=tuple(args.labels_glob),
        device=args.device,
        tile=args.tile,
        amp=args.amp,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    if total.processes > 1:
        print(
            f"rank {rank}: translated {mine.translated}, copied {mine.copied}, skipped {mine.skipped}, failed {mine.failed}"
        )
    if rank == 0:
        print(total.summary())
    return 1 if total.failed else 0
