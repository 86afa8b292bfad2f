"""A new user's path in a real browser: Debian's Chromium, driven by Playwright, against
`streamlit run` on localhost. Demo data -> 32 px, weights none, 2 epochs -> start -> the curves
appear and move -> predict a picture -> probability bars. Screenshots go to test-artifacts/browser/."""
from __future__ import annotations

import time

import pytest

from streamlit_server import ARTIFACTS, chromium, go_to, new_page, number, open_with_demo_data, picture_png, \
    running_server, shot, slider_to_start, smallest_image_size, sync_api, wait_idle

pytestmark = pytest.mark.browser

DEMO = {"TRANSFER_STUDIO_DEMO_PER_CLASS": "30", "TRANSFER_STUDIO_DEMO_SIZE": "32"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run streamlit_app.py` with its own workspace and small demo data; its log is kept. One server
    for the tests here that need none fresh: each works in a session of its own (a new browser page is a new
    session, which sees its own datasets and runs only) and waits for its runs to end. It trains in warm
    workers, as a server does by default (tests/conftest.py turns them off for the in-process tests)."""
    with running_server(tmp_path_factory.mktemp("flow") / "workspace", "streamlit.log",
                        {**DEMO, "TRANSFER_STUDIO_WARM_WORKERS": None}) as url:
        yield url


@pytest.fixture
def fresh_server(tmp_path):
    """A server no one has visited yet (for what only the first visit after a start does)."""
    with running_server(tmp_path / "workspace", "streamlit-fresh.log", DEMO) as url:
        yield url


@pytest.fixture
def page():
    with chromium() as browser:
        context = new_page(browser)
        yield context
        if not getattr(context, "passed", False):
            shot(context, "failure")  # what the user saw when the test failed


def curve_signature(page) -> str:
    """What the curves chart draws right now: the path data of every line (changes as points arrive)."""
    return page.evaluate("""() => {
        const chart = document.querySelector('[data-testid="stPlotlyChart"]');
        if (!chart) return '';
        return Array.from(chart.querySelectorAll('.scatterlayer path.js-line')).map(p => p.getAttribute('d')).join('|');
    }""")


def test_from_nothing_to_a_prediction(page, server, tmp_path):
    started = time.monotonic()
    page.goto(server)
    page.get_by_role("heading", name="Data", level=1).wait_for()
    wait_idle(page)
    assert "session=" in page.url

    page.get_by_role("button", name="Use the demo data").click()
    page.get_by_text("120 pictures in 4 classes").wait_for()
    page.locator('[data-testid="stPlotlyChart"] .barlayer').first.wait_for()  # the class counts
    wait_idle(page)
    shot(page, "1-data")

    go_to(page, "Model")
    recipe = page.get_by_test_id("stRadio").filter(has_text="Automatic (recommended)")
    recipe.get_by_text("Manual", exact=True).click()
    page.get_by_test_id("stSlider").filter(has_text="Frozen blocks").wait_for()
    wait_idle(page)
    page.get_by_test_id("stRadio").filter(has_text="Start from").get_by_text("None (random start)").click()
    wait_idle(page)
    slider_to_start(page, "Image size")
    page.get_by_text(", 32 px").wait_for()  # the server has it (a slider commits a moment later)
    slider_to_start(page, "Frozen blocks")  # train every block: slower, so the curves visibly move
    page.get_by_text("weights none, 0 of 5 blocks frozen").wait_for()
    number(page, "Epochs", 2)
    number(page, "Batch size", 8)
    page.get_by_text("These settings are valid").wait_for()
    page.get_by_text("2 epochs, batch 8, 32 px").wait_for()
    shot(page, "2-model")

    go_to(page, "Train")
    page.get_by_text("weights none, 0 of 5 blocks frozen").wait_for()
    page.get_by_text("2 epochs, batch 8, 32 px").wait_for()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function("() => location.search.includes('run=')")
    # the curves appear, then change while it trains
    page.wait_for_function("""() => {
        const chart = document.querySelector('[data-testid="stPlotlyChart"]');
        return chart && chart.querySelector('.scatterlayer path.js-line');
    }""", timeout=180_000)
    first = curve_signature(page)
    shot(page, "3-train-first-curve")
    page.wait_for_function(f"""() => {{
        const chart = document.querySelector('[data-testid="stPlotlyChart"]');
        const now = Array.from(chart.querySelectorAll('.scatterlayer path.js-line')).map(p => p.getAttribute('d')).join('|');
        return now !== {first!r};
    }}""", timeout=120_000)
    page.wait_for_timeout(1500)
    second = curve_signature(page)
    shot(page, "4-train-curve-moved")
    assert second != first
    page.get_by_text("Finished", exact=False).first.wait_for(timeout=240_000)
    # the whole page follows the new state: the runs table, the sidebar and the Stop button
    page.get_by_test_id("stSidebar").get_by_text("Finished", exact=False).wait_for(timeout=30_000)
    # the sidebar is drawn before the page body in the same run: wait for the body's disabled Stop too
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=30_000)
    page.get_by_text("See how it does: Evaluate").wait_for()
    page.get_by_role("heading", name="Your runs").wait_for()
    wait_idle(page)
    shot(page, "5-train-finished")
    trained = time.monotonic() - started

    # a reload keeps the session and re-attaches to the run
    page.reload()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    page.get_by_text("Finished", exact=False).first.wait_for()

    go_to(page, "Predict")
    picture = tmp_path / "shape.png"
    picture.write_bytes(picture_png())
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(picture))
    page.get_by_text("sure)").first.wait_for(timeout=120_000)
    page.locator('[data-testid="stPlotlyChart"] .barlayer').first.wait_for()
    wait_idle(page)
    shot(page, "6-predict")
    page.passed = True
    timing = f"from nothing to a trained model: {trained:.0f} s; to a prediction: {time.monotonic() - started:.0f} s"
    print(timing)
    (ARTIFACTS / "timing.txt").write_text(timing + "\n")


# (radio label, screenshot name, models trained in the quick plan on 24 training images a class, charts).
# Data-efficiency (10 models, over a minute here) is left to tests/test_experiments.py, which runs it and
# builds its chart: its page and chart code are the ones these two exercise, and the suite has 20 minutes.
EXPERIMENTS = (
    ("How many blocks to freeze", "freeze-depth", 3, 1),
    ("Transfer against training from scratch", "transfer-vs-scratch", 4, 2),
)


def test_the_experiment_charts_render(page, server):
    """Freeze-depth, then transfer-vs-scratch, started from the Experiments page (quick, 1 epoch, 32 px,
    weights none so it runs offline), fill in their rows and draw their charts, and the second shows a
    list to pick which to see; screenshots 7-experiment-*.png."""
    open_with_demo_data(page, server, "120 pictures in 4 classes")
    go_to(page, "Model")
    page.get_by_test_id("stRadio").filter(has_text="Start from").get_by_text("None (random start)").click()
    wait_idle(page)
    page.get_by_text("weights none").first.wait_for()
    smallest_image_size(page, ", 32 px")

    go_to(page, "Experiments")
    for label, name, models_trained, charts in EXPERIMENTS:
        page.get_by_test_id("stRadio").filter(has_text="Experiment").get_by_text(label).click()
        wait_idle(page)
        number(page, "Epochs per run", 1)
        page.get_by_text(f"{models_trained} models to train").wait_for()
        page.get_by_role("button", name="Start the experiment").click()
        page.get_by_role("button", name="Stop the experiment").wait_for(timeout=60_000)
        page.get_by_text(f"Finished: {models_trained} models trained.").wait_for(timeout=400_000)
        # then the whole page follows: the start button comes back for the next experiment
        sync_api.expect(page.get_by_role("button", name="Start the experiment")).to_be_enabled(timeout=30_000)
        wait_idle(page)
        drawn = page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"] .main-svg')
        page.wait_for_function("(n) => document.querySelectorAll("
                               "'[data-testid=\"stMain\"] [data-testid=\"stPlotlyChart\"] .plot-container').length >= n",
                               arg=charts)
        assert drawn.count() >= charts
        traces = ('[data-testid="stMain"] [data-testid="stPlotlyChart"] .scatterlayer .trace, '
                  '[data-testid="stMain"] [data-testid="stPlotlyChart"] .barlayer .trace')
        try:  # Plotly draws the traces a moment after the chart's container
            page.wait_for_function("(css) => document.querySelectorAll(css).length >= 2", arg=traces,
                                   timeout=30_000)
        except sync_api.TimeoutError:
            pytest.fail(f"{name}: the charts draw {page.locator(traces).count()} traces, expected 2 or more")
        page.get_by_role("button", name="Download the charts (HTML, works offline)").wait_for()
        if name != EXPERIMENTS[0][1]:  # from the second experiment on, a list picks which one to show
            shown = page.get_by_test_id("stSelectbox").filter(has_text="Show")
            words = shown.evaluate("(box) => box.innerText + ' ' + "
                                   "Array.from(box.querySelectorAll('input')).map((i) => i.value).join(' ')")
            assert "started" in words and "Running" not in words, words  # it once kept "(Running)"
        shot(page, f"7-experiment-{name}")
        for index in range(charts):  # the page scrolls inside its own container: picture each chart itself
            chart = page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]').nth(index)
            for attempt in range(3):  # a late rerun can swap the chart's element for a new one mid-screenshot
                try:
                    chart.screenshot(path=str(ARTIFACTS / f"7-experiment-{name}-chart{index + 1}.png"))
                    break
                except sync_api.Error:
                    if attempt == 2:
                        raise
                    wait_idle(page)
    page.passed = True


def test_a_deep_link_first_after_a_server_start_gets_the_app_frame(page, fresh_server):
    """A shared link such as /model?session=... opened before anyone has opened / on a fresh server:
    Streamlit would serve pages/2_model.py the old pages-directory way (raw file names in the sidebar,
    'common' among them, no frame); the page builds the app's navigation and frame itself, keeping the URL."""
    from core import sessions

    # a token the server issued (a made-up one is refused and replaced: test_app_data's fixation test)
    token = sessions.issue_token(fresh_server.workspace / "sessions")
    page.goto(f"{fresh_server}/model?session={token}")
    page.get_by_role("heading", name="Model", level=1).wait_for()
    wait_idle(page)
    links = page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
    names = [text.split()[-1] for text in links]  # each link reads "<icon name> <title>"
    assert names == ["Data", "Model", "Train", "Autoencoder", "Evaluate", "Predict", "Experiments"], links
    page.get_by_test_id("stSidebar").get_by_text("Trains on").wait_for()  # the app's frame
    assert f"session={token}" in page.url and "/model" in page.url
    shot(page, "8-deep-link")
    page.passed = True


def test_an_automatic_run_draws_its_leaderboard(page, server):
    """The default recipe from the demo data (weights none, 32 px, so it runs offline in seconds): the Train
    page shows the choice in a sentence and a bar per candidate scored, and names the accuracy as it was
    measured (30 pictures a class: no validation split, cross-validated); screenshot 9-train-leaderboard.png."""
    import json

    from core import measured

    open_with_demo_data(page, server, "120 pictures in 4 classes")
    go_to(page, "Model")
    page.get_by_test_id("stRadio").filter(has_text="Automatic (recommended)").wait_for()  # the default, kept
    page.get_by_test_id("stRadio").filter(has_text="Start from").get_by_text("None (random start)").click()
    wait_idle(page)
    page.get_by_text("Automatic: VGG16 (weights none)").wait_for()
    smallest_image_size(page, "chosen by cross-validation, 32 px")

    go_to(page, "Train")
    page.get_by_text("Settings (automatic):").wait_for()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function("() => location.search.includes('run=')")
    run_id = page.evaluate("() => new URLSearchParams(location.search).get('run')")
    page.get_by_test_id("stMain").get_by_text("Finished, ", exact=False).wait_for(timeout=300_000)
    sync_api.expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=30_000)
    page.get_by_text("Chosen:", exact=False).first.wait_for()
    wait_idle(page)

    run_dir = server.workspace / "runs" / run_id
    # no validation split: cross-validated, or held-out training pictures when fine-tuning won
    measure = measured.of_run(run_dir)
    assert measure.evaluation in ("cross_validation", "held_out")
    state = page.get_by_test_id("stMain").get_by_text("Finished, ", exact=False).first.text_content()
    assert state.startswith(f"Finished, {measure.accuracy} ") and "validation accuracy" not in state, state
    page.get_by_test_id("stMain").get_by_text(measure.explained).wait_for()
    record = json.loads((run_dir / "candidates.json").read_text())
    names = [candidate["name"] for candidate in record["candidates"]]
    assert len(names) == 10  # 9 linear heads and, with 20+ pictures a class, fine-tuning block 5
    chart = page.get_by_test_id("stPlotlyChart").filter(has=page.locator(".barlayer")).first
    bars = chart.locator(".barlayer .point")
    page.wait_for_function("(n) => document.querySelectorAll("
                           "'[data-testid=\"stPlotlyChart\"] .barlayer .point').length >= n", arg=len(names))
    assert bars.count() == len(names)
    # each candidate's name on the axis (wrapped onto lines, so compared without spaces)
    shown = "|".join(chart.locator(".yaxislayer-above .ytick text").all_text_contents())
    squeezed = "".join(shown.split())
    for name in names:
        assert "".join(name.split()) in squeezed, name
    # the chosen one is marked and drawn at the top (best first)
    top_down = chart.evaluate("""(chart) => {
        const texts = (css) => Array.from(chart.querySelectorAll(css))
            .map((t) => [t.getBoundingClientRect().top, t.textContent])
            .sort((a, b) => a[0] - b[0]).map((pair) => pair[1]);
        return {ticks: texts('.yaxislayer-above .ytick text'), bars: texts('.barlayer .point text')};
    }""")
    chosen = record["candidates"][record["chosen"]]["name"]
    assert "".join(chosen.split()) == "".join(top_down["ticks"][0].split()), top_down["ticks"]
    assert top_down["bars"][0].endswith("chosen") and sum("chosen" in text for text in top_down["bars"]) == 1
    page.get_by_text(record["reason"], exact=False).wait_for()

    heading = page.get_by_role("heading", name="Candidates")
    chart.scroll_into_view_if_needed()
    heading.scroll_into_view_if_needed()
    top, bottom = heading.bounding_box(), chart.bounding_box()
    clip = {"x": bottom["x"] - 8, "y": top["y"] - 8, "width": bottom["width"] + 16,
            "height": bottom["y"] + bottom["height"] - top["y"] + 16}
    page.screenshot(path=str(ARTIFACTS / "9-train-leaderboard.png"), clip=clip)
    shot(page, "9-train-auto-finished")
    # 20+ pictures a class: the fine-tuning candidate trained epoch by epoch, drawn as curves named so
    page.get_by_text("Fine-tuning, epoch by epoch").wait_for()
    curves = page.get_by_test_id("stPlotlyChart").filter(has_text="fine-tuning candidate training loss")
    curves.locator(".scatterlayer path.js-line").first.wait_for()
    curves.scroll_into_view_if_needed()
    curves.screenshot(path=str(ARTIFACTS / "9-train-auto-curves.png"))
    page.passed = True
