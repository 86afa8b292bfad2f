"""Issue 11 (c), a read-only share link in a real browser: Debian's Chromium, driven by Playwright, against
`streamlit run` on localhost. The owner (a session the server issued, with a tiny finished run: recipe auto,
32 px, weights none, made by core.training before the first visit) makes a link on the Predict page; the
link, opened in a second browser context on a phone-sized screen, shows the model card and predicts an
uploaded picture, and shows nothing of the owner's session; after the owner revokes it, it says so.
Screenshots go to test-artifacts/browser/share-*.png."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from run_fixtures import cached_run
from test_browser_flow import ARTIFACTS, CHROMIUM, picture_png, server, sync_api, wait_idle  # noqa: F401 (server)

pytestmark = pytest.mark.browser

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PHONE = {"width": 390, "height": 844}
RUN_ID = "20260101-000000-sharedrun1"
# what a visitor must never see: the other pages, the owner's controls and downloads
OTHER_PAGES = ("Data", "Model", "Train", "Autoencoder", "Evaluate", "Predict", "Experiments")
CONTROLS = ("Start training", "Stop", "Use the demo data", "Download the model bundle", "Build the HTML report",
            "Share", "Revoke")
FRAME_WORDS = ("Trains on", "Your runs", "Start training", "Download the model bundle", "Share this model")


@pytest.fixture
def owner_run(server, demo_dir, tmp_path_factory):
    """A session the server issued, owning a finished recipe-auto run in the server's workspace (the run's
    files are links to one built by core.training for the other tests)."""
    from core import sessions

    token = sessions.issue_token(server.workspace / "sessions")
    source = Path(cached_run(tmp_path_factory, demo_dir, "auto"))
    run_dir = server.workspace / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    for item in source.iterdir():
        (run_dir / item.name).symlink_to(item)
    (run_dir / "job.json").write_text(json.dumps({"owner": token, "data": str(demo_dir), "submitted": 0}))
    return {"token": token, "run": run_dir, "classes": json.loads((run_dir / "labels.json").read_text()),
            "data": Path(demo_dir)}


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    """The whole page at its width: the app scrolls inside its own container, so the window is made as
    tall as the content for the picture (a full-page screenshot would show one screenful)."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    wait_idle(page, quiet_ms=500)
    page.screenshot(path=str(ARTIFACTS / f"share-{name}.png"))
    page.set_viewport_size(size)


def main_text(page) -> str:
    """Everything on the page a visitor can read or copy: its text, its links and the page's HTML."""
    return page.evaluate("() => document.body.innerText") + "\n" + page.content()


