"""The classroom and stakeholder paths of issue 11 in a real browser: Debian's Chromium, driven by Playwright,
against `streamlit run` on localhost (tests/browser/streamlit_server.py). Screenshots go to test-artifacts/browser/
(weights-*, share-*, classroom-d-*, classroom-e-*, classroom-f-*).

(a) A fresh session sees before Start that the ImageNet weights cannot be had, chooses random weights on the
    Train page itself, and trains a model without leaving that page.
(b) The Model page's settings and an uploaded weights file survive a reload, and a link to the Train page
    opened in another tab finds them.
(c) A read-only share link: the owner (a session the server issued, with a tiny finished run: recipe auto,
    32 px, weights none, made by core.training before the first visit) makes a link on the Predict page; the
    link, opened in a second browser context on a phone-sized screen, shows the model card and predicts an
    uploaded picture, and shows nothing of the owner's session; after the owner revokes it, it says so.
(d) Classes as cards, with Chromium's fake camera (it films a moving test pattern): on the demo's cards a
    teacher renames a class, deletes a picture, uploads into a class (one bad file skipped, the good one
    kept), takes photos into a class one click each, then a burst of three with one click; the Train page then
    trains on that edited dataset. No server path or session token shows on the page.
(e) The Train page's pickers follow a new run: in (a)'s session, a second run started from the Train page is
    what "Watch run" shows and is in "Overlay the curves of", beside the first run, which is still offered.
(f) Every page opened by its URL as the very first visit on a freshly started server (the link a stakeholder
    or a student gets) shows the app's own navigation and frame, never Streamlit's pages-directory navigation
    ("streamlit app", "data", ..., "common"); the Data page, the default one, is served at the root URL and at
    /data (what a user types; a 'Page not found' dialog is a failure), which this test opens. A server leaves
    that mode for good once any session has run the entry point, so each page gets a server of its own; the
    seven start side by side to keep the test short.

(a), (b) and (e) run on one server with an empty Keras cache (HOME is a fresh folder) that cannot reach the
internet: a sitecustomize on its PYTHONPATH refuses name lookups of anything but this machine (the network
alone is mocked; the app's own probe and Keras's download run as they would offline). (c) and (f) need
servers no one has visited yet, and (d) a server with smaller demo data, so they start their own."""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from run_fixtures import cached_run
from streamlit_server import ARTIFACTS, Server, chromium, go_to, new_page, number, open_with_demo_data, picture_png, \
    running_server, shot, smallest_image_size, stop_servers, sync_api, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    with chromium() as launched:
        yield launched


# (a), (b), (e): the weights paths on an offline server

OFFLINE_SITECUSTOMIZE = '''\
import socket
_lookup = socket.getaddrinfo
def _offline(host, *args, **kwargs):
    if host not in ("localhost", "127.0.0.1", "::1", None):
        raise socket.gaierror(-2, "Name or service not known")
    return _lookup(host, *args, **kwargs)
socket.getaddrinfo = _offline
'''
LEAKS = ("Errno", "googleapis", "/.keras", "vgg16_weights_tf_dim_ordering")  # none may reach the screen


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory):
    """`streamlit run` with its own workspace, an empty HOME (no cached weights), no server weights file,
    and no internet; small demo data (8 pictures a class at 32 px)."""
    root = tmp_path_factory.mktemp("weights-flow")
    (root / "home").mkdir()
    (root / "offline").mkdir()
    (root / "offline" / "sitecustomize.py").write_text(OFFLINE_SITECUSTOMIZE)
    env = {"HOME": str(root / "home"), "TRANSFER_STUDIO_DEMO_PER_CLASS": "8", "TRANSFER_STUDIO_DEMO_SIZE": "32",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "offline"), os.environ.get("PYTHONPATH")])),
           "TRANSFER_STUDIO_WEIGHTS": None, "TRANSFER_STUDIO_WARM_WORKERS": None}  # a server's default: warm
    with running_server(root / "workspace", "weights-streamlit.log", env) as url:
        yield url


def assert_no_leak(page) -> None:
    text = page.locator("body").inner_text()
    for leak in LEAKS:
        assert leak not in text, leak


def weights_radio(page):
    return page.get_by_test_id("stRadio").filter(has_text="Start from")


