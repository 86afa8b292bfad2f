"""What every browser test shares: Debian's Chromium driven by Playwright, `streamlit run streamlit_app.py` on a
free localhost port with a workspace of its own, and the page helpers the tests use to drive the app.
Screenshots and the servers' logs go to test-artifacts/browser/.

Importing this module skips the importing test module when Chromium or Python Playwright is missing (the only
place that decides it); tests/conftest.py turns such a skip into a failure when CI is set."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Python Playwright is not installed "
                               "(pip install -r requirements-dev.txt)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerURL(str):
    """The server's base URL, which also knows the server's workspace folder."""

    workspace: Path


class Server:
    """`streamlit run streamlit_app.py` on a free port with its own workspace, started at once without waiting,
    so several can start side by side; then ``wait_healthy`` and, at the end, ``stop``. Its output goes to
    test-artifacts/browser/<log_name>. ``env`` adds to this process's environment; a None value removes one."""

    def __init__(self, workspace: Path, log_name: str, env: dict[str, str | None] | None = None):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.workspace = Path(workspace)
        self.log_name = log_name
        environment = {**os.environ, "TRANSFER_STUDIO_HOME": str(self.workspace)}
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        port = free_port()
        with open(ARTIFACTS / log_name, "wb") as log:  # the child keeps its own copy of the file
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
                 "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = ServerURL(f"http://127.0.0.1:{port}")
        self.url.workspace = self.workspace

    def wait_healthy(self, timeout: float = 90) -> ServerURL:
        """Wait until the server answers its health check; fails the test (log named) if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"streamlit did not start; see {ARTIFACTS / self.log_name}")
            time.sleep(0.3)

    def stop(self, grace: float = 20) -> None:
        stop_servers([self], grace)


def stop_servers(servers: list[Server], grace: float = 20) -> None:
    """Terminate them all, then kill what is left after ``grace`` seconds (the job manager's training
    processes run in their own sessions and end with their runs)."""
    for server in servers:
        server.process.terminate()
    deadline = time.monotonic() + grace
    for server in servers:
        try:
            server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running_server(workspace: Path, log_name: str = "streamlit.log", env: dict[str, str | None] | None = None,
                   grace: float = 20):
    """A started and healthy server for a ``with`` block (or a fixture's yield): its URL, with its workspace."""
    server = Server(workspace, log_name, env)
    try:
        yield server.wait_healthy()
    finally:
        server.stop(grace)


@contextmanager
def chromium(*extra_args: str):
    """Debian's Chromium, launched by Playwright with the usual arguments and any extra ones (a fake camera)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + list(extra_args))
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1400, height: int = 1300, timeout_ms: int = 60_000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    return page


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_idle(page, quiet_ms: int = 1500) -> None:
    """Wait until the script run that the last action started has finished: the app's script state
    (``data-test-script-state`` on stApp, which fragment runs set too) and Streamlit's running indicator
    have both said "not running" for ``quiet_ms``. The indicator alone only shows for runs longer than
    about half a second, so a quick rerun right after a long one went unseen."""
    page.wait_for_function("""(quiet) => {
        const app = document.querySelector('[data-testid="stApp"]');
        const state = app ? app.getAttribute('data-test-script-state') : 'initial';
        const busy = document.querySelector('[data-testid="stStatusWidget"] [data-testid="stStatusWidgetRunningIcon"]')
            || (state !== 'notRunning' && state !== 'compilationError');
        const now = Date.now();
        if (busy || !window.__idleSince) window.__idleSince = now;
        if (busy) return false;
        return now - window.__idleSince >= quiet;
    }""", arg=quiet_ms, timeout=120_000, polling=100)


def open_with_demo_data(page, url: str, shown: str) -> None:
    """Open the app at ``url`` (the Data page) and click **Use the demo data**, waiting for ``shown`` to say
    the data is in and for the page to settle."""
    page.goto(url)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Use the demo data").click()
    page.get_by_text(shown).wait_for()
    wait_idle(page)


def go_to(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()
    wait_idle(page)


def slider_to_start(page, label: str) -> None:
    """Move a slider (or select slider) to its first option with the keyboard, as a user can."""
    thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
    thumb.focus()
    thumb.press("Home")
    wait_idle(page)


def smallest_image_size(page, shown: str) -> None:
    """Move the Model page's image size to its start (32 px) and wait until the settings say ``shown``."""
    for attempt in range(3):  # on a busy machine a key press can land while the page still re-renders
        slider_to_start(page, "Image size")
        try:
            page.get_by_text(shown).wait_for(timeout=20_000)
            return
        except sync_api.TimeoutError:
            if attempt == 2:
                raise


def number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)
    assert box.input_value() == str(value)


def picture_png() -> bytes:
    """A demo shape as a PNG file's bytes, to upload as a picture to predict."""
    from core import demo_data
    from PIL import Image

    images, _, _ = demo_data.generate(per_class=1, size=64, seed=7)
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    return buffer.getvalue()
