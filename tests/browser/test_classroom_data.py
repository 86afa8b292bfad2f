"""Issue 11 (d), classes as cards, in a real browser: Debian's Chromium (with its fake camera, which films a
moving test pattern) driven by Playwright against `streamlit run` on localhost. On the demo's cards a teacher
renames a class, deletes a picture, uploads into a class (one bad file skipped, the good one kept), takes
photos into a class one click each, then a burst of three with one click; the Train page then trains on that
edited dataset. No server path or session token shows on the page. Screenshots go to
test-artifacts/browser/classroom-d-*.png."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from test_browser_flow import ARTIFACTS, CHROMIUM, sync_api, wait_idle
from test_classroom import BROWSER_ARGS, start_server, stop_servers, wait_healthy

pytestmark = pytest.mark.browser

CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
LOG = "classroom-d-streamlit.log"


@pytest.fixture
def small_server(tmp_path, monkeypatch):
    """A server whose demo data is 4 pictures a class at 32 px; yields (URL, workspace)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_PER_CLASS", "4")
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_SIZE", "32")
    process, url = start_server(tmp_path / "workspace", LOG)
    try:
        wait_healthy(process, url, LOG)
        yield url, tmp_path / "workspace"
    finally:
        stop_servers([process])


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 48, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def card(page, index: int):
    return page.locator(f".st-key-class_card_{index}")


def camera_ready(page, where) -> None:
    """Wait until the camera in ``where`` films (a click on Take Photo before that takes nothing)."""
    video = where.locator("video").first
    video.wait_for()
    page.wait_for_function("(video) => video.readyState >= 2 && video.videoWidth > 0", arg=video.element_handle())


def shot(page, name: str, locator=None) -> None:
    (locator or page).screenshot(path=str(ARTIFACTS / f"classroom-d-{name}.png"))


def test_classes_as_cards_rename_delete_a_picture_upload_and_camera(small_server):
    url, workspace = small_server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + CAMERA_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.get_by_role("heading", name="Data", level=1).wait_for()
            wait_idle(page)
            page.get_by_role("button", name="Use the demo data").click()
            page.get_by_text("circle · 4 pictures").wait_for()
            wait_idle(page)

            # rename "circle" to "round" from its card's Rename popover
            card(page, 0).get_by_role("button", name="Rename").click()
            popover = page.get_by_test_id("stPopoverBody")
            box = popover.get_by_label("New name")
            box.fill("round")
            box.press("Enter")
            wait_idle(page)
            popover.get_by_role("button", name="Rename").click()
            page.get_by_text("round · 4 pictures").wait_for()
            page.get_by_text("Renamed circle to round.").wait_for()
            wait_idle(page)
            shot(page, "1-renamed", card(page, 0))

            # see the pictures of "square" and delete one
            card(page, 1).get_by_text("See all its pictures, delete some").click()
            wait_idle(page)
            card(page, 1).get_by_role("button", name="Delete", exact=True).first.click()
            page.get_by_text("square · 3 pictures").wait_for()
            wait_idle(page)
            assert card(page, 1).get_by_role("button", name="Delete", exact=True).count() == 3
            shot(page, "2-picture-deleted", card(page, 1))

            # upload into "star": the picture is added, the text file skipped with the reason; the green
            # "Renamed" line of before is gone
            page.keyboard.press("Escape")
            card(page, 2).get_by_role("button", name="Add pictures").click()
            popover = page.get_by_test_id("stPopoverBody")
            popover.locator("input[type=file]").set_input_files([
                {"name": "yellow.png", "mimeType": "image/png", "buffer": png((230, 220, 0))},
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"}])
            wait_idle(page)
            popover.get_by_role("button", name="Add to star").click()
            page.get_by_text("star · 5 pictures").wait_for()
            wait_idle(page)
            page.keyboard.press("Escape")
            assert "Added 1 picture to star by upload. 1 file was skipped" in card(page, 2).inner_text()
            assert page.get_by_text("Renamed circle to round.").count() == 0
            shot(page, "3-uploaded", card(page, 2))

            # the camera into "triangle": one click a photo, each added at once
            card(page, 3).get_by_role("button", name="Camera").click()
            take = card(page, 3).get_by_role("button", name="Take Photo")
            for count in (5, 6):
                camera_ready(page, card(page, 3))
                take.click()
                card(page, 3).get_by_text(f"triangle · {count} pictures").wait_for()
                wait_idle(page, 500)
            take.scroll_into_view_if_needed()
            shot(page, "4-camera")  # the whole view: an element shot of a live camera comes out distorted

            # a burst: one click, three photos, all into the class
            card(page, 3).get_by_text("A burst", exact=True).click()
            wait_idle(page)
            slider = card(page, 3).get_by_role("slider")
            slider.focus()
            slider.press("Home")  # 3 photos, the smallest burst
            burst = card(page, 3).get_by_role("button", name="Take 3 photos")
            burst.wait_for()
            card(page, 3).get_by_text("Ready", exact=True).wait_for()  # the camera is open
            burst.click()
            card(page, 3).get_by_text("triangle · 9 pictures").wait_for()
            card(page, 3).get_by_text("Added 3 pictures to triangle with the camera.").wait_for()
            wait_idle(page, 800)
            burst.scroll_into_view_if_needed()
            shot(page, "5-burst")

            text = page.locator("body").inner_text()
            token = page.evaluate("() => new URLSearchParams(location.search).get('session')")
            assert token and token not in text and str(workspace) not in text and "/datasets/" not in text

            # the Train page trains on the edited dataset
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
            page.get_by_text("Demo shapes (4 per class), 21 pictures, 4 classes").wait_for()
            shot(page, "6-train-uses-it")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "classroom-d-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
