"""`i2i app`: the Gradio app for translating images in the browser (apps/app)."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "app",
        help="open the image-translation web app",
        description="Serve a local web page that translates uploaded images with the bundled models "
        "and any exported generators under --models; it also answers the /translate API.",
    )
    parser.add_argument(
        "--models", nargs="*", default=[], metavar="DIR", help="folders with exported generators (.safetensors)"
    )
    parser.add_argument("--no-bundled", action="store_true", help="offer only the models under --models")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--amp",
        default="off",
        choices=["auto", "off", "bf16", "fp16"],
        help="mixed precision (auto: bf16 where native)",
    )
    parser.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnxruntime", "openvino", "auto"],
        help="inference engine (default torch; the others also offer .onnx models; auto: the fastest measured)",
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="default fp32")
    parser.add_argument("--tile", type=int, default=512, help="tile size for large images")
    parser.add_argument("--concurrency", type=int, default=1, help="translations at once on the device")
    parser.add_argument("--queue-size", type=int, default=64, help="requests that may wait")
    parser.add_argument("--max-upload-mb", type=float, default=50.0)
    parser.add_argument("--max-megapixels", type=float, default=40.0)
    parser.set_defaults(func=run)


def run(args) -> int:
    # the app and Gradio load only when this command runs
    from apps.app.imaging import Limits
    from apps.app.server import ServerOptions, launch
    from apps.app.service import InferenceSettings

    options = ServerOptions(
        model_dirs=args.models,
        include_bundled=not args.no_bundled,
        host=args.host,
        port=args.port,
        limits=Limits(max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels),
        inference=InferenceSettings(
            device=args.device, amp=args.amp, tile=args.tile, backend=args.backend, precision=args.precision
        ),
        concurrency=args.concurrency,
        queue_size=args.queue_size,
    )
    launch(options, block=True)
    return 0
