"""The Predict page through AppTest, on a tiny finished run trained by the real CLI (32 px, weights none,
1 epoch). ``finished_run`` is shared with the Evaluate page's tests."""
import html
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_helpers import REPO_ROOT, assert_no_exception, plotly_specs, shown_text, start_app
from run_fixtures import own_copy

OWNER = "test-owner-token-0123456789"
RUN_ID = "20260101-000000-tinyrun001"
# A class (folder) name that is HTML and Markdown: every page must show it as text.
HOSTILE_CLASS = "<img src=x onerror=alert(1)> *circle*"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished run made with ``python -m core demo-data`` + ``python -m core train`` (once per module);
    one class folder is renamed to HOSTILE_CLASS first."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "demo"
    run = root / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def core(*arguments):
        done = subprocess.run([sys.executable, "-m", "core", *arguments], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    core("demo-data", str(data), "--per-class", "6", "--size", "32")
    (data / "circle").rename(data / HOSTILE_CLASS)
    core("train", str(data), "--out", str(run), "--weights", "none", "--image-size", "32", "--epochs", "1",
         "--batch-size", "8")
    return {"run": run, "data": data}


@pytest.fixture
def finished_run(trained_run, isolated_workspace, monkeypatch):
    """The trained run filed in this test's workspace as a run of OWNER, as the job manager files it: a copy
    of its own (run_fixtures.own_copy: the model hard-linked, a VGG16 file is tens of megabytes), so what
    the app or a test writes there stays in this test."""
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_PER_CLASS", "4")
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_SIZE", "32")
    run_dir = own_copy(trained_run["run"], isolated_workspace / "runs" / RUN_ID)
    (run_dir / "job.json").write_text(json.dumps({"owner": OWNER, "data": str(trained_run["data"]),
                                                  "submitted": 0}))
    yield {"id": RUN_ID, "path": run_dir, "data": trained_run["data"]}
    from pages import common

    common._job_manager_for(str(isolated_workspace / "runs")).shutdown()
    common._job_manager_for.clear()


def open_page(page: str, run_id: str | None = RUN_ID):
    query = {"session": OWNER}
    if run_id:
        query["run"] = run_id
    return start_app(query, page=page)


def stop_run(run: dict) -> None:
    """Make the linked run a stopped one, as a Stop during training leaves it: state "stopped", its best
    epoch's model kept."""
    status_file = run["path"] / "status.json"
    status = json.loads(status_file.read_text())
    status_file.write_text(json.dumps({**status, "state": "stopped"}))


def add_stopped_run_without_model(workspace: Path) -> str:
    """A run of OWNER stopped before it had a model (stopped while its pictures were loading)."""
    run_id = "20260101-000100-nomodel001"
    run_dir = workspace / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"state": "stopped"}))
    (run_dir / "config.json").write_text(json.dumps({"model": "vgg16", "recipe": "auto"}))
    (run_dir / "job.json").write_text(json.dumps({"owner": OWNER, "data": "", "submitted": 0}))
    return run_id


def demo_picture(data_dir: Path) -> tuple[str, bytes]:
    path = sorted(Path(data_dir).rglob("*.png"))[0]
    return path.name, path.read_bytes()


def assert_shown_as_text(at) -> None:
    """No HTML from a class or file name reaches the page: Markdown escapes it, Plotly gets entities."""
    markdown = [str(e.value) for kind in ("markdown", "caption", "warning", "info", "success", "error")
                for e in getattr(at, kind)]
    assert not [text for text in markdown if re.search(r"(?<!\\)<(img|b)\b", text)], markdown
    assert "<img" not in json.dumps(plotly_specs(at))


def png_bytes(colour, size=40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_without_a_trained_model_says_to_train_first(isolated_workspace):
    at = start_app({"session": OWNER}, page="pages/6_predict.py")
    assert "No trained model yet" in shown_text(at)
    assert not at.error


def test_uploaded_picture_shows_probability_bars(finished_run):
    """Every class of a model with up to 10 gets its bar (the top 3 of 4 hid one)."""
    at = open_page("pages/6_predict.py")
    name, data = demo_picture(finished_run["data"])
    at.file_uploader(key="predict_files").set_value((name, data, "image/png"))
    at.run()
    assert_no_exception(at)
    classes = json.loads((finished_run["path"] / "labels.json").read_text())
    bars = plotly_specs(at)["bars::0"]["data"][0]
    assert len(bars["y"]) == len(classes) == 4  # every class, the hostile name included
    assert set(bars["y"]) == {html.escape(name) for name in classes}  # the labels, as text
    # the bars are the model's own probabilities for this picture, each labelled with its number
    from core import predict

    expected = predict.predict_files(finished_run["path"], [(name, data)])[0]["probabilities"]
    shown = dict(zip(bars["y"], bars["x"]))
    assert shown == pytest.approx({html.escape(label): p for label, p in expected.items()}, abs=1e-6)
    assert sum(bars["x"]) == pytest.approx(1.0, abs=1e-5)
    assert [text for text in bars["text"]] == [f"{value:.1%}" for value in bars["x"]]
    assert "sure)" in shown_text(at)
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("image")) >= 1 + 2 + 1  # the picture, what the model sees + Grad-CAM, nearest pictures
    assert_shown_as_text(at)


def test_broken_file_is_a_warning_and_the_others_are_still_predicted(finished_run):
    at = open_page("pages/6_predict.py")
    name, data = demo_picture(finished_run["data"])
    at.file_uploader(key="predict_files").set_value([
        (name, data, "image/png"),
        ("<b>broken</b>.png", b"\x89PNG\r\n\x1a\n not really a png", "image/png"),
        ("red.png", png_bytes((255, 0, 0)), "image/png"),
    ])
    at.run()
    assert_no_exception(at)
    warnings = [str(w.value) for w in at.warning]
    assert len(warnings) == 1 and "broken" in warnings[0] and "not predicted" in warnings[0]
    assert "<b>" not in warnings[0]  # the file name is shown as text, escaped
    figures = plotly_specs(at)
    assert "bars::0" in figures and "bars::1" in figures and "bars::2" not in figures
    table = at.dataframe[0].value
    assert list(table["file"]) == [name, "<b>broken</b>.png", "red.png"]
    assert table["problem"][1] and not table["problem"][0]
    assert at.download_button(key="download_csv")
    assert_shown_as_text(at)


def test_a_stopped_run_that_kept_its_model_is_offered_and_predicts(finished_run, isolated_workspace):
    stop_run(finished_run)
    add_stopped_run_without_model(isolated_workspace)  # nothing to predict with: not offered
    at = open_page("pages/6_predict.py", run_id=None)
    [offered] = at.selectbox(key="predict_run").options  # the run without a model is not
    assert offered.startswith(RUN_ID) and "stopped" in offered, offered
    name, data = demo_picture(finished_run["data"])
    at.file_uploader(key="predict_files").set_value((name, data, "image/png")).run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "bars::0" in plotly_specs(at)


def test_the_headline_confidence_is_the_top_probability(finished_run):
    """The "(N% sure)" line says the model's own top probability for the picture (core.predict)."""
    from core import predict

    at = open_page("pages/6_predict.py")
    name, data = demo_picture(finished_run["data"])
    at.file_uploader(key="predict_files").set_value((name, data, "image/png")).run()
    expected = predict.predict_files(finished_run["path"], [(name, data)])[0]
    assert f"({expected['confidence']:.1%} sure)" in shown_text(at)
