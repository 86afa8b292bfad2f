"""The Train page's leaderboard of an auto run's candidates, through AppTest, on a tiny real run (32 px,
weights none, 1 epoch) given candidates.json and candidate events to the fixed schema: it fills in
live from the events, shows every candidate with the chosen one marked and the reason, and shows
nothing for a manual run or a candidates file it cannot read."""
import json
import subprocess
import sys

import psutil
import pytest

from app_helpers import assert_no_exception, plotly_specs, shown_text, start_app
from candidate_fixtures import (HOSTILE_NAME, OWNER, REASON, RUN_ID, SCORING, add_candidate_events,
                                candidates_record, file_run, make_auto, trained_run)
from core import leaderboard, runs

TRAIN = "pages/3_train.py"
CHART = f"candidates-{RUN_ID}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, demo_dir):
    return trained_run(tmp_path_factory, demo_dir)


@pytest.fixture
def filed_run(tiny_run, isolated_workspace):
    """The tiny run filed as OWNER's in this test's workspace; the job manager is shut down after."""
    yield file_run(tiny_run, isolated_workspace)
    from pages import common

    common._job_manager_for(str(isolated_workspace / "runs")).shutdown(stop_running=True, timeout=5)
    common._job_manager_for.clear()


def open_train_page():
    at = start_app({"session": OWNER, "run": RUN_ID}, page=TRAIN)
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    return at


def unescaped(markdown: str) -> str:
    """Markdown as read on the page: common.plain backslash-escapes punctuation."""
    return markdown.replace("\\", "")


def bar_labels(chart: dict) -> list[str]:
    """The chart's candidate names as a user reads them (line breaks and bold undone)."""
    return [label.replace("<br>", " ").replace("<b>", "").replace("</b>", "") for label in chart["data"][0]["y"]]


def test_finished_auto_run_shows_every_candidate_the_choice_and_why(filed_run):
    record = make_auto(filed_run)
    at = open_train_page()
    text = shown_text(at)
    assert "Candidates" in text and "Finished" in text
    assert f"**Chosen:** {REASON}" in unescaped(text)
    [caption] = [c for c in at.caption if SCORING in unescaped(c.value)]
    assert caption.proto.help == leaderboard.CROSS_VALIDATION_HELP

    chart = plotly_specs(at)[CHART]
    bars, whiskers = chart["data"]
    names = [row["name"] for row in record["candidates"]]
    assert sorted(bar_labels(chart)) == sorted(names)
    accuracies = bars["x"]
    assert accuracies == sorted(accuracies, reverse=True)  # best first
    assert chart["layout"]["yaxis"]["autorange"] == "reversed"  # ... drawn at the top
    chosen = bar_labels(chart).index(names[record["chosen"]])
    colours = bars["marker"]["color"]
    assert colours[chosen] == leaderboard.CHOSEN_COLOUR and colours.count(leaderboard.CHOSEN_COLOUR) == 1
    assert "chosen" in bars["text"][chosen] and sum("chosen" in t for t in bars["text"]) == 1
    assert bars["text"][chosen].startswith("91%")
    # the spread over folds as whiskers, on the bars scored by cross-validation only
    spreads = dict(zip(whiskers["y"], whiskers["error_x"]["array"]))
    assert spreads[bars["y"][chosen]] == pytest.approx(0.03) and len(spreads) == 3
    assert "78% on 16 held-out pictures" in bars["text"]
    assert chart["layout"]["xaxis"]["title"]["text"] == "accuracy in cross-validation"
    assert chart["layout"]["xaxis"]["tickformat"] == ".0%"


def test_leaderboard_fills_in_live_while_the_run_scores(filed_run):
    """While the run is going (a live process holds it) the fragment's view shows each candidate as its
    event arrives, and the choice once the recipe event comes."""
    record = candidates_record()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(filed_run)])
    try:
        writer = runs.RunWriter(filed_run)
        writer.set_status("running", device="CPU (test)", pid=holder.pid,
                          create_time=psutil.Process(holder.pid).create_time())
        at = open_train_page()
        assert "Training on CPU (test)" in unescaped(shown_text(at))  # live: the page watches it in its fragment
        assert "Candidates" not in shown_text(at) and CHART not in plotly_specs(at)

        add_candidate_events(filed_run, record, upto=2, choice=False)
        at.run()
        assert_no_exception(at)
        assert "2 of 4 scored so far" in shown_text(at)
        assert sorted(bar_labels(plotly_specs(at)[CHART])) == sorted(r["name"] for r in record["candidates"][:2])
        assert "Chosen" not in shown_text(at)
        assert leaderboard.CHOSEN_COLOUR not in plotly_specs(at)[CHART]["data"][0]["marker"]["color"]

        for index, row in enumerate(record["candidates"][2:], start=2):
            writer.event("candidate", **row, index=index, total=4)
        writer.event("recipe", chosen=1, name=record["candidates"][1]["name"], reason=REASON)
        at.run()
        assert_no_exception(at)
        chart = plotly_specs(at)[CHART]
        assert len(bar_labels(chart)) == 4 and "scored so far" not in shown_text(at)
        assert "Chosen:" in shown_text(at)
        assert chart["data"][0]["marker"]["color"].count(leaderboard.CHOSEN_COLOUR) == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_manual_run_shows_no_leaderboard(filed_run):
    at = open_train_page()
    assert "Finished" in shown_text(at)
    assert "Candidates" not in shown_text(at) and "Chosen" not in shown_text(at)
    assert CHART not in plotly_specs(at)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00binary", b"[1, 2]", b'{"candidates": "many"}',
                                     json.dumps({"candidates": [{"name": 3}, {"cv_accuracy": "high"}, None],
                                                 "chosen": "x"}).encode()],
                         ids=["cut-short", "binary", "a-list", "no-list", "bad-records"])
def test_an_unreadable_candidates_file_shows_nothing_and_no_error(filed_run, content):
    (filed_run / "candidates.json").write_bytes(content)
    at = open_train_page()
    assert "Finished" in shown_text(at)
    assert "Candidates" not in shown_text(at) and CHART not in plotly_specs(at)
    assert "Traceback" not in shown_text(at) and "Something went wrong" not in shown_text(at)


def test_an_unreadable_file_falls_back_to_the_events_and_user_text_stays_text(filed_run):
    """A hostile candidate name shows literally on the page; a broken file still leaves the events' picture."""
    record = {**candidates_record(hostile=True), "reason": "<img src=x onerror=alert(1)> *wins*"}
    add_candidate_events(filed_run, record)
    (filed_run / "candidates.json").write_text('{"recipe": "auto", "candidates": [')
    at = open_train_page()
    chart = plotly_specs(at)[CHART]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in label for label in chart["data"][0]["y"])
    assert not any("<script>" in label for label in chart["data"][0]["y"])
    [chosen] = [m.value for m in at.markdown if "Chosen" in m.value]
    assert "<img" not in chosen.replace("\\<", "") and unescaped(chosen).endswith(record["reason"])
    assert HOSTILE_NAME not in shown_text(at)
