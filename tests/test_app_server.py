"""The launched app through a real client: formats, sizes, determinism, limits and load.

One server (a tiny random generator, so translation is cheap) is launched per module on a free
local port and driven with ``gradio_client`` exactly as a user's script would.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
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
    export_network(folder / "tiny.safetensors", build_generator(TINY), TINY, info={"model": "cyclegan", "direction": "A->B"})
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
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(deep)  # 16-bit greyscale
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

    too_heavy = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)).save(too_heavy)
    assert too_heavy.stat().st_size > MAX_MB * 2**20
    with pytest.raises(Exception, match="(?i)size"):  # refused at upload, before any decoding
        translate(client, too_heavy)

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


def test_a_server_path_cannot_be_passed_as_the_image(server):
    # raw HTTP: gradio_client would upload a local path itself, hiding what the server does
    url, _ = server
    example = Path(__file__).resolve().parents[1] / "apps" / "app" / "examples" / "photo_to_ink__cat.jpg"
    call = url + "gradio_api/call/translate"
    for path in ("/etc/hostname", str(example)):
        body = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "tiny", 1.0]}).encode()
        request = urllib.request.Request(call, data=body, headers={"Content-Type": "application/json"})
        event = json.load(urllib.request.urlopen(request, timeout=60))["event_id"]
        stream = urllib.request.urlopen(f"{call}/{event}", timeout=120).read().decode()
        assert "event: error" in stream and "not uploaded by a user" in stream, stream[:300]
