"""The classroom and stakeholder paths of issue 11 in a real browser: Debian's Chromium, driven by Playwright,
against `streamlit run` on localhost. Screenshots go to test-artifacts/browser/classroom-*.png.

(f) Every page opened by its URL as the very first visit on a freshly started server (the link a stakeholder or
a student gets) shows the app's own navigation and frame, never Streamlit's pages-directory navigation
("streamlit app", "data", ..., "common"); the Data page, the default one, is served at the root URL and at /data
(what a user types; a 'Page not found' dialog is a failure), which this test opens. A server leaves
that mode for good once any session has run the entry point, so each page gets a server of its own; the seven
start side by side to keep the test short."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from test_browser_flow import ARTIFACTS, CHROMIUM, REPO_ROOT, free_port, sync_api, wait_idle

pytestmark = pytest.mark.browser

PAGES = (  # (URL path, title): the app's own navigation, in its order
    ("data", "Data"), ("model", "Model"), ("train", "Train"), ("autoencoder", "Autoencoder"),
    ("evaluate", "Evaluate"), ("predict", "Predict"), ("experiments", "Experiments"))
PAGES_DIRECTORY_WORDS = ("streamlit app", "common")  # only Streamlit's own navigation of pages/ shows these
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def start_server(workspace, log_name: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run streamlit_app.py` on a free port with its own workspace; returns at once."""
    port = free_port()
    env = {**os.environ, "TRANSFER_STUDIO_HOME": str(workspace)}
    log = open(ARTIFACTS / log_name, "wb")
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
                                str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()  # the child holds its own copy
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen, url: str, log_name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"streamlit did not start; see {ARTIFACTS / log_name}")
        time.sleep(0.3)


def stop_servers(processes: list[subprocess.Popen]) -> None:
    """Terminate, then kill what is left after a few seconds: these servers ran no jobs, so nothing is lost."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + 3
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_name(path: str) -> str:
    return f"classroom-streamlit-{path}.log"


@pytest.fixture
def fresh_servers(tmp_path):
    """One freshly started server per page, {URL path: base URL}, none of them visited yet."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = {path: start_server(tmp_path / path, log_name(path)) for path, _ in PAGES}
    try:
        for path, (process, url) in started.items():
            wait_healthy(process, url, log_name(path))
        yield {path: url for path, (_, url) in started.items()}
    finally:
        stop_servers([process for process, _ in started.values()])


def test_every_page_as_the_first_visit_on_a_fresh_server_gets_the_app_frame(fresh_servers):
    expected = [title for _, title in PAGES]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            tabs = {}
            for path, _ in PAGES:  # open them all first: the servers render their first pages side by side
                tab = browser.new_page(viewport={"width": 1400, "height": 1000})
                tab.set_default_timeout(90_000)
                tab.goto(f"{fresh_servers[path]}/{path}")
                tabs[path] = tab
            problems = []
            for path, title in PAGES:
                tab = tabs[path]
                tab.get_by_role("heading", name=title, level=1).wait_for()
                wait_idle(tab)
                tab.screenshot(path=str(ARTIFACTS / f"classroom-f-first-visit-{title.lower()}.png"))
                links = tab.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
                names = [text.split()[-1] if text.split() else "" for text in links]  # "<icon name> <title>"
                sidebar = tab.get_by_test_id("stSidebar").inner_text().lower()
                if names != expected or any(word in sidebar for word in PAGES_DIRECTORY_WORDS):
                    problems.append(f"/{path}: navigation {links}")
                if "trains on" not in sidebar:  # the app's frame: the device, the dataset, the run
                    problems.append(f"/{path}: no app frame in the sidebar: {sidebar[:200]!r}")
                if tab.evaluate("() => location.pathname") != f"/{path}":
                    problems.append(f"/{path}: ended at {tab.url}")
                if tab.get_by_text("Page not found").count():
                    problems.append(f"/{path}: Streamlit says the page was not found")
            assert not problems, problems
        finally:
            browser.close()
