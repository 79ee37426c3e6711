"""The launched app through a real client: formats, sizes, determinism, limits and load.

One server (a tiny random generator, so translation is cheap) is launched per module on a free
local port and driven with ``gradio_client`` exactly as a user's script would.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from image_samples import eps_bytes, flat_png, openers_called, pixel_decodes, png_bytes
from PIL import Image

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from apps.app.imaging import Limits
from apps.app.server import ServerOptions, launch
from apps.app.service import InferenceSettings
from translate.io import export_network
from translate.nets import build_generator

pytestmark = pytest.mark.slow

TINY = {"name": "resnet", "ngf": 4, "n_blocks": 1, "in_channels": 3, "out_channels": 3}
MAX_MB, MAX_MP = 6.0, 6.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    export_network(
        folder / "tiny.safetensors", build_generator(TINY), TINY, info={"model": "cyclegan", "direction": "A->B"}
    )
    port = free_port()
    options = ServerOptions(
        model_dirs=[str(folder)],
        include_bundled=False,
        port=port,
        limits=Limits(max_upload_mb=MAX_MB, max_megapixels=MAX_MP),
        inference=InferenceSettings(device="cpu", tile=512),
        concurrency=2,
    )
    blocks = launch(options, block=False)
    url = f"http://127.0.0.1:{port}/"
    yield url, gradio_client.Client(url, verbose=False)
    blocks.close()


def smooth(height: int, width: int, seed: int = 0, grain: float = 4.0) -> np.ndarray:
    """A photo-like image: gradients, waves and film grain (none for files that must stay small)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([xx / width * 255, yy / height * 255, 128 + 60 * np.sin(xx / 23.0 + yy / 37.0)], axis=2)
    rgb += rng.normal(0, grain, rgb.shape) if grain else 0.0
    return np.clip(rgb, 0, 255).astype(np.uint8)


def translate(client, path, strength=1.0):
    before_after, png, summary = client.predict(
        gradio_client.handle_file(str(path)), "tiny", strength, api_name="/translate"
    )
    return before_after, Image.open(png), summary


def make_inputs(folder):
    """(file, displayed width, height) for every kind of upload the app must take."""
    rgb = smooth(333, 517)
    files = []
    png = folder / "odd.png"
    Image.fromarray(rgb).save(png)
    files.append((png, 517, 333))
    jpg = folder / "odd.jpg"
    Image.fromarray(rgb).save(jpg, quality=90)
    files.append((jpg, 517, 333))
    grey = folder / "grey.png"
    Image.fromarray(rgb[:, :, 1]).save(grey)
    files.append((grey, 517, 333))
    rgba = folder / "rgba.png"
    Image.fromarray(np.dstack([rgb, np.full((333, 517), 128, np.uint8)]), "RGBA").save(rgba)
    files.append((rgba, 517, 333))
    deep = folder / "deep16.png"
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(deep)  # 16-bit greyscale
    assert Image.open(deep).mode.startswith("I")
    files.append((deep, 517, 333))
    phone = folder / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated: 333 wide, 517 tall
    Image.fromarray(rgb).save(phone, exif=exif)
    files.append((phone, 333, 517))
    large = folder / "large.png"
    Image.fromarray(smooth(1700, 2600, seed=1, grain=0)).save(large)  # 4.4 MP
    files.append((large, 2600, 1700))
    return files


def test_every_kind_of_image_comes_back_rgb_at_its_displayed_size(server, tmp_path):
    _, client = server
    for path, width, height in make_inputs(tmp_path):
        before_after, out, summary = translate(client, path)
        assert out.mode == "RGB", path.name
        assert out.size == (width, height), path.name
        assert f"{width}×{height}" in summary
        before, after = (Image.open(p) for p in before_after)
        assert before.size == after.size and max(after.size) <= 1600


def test_same_input_same_output(server, tmp_path):
    _, client = server
    path = tmp_path / "odd.jpg"
    Image.fromarray(smooth(333, 517, seed=3)).save(path, quality=90)
    first = np.asarray(translate(client, path)[1])
    second = np.asarray(translate(client, path)[1])
    assert np.array_equal(first, second)
    assert np.abs(first.astype(int) - np.asarray(Image.open(path)).astype(int)).mean() > 5  # it did translate


