"""A report asks for nothing outside itself, however late: Chromium opens it with the page's clock in the test's
hands, and once the charts are drawn and the pictures decoded, every timer due within the next hour fires at
once; every request the page made stays inside the file. (Waiting for a quiet network, as the offline test in
test_report.py does, misses a request set off by a timer later than its quiet spell.)"""
from pathlib import Path

import pytest

from core import report
from run_fixtures import cached_run, own_copy


@pytest.mark.browser
def test_a_report_makes_no_request_outside_itself_even_late(demo_dir, tmp_path_factory, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    run = own_copy(cached_run(tmp_path_factory, demo_dir, "gap"), tmp_path / "run")  # the report is written there
    page_file = report.write_report(run)
    requests = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.clock.install()
            page.goto(Path(page_file).as_uri(), wait_until="load")
            page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)  # Plotly really drew
            page.wait_for_function("() => Array.from(document.images).every((img) => img.complete)")
            for _ in range(2):  # a timer set by a timer fires on the second jump
                page.clock.fast_forward("01:00:00")
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    assert requests, "the page made no request at all: it did not load"
    outside = [url for url in requests if not url.startswith(("file:", "data:", "about:"))]
    assert not outside, outside