def choose(page, radio, label: str) -> None:
    """Click a radio option until the server has it: a click that lands while the page is redrawn after the
    previous change can be lost (seen once in CI on a busy machine), as a user would click again."""
    option = radio.get_by_role("radio", name=label)
    for _ in range(3):
        radio.get_by_text(label, exact=True).click()
        wait_idle(page)
        if option.is_checked():
            return
    sync_api.expect(option).to_be_checked()


def test_offline_a_fresh_session_sees_the_weights_before_start_and_trains_on_the_train_page(offline_server, browser):
    page = new_page(browser)
    try:
        open_with_demo_data(page, offline_server, "32 pictures in 4 classes")

        go_to(page, "Model")  # the default choice, ImageNet, says before Start that it cannot be had here
        page.get_by_text("The ImageNet weights are not on this server, and it cannot download them").wait_for()
        page.get_by_text("These settings are valid, but a run would fail").wait_for()
        smallest_image_size(page, ", 32 px")
        assert_no_leak(page)
        shot(page, "weights-1-model-offline")

        go_to(page, "Train")
        warning = page.get_by_text("Choose here how to start instead")
        warning.wait_for()
        start = page.get_by_role("button", name="Start training")
        # the notice and its choices stand above Start
        assert warning.bounding_box()["y"] < start.bounding_box()["y"]
        assert_no_leak(page)
        shot(page, "weights-2-train-before-start")
        page.get_by_role("button", name="Start from random weights").click()
        page.get_by_text("Weights: Random start").wait_for()
        page.get_by_text("weights none").first.wait_for()  # the settings line above Start follows
        wait_idle(page)
        start.click()
        page.wait_for_function("() => location.search.includes('run=')")
        page.get_by_text("See how it does: Evaluate").wait_for(timeout=240_000)
        page.get_by_role("heading", name="Train", level=1).wait_for()  # never left the page
        assert "cannot download" not in page.locator("body").inner_text()
        assert_no_leak(page)
        wait_idle(page)
        shot(page, "weights-3-train-finished")
    except Exception:
        shot(page, "weights-failure-a")
        raise
    the_pickers_follow_a_new_run(page, start)  # (e), in this session with its one run: the cheapest place


RUN_SHOWN = '[data-testid="stMain"] [data-testid="stMarkdown"] p:has(> strong:text-is("Run")) > code'


def run_shown(page) -> str:
    """The id of the run the Train page's live view shows: it prints "**Run** `<id>`"."""
    return page.locator(RUN_SHOWN).inner_text().strip()


def url_run(page) -> str | None:
    return page.evaluate("() => new URLSearchParams(location.search).get('run')")


def the_pickers_follow_a_new_run(page, start) -> None:
    """(e) After a first run, a second one started from the Train page with the same settings is what the
    "Watch run" picker shows and is in "Overlay the curves of", and the first run is still offered in both."""
    try:
        first = run_shown(page)
        assert first and url_run(page) == first, (first, page.url)
        start.click()
        page.wait_for_function("(first) => { const run = new URLSearchParams(location.search).get('run');"
                               " return run && run !== first; }", arg=first)
        second = url_run(page)
        sync_api.expect(page.locator(RUN_SHOWN)).to_have_text(second)
        # the runs table (its cells stand behind the grid's canvas) says the new run finished; the first run's
        # "Evaluate" link may still be on the page for a moment, so that alone would not tell
        table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame")
        newest = table.locator('tr[aria-rowindex="2"] td')
        sync_api.expect(newest.nth(0)).to_have_text(second, timeout=240_000)
        sync_api.expect(newest.nth(1)).to_have_text("Finished", timeout=240_000)
        page.get_by_text("See how it does: Evaluate").wait_for()
        sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=30_000)
        wait_idle(page)
        assert run_shown(page) == second
        # the runs table lists both, and the pickers below it name the new run, the first still there to pick
        listed = table.locator('td[aria-colindex="1"]')  # the run column
        sync_api.expect(listed).to_have_count(2)
        assert listed.all_inner_texts() == [second, first], listed.all_inner_texts()  # newest first
        watch = page.get_by_test_id("stSelectbox").filter(has_text="Watch run")
        overlay = page.get_by_test_id("stMultiSelect").filter(has_text="Overlay the curves of")
        watch.scroll_into_view_if_needed()
        sync_api.expect(watch.get_by_role("combobox")).to_have_value(second)
        sync_api.expect(overlay.locator("[data-tag]")).to_have_count(2)
        picked = overlay.locator("[data-tag]").evaluate_all("(tags) => tags.map((tag) => tag.textContent.trim())")
        assert picked == [second, first], picked  # the new run, and the run before to compare it with
        watch.get_by_role("button", name="Open").click()
        offered = page.get_by_role("listbox").get_by_role("option")
        sync_api.expect(offered).to_have_count(2)
        assert offered.all_inner_texts() == [second, first], offered.all_inner_texts()  # newest first
        shot(page, "classroom-e-pickers-follow")  # with the list of runs open under "Watch run"
        page.keyboard.press("Escape")
    except Exception:
        shot(page, "classroom-e-failure")
        raise


