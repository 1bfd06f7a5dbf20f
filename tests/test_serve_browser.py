"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright, against a
server on loopback. It loads the page, submits a prompt, and waits for the clip to play.

The screenshot goes to the test's temporary folder; with FRAMECAST_UPDATE_SCREENSHOT=1 it replaces
docs/images/serve.png, the picture the README shows."""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytest.importorskip("gradio")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium; `make dev` does it)")

DOCS_SHOT = Path(__file__).parents[1] / "docs" / "images" / "serve.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(tmp_path):
    import uvicorn

    from framecast.serve.api import create_app
    from framecast.serve.app import ServeConfig

    app = create_app(ServeConfig(state_dir=tmp_path / "state", models=["shapes-hybrid", "shapes-diffusion"]), webapp=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.time() + 60
    while not server.started and time.time() < end:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_page_generates_and_plays_a_clip(live_server, tmp_path):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(live_server + "/", wait_until="domcontentloaded")
            page.locator("#prompt textarea").wait_for(timeout=60_000)
            page.locator("#prompt textarea").fill("a big red circle moves right and a small blue square moves left")
            page.locator("#frames input").fill("8")
            page.locator("#steps input").fill("8")
            page.locator("#switches textarea").fill("4: a big red circle moves up")  # a prompt switch mid-clip
            page.locator("#generate").click()
            page.wait_for_function("() => { const v = document.querySelector('#clip video');"
                                   " return v && !v.paused && v.currentTime > 0 && v.videoWidth > 0; }", timeout=120_000)
            assert page.locator("#status").inner_text().startswith("succeeded: 8 frames")
            shot = DOCS_SHOT if os.environ.get("FRAMECAST_UPDATE_SCREENSHOT") == "1" else tmp_path / "serve.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