def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(server, tmp_path):
    url, client = server
    too_many_pixels = tmp_path / "huge.png"
    Image.fromarray(smooth(2100, 3000, grain=0)).save(too_many_pixels)  # 6.3 MP, a small file
    with pytest.raises(Exception, match=r"6\.3 MP.*up to 6 MP"):
        translate(client, too_many_pixels)

    not_an_image = tmp_path / "report.png"
    not_an_image.write_bytes(b"%PDF-1.4 definitely not pixels")
    with pytest.raises(Exception, match="not an image"):
        translate(client, not_an_image)

    drawing = tmp_path / "drawing.png"  # PostScript under an image's name: Pillow would hand it to Ghostscript
    drawing.write_bytes(eps_bytes())
    foreign = r"drawing\.png is not an image in an accepted format"
    with openers_called() as opened, pytest.raises(Exception, match=foreign):
        translate(client, drawing)
    assert opened == []

    too_heavy = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)).save(too_heavy)
    assert too_heavy.stat().st_size > MAX_MB * 2**20
    limit = int(MAX_MB * 2**20)
    with pixel_decodes() as decoded:
        # gradio_client reads the limit from the page's config and refuses to send the file ...
        with pytest.raises(ValueError, match=rf"^File {too_heavy} exceeds the maximum file size of {limit} bytes"):
            translate(client, too_heavy)
        # ... and a client that does not check is refused by the server while uploading
        status, message = post_upload(url, too_heavy)
    assert (status, message) == (413, f"File size exceeded maximum allowed size of {limit} bytes.")
    assert decoded == []  # not a pixel of it was decoded, by Gradio or by the app

    path = tmp_path / "fine.png"
    Image.fromarray(smooth(64, 96)).save(path)
    assert translate(client, path)[1].size == (96, 64)


def test_server_files_outside_uploads_and_examples_are_not_served(server):
    url, _ = server
    for probe in ("gradio_api/file=/etc/passwd", "gradio_api/file=" + __file__):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + probe, timeout=30)
        assert err.value.code in (403, 404)


def test_twenty_concurrent_requests_are_all_answered(server, tmp_path):
    url, client = server
    path = tmp_path / "photo.jpg"
    Image.fromarray(smooth(333, 517, seed=5)).save(path, quality=90)
    clients = [gradio_client.Client(url, verbose=False) for _ in range(4)]
    started = time.perf_counter()
    jobs = [
        clients[i % len(clients)].submit(gradio_client.handle_file(str(path)), "tiny", 1.0, api_name="/translate")
        for i in range(20)
    ]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda job: job.result(timeout=600), jobs))
    seconds = time.perf_counter() - started
    print(f"\n20 concurrent /translate requests (517x333 JPEG, concurrency 2): {seconds:.1f} s")
    sizes = {Image.open(png).size for _, png, _ in results}
    assert len(results) == 20 and sizes == {(517, 333)}
    assert len({np.asarray(Image.open(png)).tobytes() for _, png, _ in results}) == 1
    assert translate(client, path)[1].size == (517, 333)  # still serving


def post_upload(url: str, path: Path) -> tuple[int, str]:
    """Upload ``path`` as the page does (multipart POST), with no client-side size check."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n\r\n'
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        request = urllib.request.Request(url + "gradio_api/upload", body, headers)
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def call_translate(url: str, image: dict) -> tuple[str, object]:
    """The last event of one raw ``/translate`` call and its data (the message of an error):
    gradio_client would upload a local path itself and never send a ``data:`` URL, hiding what
    the server does with either."""
    call = url + "gradio_api/call/translate"
    body = json.dumps({"data": [{**image, "meta": {"_type": "gradio.FileData"}}, "tiny", 1.0]}).encode()
    request = urllib.request.Request(call, data=body, headers={"Content-Type": "application/json"})
    event_id = json.load(urllib.request.urlopen(request, timeout=60))["event_id"]
    stream = urllib.request.urlopen(f"{call}/{event_id}", timeout=120).read().decode()
    event, data = [line.split(": ", 1)[1] for line in stream.strip().splitlines()[-2:]]
    data = json.loads(data)
    return event, data["error"] if event == "error" else data


def test_a_server_path_cannot_be_passed_as_the_image(server):
    url, _ = server
    example = Path(__file__).resolve().parents[1] / "apps" / "app" / "examples" / "photo_to_ink__cat.jpg"
    for path in ("/etc/hostname", str(example)):
        event, message = call_translate(url, {"path": path})
        assert event == "error" and "because it was not uploaded by a user" in message


def test_a_data_url_gets_the_same_limits_before_anything_is_decoded(server):
    url, _ = server

    def as_data_url(content: bytes) -> dict:
        return {"path": None, "url": "data:image/png;base64," + base64.b64encode(content).decode()}

    bomb = as_data_url(flat_png(12248, 12248))  # a flat 150 MP PNG: 18 kB, 450 MB once decoded
    with pixel_decodes() as decoded, openers_called() as opened:
        refused = call_translate(url, bomb)
        foreign = call_translate(url, as_data_url(eps_bytes()))
    too_many = "the image is 12248×12248 (150.0 MP); this app accepts up to 6 MP — downscale it first"
    assert refused == ("error", too_many)
    accepted = "(PNG, JPEG, WEBP, TIFF, BMP, GIF), or it is corrupt"
    assert foreign == ("error", f"the pasted image is not an image in an accepted format {accepted}")
    assert decoded == [] and opened == []
    event, (_, png, summary) = call_translate(url, as_data_url(png_bytes(Image.fromarray(smooth(20, 30)))))
    assert event == "complete" and summary.startswith("30×20 px") and Path(png["path"]).name.startswith("pasted_tiny")
