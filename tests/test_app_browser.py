"""The app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Loads the page with the bundled models, uploads a photo, clicks Translate and waits for the
before/after view and the download; a non-image upload must show a readable message. Saves a
screenshot (to ``I2I_APP_SCREENSHOT`` when set, e.g. docs/images/app_screenshot.png).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("I2I_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
MAX_MB, MAX_MP = 1.0, 0.5
EXAMPLE = Path(__file__).resolve().parents[1] / "apps" / "app" / "examples" / "photo_to_ink__cat.jpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page_url():
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (apt-get install chromium, or set I2I_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    from apps.app.imaging import Limits
    from apps.app.server import ServerOptions, launch
    from apps.app.service import InferenceSettings

    port = free_port()
    # small limits, so the oversize messages can be shown with small files
    limits = Limits(max_upload_mb=MAX_MB, max_megapixels=MAX_MP)
    blocks = launch(ServerOptions(port=port, limits=limits, inference=InferenceSettings(device="cpu")), block=False)
    yield f"http://127.0.0.1:{port}/"
    blocks.close()


@pytest.fixture()
def page(page_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(page_url, wait_until="domcontentloaded")
        page.wait_for_selector("#i2i-translate", timeout=60_000)
        yield page
        browser.close()


def test_upload_translate_and_see_the_result(page, tmp_path):
    page.locator("#i2i-input input[type=file]").set_input_files(str(EXAMPLE))
    page.wait_for_selector("#i2i-input img", timeout=30_000)
    page.click("#i2i-translate")
    page.wait_for_selector("#i2i-compare img", timeout=180_000)
    page.wait_for_selector("#i2i-download a", timeout=60_000)
    assert "451×300" in page.locator("#i2i-summary").inner_text()
    images = page.locator("#i2i-compare img")
    assert images.count() >= 2  # before and after, on top of each other
    assert images.first.evaluate("img => img.complete && img.naturalWidth > 0")
    shot = Path(os.environ.get("I2I_APP_SCREENSHOT") or tmp_path / "app.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("content", [b"this is a text file with an image name", b"%!PS-Adobe-3.0 EPSF-3.0\n"])
def test_a_non_image_upload_shows_a_message(page, tmp_path, content):
    fake = tmp_path / "holiday.png"  # text, or PostScript that Pillow would hand to Ghostscript
    fake.write_bytes(content)
    page.locator("#i2i-input input[type=file]").set_input_files(str(fake))
    page.click("#i2i-translate")
    message = page.get_by_text("holiday.png is not an image in an accepted format (PNG, JPEG", exact=False)
    message.first.wait_for(timeout=60_000)
    assert message.first.is_visible()


def test_oversized_uploads_show_a_message(page, tmp_path):
    import numpy as np
    from PIL import Image

    many_pixels = tmp_path / "wide.png"
    Image.fromarray(np.full((600, 1000, 3), 90, np.uint8)).save(many_pixels)  # 0.6 MP, a few KB
    page.locator("#i2i-input input[type=file]").set_input_files(str(many_pixels))
    page.wait_for_selector("#i2i-input img", timeout=30_000)
    page.click("#i2i-translate")
    message = page.get_by_text("accepts up to 0.5 MP", exact=False)
    message.first.wait_for(timeout=60_000)

    heavy = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(heavy)
    assert heavy.stat().st_size > MAX_MB * 2**20
    page.locator("#i2i-input input[type=file]").set_input_files(str(heavy))
    refused = page.get_by_text("exceed the maximum allowed size", exact=False)  # Gradio refuses it in the page
    refused.first.wait_for(timeout=60_000)
