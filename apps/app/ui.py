"""The Gradio page: upload or pick an example, choose a model, translate, compare, download.

Gradio is imported here and nowhere below ``apps``; ``build_blocks`` is a pure function of the
service, so tests can build and launch any number of independent apps.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from translate.errors import I2IError

from .service import TranslationService

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"

# system fonts only: the page must render with no network (the default theme fetches web fonts)
_SANS = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

CSS = """
#i2i-header h1 { margin-bottom: 0.1em; }
#i2i-header p { margin-top: 0; opacity: 0.8; }
#i2i-summary { min-height: 1.6em; font-size: 0.9em; opacity: 0.85; }
footer { opacity: 0.6; }
"""

HEADER = """
# i2i · image translation
Drop in a photo, pick a translator, compare before and after with the slider, download the result
at full resolution. Large images are translated in tiles; nothing leaves this machine.
"""


def raw_upload(image: gr.Image) -> gr.Image:
    """Make ``image`` hand the handler the uploaded file untouched.

    The stock component decodes uploads its own way, with any format Pillow knows (EPS through
    Ghostscript) and no size limit for a ``data:`` URL; here the service decodes every upload
    itself, under the app's limits and format list, so 16-bit, EXIF rotation, transparency,
    colour profiles and non-images get the treatment and the message they need. A ``data:`` URL
    is handed on undecoded (the service checks its length first); for a file, Gradio has already
    checked that the path is an upload. Swapped on the instance rather than by a subclass,
    because Gradio writes a type-stub file next to any module defining a component.
    """

    def preprocess(payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return payload.url
        return payload.path

    image.preprocess = preprocess
    return image


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", font=_SANS, font_mono=_MONO)


def example_rows(service: TranslationService) -> list[list[str]]:
    """Example images with the model each one shows best: ``MODELSTEM__name.ext`` goes with the
    model file ``MODELSTEM.safetensors`` (or the first model when that one is not loaded)."""
    by_stem = {service.card(label).path.stem: label for label in service.labels}
    rows = []
    for path in sorted(EXAMPLES_DIR.glob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            rows.append([str(path), by_stem.get(path.stem.split("__")[0], service.labels[0])])
    return rows


def build_blocks(service: TranslationService, concurrency: int = 1) -> gr.Blocks:
    """The app's page and its ``/translate`` endpoint; ``concurrency`` translations run at once
    on the service's device, the rest wait in the queue."""
    labels = service.labels
    first = service.card(labels[0])

    def translate(image, model, strength, progress=gr.Progress()):
        try:
            result = service.run(image, model, strength, lambda f, text: progress(f, desc=text))
        except I2IError as exc:
            raise gr.Error(str(exc), title="Cannot translate this image", print_exception=False) from None
        return (str(result.before), str(result.after)), str(result.png), result.summary

    def describe(model):
        try:
            return service.card(model).markdown()
        except I2IError as exc:
            return str(exc)

    with gr.Blocks(title="i2i · image translation", analytics_enabled=False, delete_cache=(900, 3600)) as blocks:
        gr.Markdown(HEADER, elem_id="i2i-header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                image = raw_upload(
                    gr.Image(
                        label="Input image",
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        height=360,
                        elem_id="i2i-input",
                    )
                )
                model = gr.Dropdown(labels, value=labels[0], label="Translator", elem_id="i2i-model")
                card = gr.Markdown(first.markdown(), elem_id="i2i-card")
                strength = gr.Slider(
                    0.0,
                    1.0,
                    value=1.0,
                    step=0.05,
                    label="Strength",
                    info="0 keeps the input, 1 is the full translation",
                    elem_id="i2i-strength",
                )
                button = gr.Button("Translate", variant="primary", size="lg", elem_id="i2i-translate")
            with gr.Column(scale=3, min_width=360):
                compare = gr.ImageSlider(
                    label="Before / after (drag the handle)",
                    type="filepath",
                    interactive=False,
                    max_height=560,
                    buttons=["fullscreen"],
                    elem_id="i2i-compare",
                )
                summary = gr.Markdown("", label="Summary", show_label=False, elem_id="i2i-summary")
                download = gr.File(label="Result, full resolution (PNG)", interactive=False, elem_id="i2i-download")
                rows = example_rows(service)
                if rows:
                    gr.Examples(
                        rows, inputs=[image, model], label="Examples (held out from training)", examples_per_page=6
                    )
        with gr.Accordion("Limits and API", open=False):
            gr.Markdown(
                f"Uploads up to **{service.limits.max_upload_mb:g} MB** and **{service.limits.max_megapixels:g} MP**. "
                f"Images larger than {service.settings.tile} px are translated in tiles with whole-image "
                f"statistics. Device: **{service.device}**, {concurrency} translation(s) at a time, the rest queue.\n\n"
                "Programmatic use: `gradio_client.Client(URL).predict(handle_file(PATH), MODEL, STRENGTH, "
                'api_name="/translate")` returns (before/after preview, PNG path, summary).'
            )

        model.change(describe, model, card, api_visibility="private", queue=False)
        button.click(
            translate,
            [image, model, strength],
            [compare, download, summary],
            api_name="translate",
            api_description="Translate one image with the named model; returns previews, the full-size PNG and a summary.",
            concurrency_limit=concurrency,
            concurrency_id=f"translate-{service.device}",
        )
    return blocks
