"""Start the app: find the models, build the page, and serve it with the safety limits on."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from translate.errors import ConfigError

from .catalogue import discover
from .imaging import Limits, ResultFolder
from .service import InferenceSettings, TranslationService


@dataclass(frozen=True)
class ServerOptions:
    model_dirs: Sequence[str] = ()
    include_bundled: bool = True
    host: str = "127.0.0.1"  # local only unless asked: the app has no authentication
    port: int = 7860
    limits: Limits = field(default_factory=Limits)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    concurrency: int = 1  # translations at once on the device; the rest wait in the queue
    queue_size: int = 64  # waiting requests beyond this are refused with "queue full"

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue_size < 1:
            raise ConfigError(f"concurrency and queue size must be >= 1, got {self.concurrency} and {self.queue_size}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")


def build_app(options: ServerOptions):
    """The Gradio Blocks of the app (not yet launched) and the skipped model files."""
    # analytics are read from the environment by Gradio; this app never phones home
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from .ui import build_blocks

    cards, skipped = discover(options.model_dirs, options.include_bundled, options.inference.backend)
    results = ResultFolder.temporary()  # removed when the server process exits
    service = TranslationService(cards, results, options.limits, options.inference)
    blocks = build_blocks(service, options.concurrency)
    blocks.queue(default_concurrency_limit=options.concurrency, max_size=options.queue_size, api_open=False)
    return blocks, skipped


def launch(options: ServerOptions, block: bool = True):
    """Serve the app; with ``block=False`` return the running Blocks (call ``.close()``)."""
    from .ui import CSS, EXAMPLES_DIR, theme

    blocks, skipped = build_app(options)
    for reason in skipped:
        print(f"skipped: {reason}")
    blocks.launch(
        server_name=options.host,
        server_port=options.port,
        max_file_size=options.limits.max_upload_bytes,
        # the examples are the only server files the page may read besides uploads and results
        allowed_paths=[str(EXAMPLES_DIR)],
        share=False,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["api"],
        prevent_thread_lock=not block,
        quiet=not block,
        theme=theme(),
        css=CSS,
    )
    return blocks