def test_a_share_link_shows_the_model_alone_and_a_revoked_one_says_so(server, owner_run, browser, tmp_path):
    from core import shares

    # a link opened as the very first visit on a fresh server gets the preview alone as well (Streamlit
    # still serves pages/ the old pages-directory way then, with its own navigation of the files)
    early_token, early_link = shares.create(RUN_ID, owner_run["token"])
    first = browser.new_page(viewport=PHONE)
    first.set_default_timeout(90_000)
    first.goto(f"{server}/?share={early_token}")
    first.get_by_role("heading", name="Shared model", level=1).wait_for()
    first.get_by_role("heading", name="Try it").wait_for()
    wait_idle(first)
    assert first.get_by_test_id("stSidebarNav").count() == 0 and first.get_by_text("Page not found").count() == 0
    first.close()

    owner = browser.new_page(viewport={"width": 1400, "height": 1300})
    owner.set_default_timeout(90_000)
    owner.goto(f"{server}/predict?session={owner_run['token']}&run={RUN_ID}")
    owner.get_by_role("heading", name="Predict", level=1).wait_for()
    owner.get_by_role("heading", name="Share this model").wait_for()
    wait_idle(owner)
    owner.get_by_role("button", name="Share", exact=True).click()
    code = owner.get_by_test_id("stCode").filter(has_text="?share=")
    code.wait_for()
    wait_idle(owner)
    link = code.inner_text().strip()
    assert re.fullmatch(re.escape(server) + r"/\?share=[A-Za-z0-9_-]{32,}", link), link
    assert owner_run["token"] not in link
    panel = owner.get_by_role("heading", name="Share this model")
    panel.scroll_into_view_if_needed()
    owner.screenshot(path=str(ARTIFACTS / "share-1-owner-link.png"))

    # the link in a second browser context (no cookies, no storage of the owner's), on a phone
    visitor_context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    visitor = visitor_context.new_page()
    visitor.set_default_timeout(90_000)
    visitor.goto(link)
    visitor.get_by_role("heading", name="Shared model", level=1).wait_for()
    visitor.locator('[data-testid="stPlotlyChart"] .barlayer').first.wait_for()  # pictures per class
    visitor.locator('[data-testid="stPlotlyChart"] .heatmaplayer').first.wait_for()  # the confusion matrix
    wait_idle(visitor)
    shot(visitor, "2-preview-phone")
    text = main_text(visitor)
    for name in owner_run["classes"]:
        visitor.get_by_text(name, exact=False).first.wait_for()
    visitor.get_by_text("Cross-validated accuracy").first.wait_for()
    assert_nothing_of_the_owner(visitor, text, owner_run, server.workspace)
    # fits a phone: nothing wider than the screen
    width = visitor.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width

    picture = tmp_path / "my-shape.png"
    picture.write_bytes(picture_png())
    visitor.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(picture))
    visitor.get_by_text("sure)").first.wait_for(timeout=120_000)
    visitor.locator('[data-testid="stPlotlyChart"] .barlayer').nth(1).wait_for()  # the picture's bars
    wait_idle(visitor)
    verdict = visitor.get_by_text("sure)").first.inner_text()
    assert any(name in verdict for name in owner_run["classes"]), verdict
    shot(visitor, "3-predicted-phone")
    assert_nothing_of_the_owner(visitor, main_text(visitor), owner_run, server.workspace)

    # the owner revokes it (the newest of the two links is listed first); the page says so at its next run
    owner.get_by_role("button", name="Revoke").first.click()
    owner.get_by_text("revoked", exact=False).first.wait_for()
    wait_idle(owner)
    visitor.reload()
    visitor.get_by_role("heading", name="Shared model", level=1).wait_for()
    visitor.get_by_text("This share link was revoked").wait_for()
    wait_idle(visitor)
    assert visitor.get_by_test_id("stFileUploader").count() == 0
    assert "Traceback" not in main_text(visitor)
    shot(visitor, "4-revoked-phone")

    unknown = visitor_context.new_page()
    unknown.goto(link[:-4] + ("aaaa" if not link.endswith("aaaa") else "bbbb"))
    unknown.get_by_text("This share link is not known on this server").wait_for()
    visitor_context.close()


def assert_nothing_of_the_owner(page, text: str, owner_run: dict, workspace: Path) -> None:
    """The preview names no session, run, path or dataset and offers no other page and no control."""
    for secret in (owner_run["token"], RUN_ID, str(workspace), str(owner_run["data"]), owner_run["data"].name,
                   "session="):
        assert secret not in text, secret
    assert "session" not in page.url and "run=" not in page.url
    assert page.get_by_test_id("stSidebar").count() == 0 and page.get_by_test_id("stSidebarNav").count() == 0
    visible = page.evaluate("() => document.body.innerText")
    for name in OTHER_PAGES:
        assert page.get_by_role("link", name=name, exact=True).count() == 0, name
        assert not re.search(rf"(?m)^{name}$", visible), name
    for label in CONTROLS:
        assert page.get_by_role("button", name=label, exact=True).count() == 0, label
    for words in FRAME_WORDS:
        assert words not in visible, words
    assert not page.locator('a[href*="/data"], a[href*="/train"], a[href*="/predict"]').count()