def test_a_reload_keeps_the_settings_and_the_uploaded_weights(offline_server, browser, pretrained_weights):
    name = Path(pretrained_weights).name
    page = new_page(browser)
    try:
        page.goto(offline_server)
        page.get_by_role("heading", name="Data", level=1).wait_for()
        wait_idle(page)
        go_to(page, "Model")
        choose(page, page.get_by_test_id("stRadio").filter(has_text="Automatic (recommended)"), "Manual")
        page.get_by_test_id("stSlider").filter(has_text="Frozen blocks").wait_for()
        wait_idle(page)
        choose(page, weights_radio(page), "A weights file")
        page.get_by_text("You chose a weights file, but none is uploaded yet").wait_for()
        wait_idle(page)
        page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(pretrained_weights)
        page.get_by_text(f"Your uploaded weights file {name} is ready").wait_for(timeout=120_000)
        wait_idle(page)
        smallest_image_size(page, ", 32 px")
        number(page, "Epochs", 3)
        page.get_by_text("weights uploaded file").first.wait_for()
        page.get_by_text("3 epochs").first.wait_for()
        shot(page, "weights-4-model-before-reload")

        page.reload()
        page.get_by_role("heading", name="Model", level=1).wait_for()
        wait_idle(page)
        page.get_by_text(f"Using your uploaded file {name}").wait_for()
        summary = page.get_by_text("These settings are valid")
        for words in ("Manual: VGG16, weights uploaded file", "3 epochs", "32 px"):
            sync_api.expect(summary).to_contain_text(words)
        assert weights_radio(page).get_by_role("radio", name="A weights file").is_checked()
        assert page.get_by_test_id("stRadio").filter(has_text="Automatic (recommended)").get_by_role(
            "radio", name="Manual").is_checked()
        assert_no_leak(page)
        shot(page, "weights-5-model-after-reload")

        token = page.evaluate("() => new URLSearchParams(location.search).get('session')")
        link = new_page(browser)  # the Train page's link, opened first in a new tab
        link.goto(f"{offline_server}/train?session={token}")
        link.get_by_role("heading", name="Train", level=1).wait_for()
        link.get_by_text(f"Weights: Your uploaded weights file {name} is ready").wait_for()
        link.get_by_text("weights uploaded file").first.wait_for()
        link.get_by_text("3 epochs").first.wait_for()
        wait_idle(link)
        shot(link, "weights-6-train-deep-link")
    except Exception:
        shot(page, "weights-failure-b")
        raise


# (c): a read-only share link

PHONE = {"width": 390, "height": 844}
RUN_ID = "20260101-000000-sharedrun1"
# what a visitor must never see: the other pages, the owner's controls and downloads
OTHER_PAGES = ("Data", "Model", "Train", "Autoencoder", "Evaluate", "Predict", "Experiments")
CONTROLS = ("Start training", "Stop", "Use the demo data", "Download the model bundle", "Build the HTML report",
            "Share", "Revoke")
FRAME_WORDS = ("Trains on", "Your runs", "Start training", "Download the model bundle", "Share this model")


@pytest.fixture
def server(tmp_path, demo_dir, tmp_path_factory):
    """A server no one has visited yet (a share link is its first visit); the owner's run is trained by
    core.training in this process while the server starts."""
    starting = Server(tmp_path / "workspace", "share-streamlit.log")
    try:
        cached_run(tmp_path_factory, demo_dir, "auto")  # built once a test process; owner_run links to it
        yield starting.wait_healthy()
    finally:
        starting.stop()


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


def share_shot(page, name: str) -> None:
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
    share_shot(visitor, "2-preview-phone")
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
    share_shot(visitor, "3-predicted-phone")
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
    share_shot(visitor, "4-revoked-phone")

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


# (d): classes as cards

CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
LOG = "classroom-d-streamlit.log"


@pytest.fixture
def small_server(tmp_path):
    """A server whose demo data is 4 pictures a class at 32 px; yields (URL, workspace)."""
    env = {"TRANSFER_STUDIO_DEMO_PER_CLASS": "4", "TRANSFER_STUDIO_DEMO_SIZE": "32"}
    with running_server(tmp_path / "workspace", LOG, env, grace=3) as url:
        yield url, url.workspace


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


def cards_shot(page, name: str, locator=None) -> None:
    (locator or page).screenshot(path=str(ARTIFACTS / f"classroom-d-{name}.png"))


def test_classes_as_cards_rename_delete_a_picture_upload_and_camera(small_server):
    url, workspace = small_server
    with chromium(*CAMERA_ARGS) as browser:
        page = new_page(browser)
        try:
            open_with_demo_data(page, url, "circle · 4 pictures")

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
            cards_shot(page, "1-renamed", card(page, 0))

            # see the pictures of "square" and delete one
            card(page, 1).get_by_text("See all its pictures, delete some").click()
            wait_idle(page)
            card(page, 1).get_by_role("button", name="Delete", exact=True).first.click()
            page.get_by_text("square · 3 pictures").wait_for()
            wait_idle(page)
            assert card(page, 1).get_by_role("button", name="Delete", exact=True).count() == 3
            cards_shot(page, "2-picture-deleted", card(page, 1))

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
            cards_shot(page, "3-uploaded", card(page, 2))

            # the camera into "triangle": one click a photo, each added at once
            card(page, 3).get_by_role("button", name="Camera").click()
            take = card(page, 3).get_by_role("button", name="Take Photo")
            for count in (5, 6):
                camera_ready(page, card(page, 3))
                take.click()
                card(page, 3).get_by_text(f"triangle · {count} pictures").wait_for()
                wait_idle(page, 500)
            take.scroll_into_view_if_needed()
            cards_shot(page, "4-camera")  # the whole view: an element shot of a live camera comes out distorted

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
            cards_shot(page, "5-burst")

            text = page.locator("body").inner_text()
            token = page.evaluate("() => new URLSearchParams(location.search).get('session')")
            assert token and token not in text and str(workspace) not in text and "/datasets/" not in text

            # the Train page trains on the edited dataset
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
            page.get_by_text("Demo shapes (4 per class), 21 pictures, 4 classes").wait_for()
            cards_shot(page, "6-train-uses-it")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "classroom-d-failure.png"), full_page=True)
            raise


# (f): every page as the first visit on a fresh server

PAGES = (  # (URL path, title): the app's own navigation, in its order
    ("data", "Data"), ("model", "Model"), ("train", "Train"), ("autoencoder", "Autoencoder"),
    ("evaluate", "Evaluate"), ("predict", "Predict"), ("experiments", "Experiments"))
PAGES_DIRECTORY_WORDS = ("streamlit app", "common")  # only Streamlit's own navigation of pages/ shows these


def log_name(path: str) -> str:
    return f"classroom-streamlit-{path}.log"


@pytest.fixture
def fresh_servers(tmp_path):
    """One freshly started server per page, {URL path: base URL}, none of them visited yet. They start side
    by side and are stopped at the end with little grace: they ran no jobs, so nothing is lost."""
    started = {path: Server(tmp_path / path, log_name(path)) for path, _ in PAGES}
    try:
        yield {path: server.wait_healthy() for path, server in started.items()}
    finally:
        stop_servers(list(started.values()), grace=3)


def test_every_page_as_the_first_visit_on_a_fresh_server_gets_the_app_frame(fresh_servers):
    expected = [title for _, title in PAGES]
    with chromium() as browser:
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
