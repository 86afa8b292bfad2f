"""The report: one self-contained HTML file that shows every section, escapes user text and fetches nothing."""
import json
import re
import shutil
from pathlib import Path

import pytest

from candidate_fixtures import HOSTILE_NAME, REASON, SCORING, auto_run, candidates_record, fine_tune_auto_run
from core import measured, report
from run_fixtures import cached_run, own_copy, run_fixture


run_dir = run_fixture("run_dir", "gap", "svm", "autoencoder")


@pytest.fixture(scope="module")
def autoencoder_report(demo_dir, tmp_path_factory):
    # write_report writes report.html into the run: into a copy of its own
    run = own_copy(cached_run(tmp_path_factory, demo_dir, "autoencoder"), tmp_path_factory.mktemp("report") / "run")
    rows = [{"method": "transfer", "label": f"k={depth}", "freeze_depth": depth, "val_accuracy": accuracy,
             "train_seconds": seconds, "state": "done", "error": None, "run_dir": f"/runs/k{depth}", "curve": [accuracy]}
            for depth, accuracy, seconds in ((5, 0.75, 3.0), (3, 0.5, 9.0))]
    results = {"kind": "freeze-depth", "title": "How many blocks to freeze", "state": "done", "rows": rows,
               "summary": [], "settings": {"weights": "none", "image_size": 32}}
    return report.write_report(run, results)


def without_scripts(page: str) -> str:
    """The page minus the contents of inline <script> elements (Plotly's library mentions URLs in its code)."""
    return re.sub(r"(<script\b[^>]*>).*?(</script>)", r"\1\2", page, flags=re.S | re.I)


def assert_fetches_nothing_outside(page: str) -> None:
    markup = without_scripts(page)
    for tag in re.findall(r"<script\b[^>]*>", markup, flags=re.I):
        assert "src" not in tag.lower(), tag
    assert not re.search(r"<link\b", markup, flags=re.I)
    assert not re.search(r"url\s*\(", markup, flags=re.I)
    assert not re.search(r"@import", markup, flags=re.I)
    for tag in re.findall(r"<[a-z][^>]*>", markup, flags=re.I):  # real tags only: escaped text has no "<"
        for attribute, value in re.findall(r"\s(src|href|srcset|poster|action)\s*=\s*[\"']?([^\"'\s>]*)",
                                           tag, flags=re.I):
            assert value.startswith(("data:", "#")), f"{attribute}={value[:80]}"


def test_report_has_every_section_and_fetches_nothing(run_dir):
    page = report.build_report(run_dir)
    for heading in ("Settings", "Data", "Training curves", "Results", "Confusion matrix", "Per class",
                    "Misclassified validation pictures", "Grad-CAM"):
        assert heading in page, heading
    assert page.count("data:image/png;base64,") >= 2  # Grad-CAM examples: the image and its overlay
    assert "Plotly.newPlot" in page and 'class="plotly-graph-div"' in page
    assert "cdn.plot.ly/plotly" not in page
    assert_fetches_nothing_outside(page)
    if "svm" in run_dir:
        assert "class-agnostic" in page


def test_autoencoder_report_shows_pretraining_and_the_experiment(autoencoder_report):
    page = Path(autoencoder_report).read_text()
    assert Path(autoencoder_report).name == "report.html"
    assert "Autoencoder reconstructions" in page and "Autoencoder pretraining" in page
    assert "Experiment: How many blocks to freeze" in page and "Best so far: 5 of 5 blocks frozen at 75%" in page
    experiment = page[page.index("<h2>Experiment:"):]
    runs_table = experiment[experiment.index("<h3>Runs</h3>"):]
    assert "<th>frozen blocks</th>" in runs_table and "<th>validation accuracy</th>" in runs_table
    assert "3 of 5 blocks frozen" in runs_table and "None" not in runs_table
    assert "val_accuracy" not in without_scripts(experiment) and "train_seconds" not in without_scripts(experiment)
    assert "Validation accuracy and training time by frozen blocks" in page  # the experiment's own chart
    assert page.count("<script") == page.count("</script>") and "/runs/k5" not in page
    assert_fetches_nothing_outside(page)


def test_user_text_is_escaped(demo_dir, tmp_path_factory, tmp_path):
    source = Path(cached_run(tmp_path_factory, demo_dir, "gap"))
    for name in ("config.json", "status.json", "events.jsonl"):
        shutil.copy(source / name, tmp_path / name)
    bad_class, bad_file = "<b>x</b>", "<script>alert(1)</script>.png"
    metrics = json.loads((source / "metrics.json").read_text())
    metrics["classes"][0] = bad_class
    metrics["per_class"] = {bad_class if name == "circle" else name: row for name, row in metrics["per_class"].items()}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    dataset = json.loads((source / "dataset.json").read_text())
    dataset["counts"] = {bad_class: 8}
    dataset["skipped"] = [{"path": bad_file, "reason": "not an image (looks like <html>)"}]
    dataset["source"] = "/data/<img src=x onerror=alert(1)>"
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    page = report.build_report(tmp_path, {"title": "<i>sweep</i>", "error": "<u>u</u>"})
    for text in (bad_class, bad_file, "<img src=x", "<html>", "<i>sweep</i>", "<u>u</u>"):
        assert text not in without_scripts(page), text
    for text in ("&lt;b&gt;x&lt;/b&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;.png", "&lt;i&gt;sweep&lt;/i&gt;"):
        assert text in page
    assert "Images are not shown" not in page  # no model in this copy: the section is left out quietly
    assert_fetches_nothing_outside(page)


def test_report_of_a_failed_run_says_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "vgg16", "head": "gap"}))
    (tmp_path / "status.json").write_text(json.dumps({"state": "failed", "error": "out of <memory>"}))
    page = report.build_report(tmp_path)
    assert "out of &lt;memory&gt;" in page and "the run did not finish" in page and "no epoch finished" in page


@pytest.mark.browser
def test_report_offline(autoencoder_report):
    """Chromium opens the report and every request it makes stays inside the file, however late: the page's clock
    is in the test's hands, and once the charts are drawn and the pictures decoded, every timer due within the
    next hour fires at once (waiting for a quiet network alone misses a request a timer sets off later)."""
    from tests.browser.streamlit_server import chromium  # skips this test where Chromium or Playwright is missing

    requests = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.clock.install()
        page.goto(Path(autoencoder_report).as_uri(), wait_until="load")
        page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)  # Plotly really drew
        assert page.locator("img").count() >= 3
        page.wait_for_function("() => Array.from(document.images).every((img) => img.complete)")
        for _ in range(2):  # a timer set by a timer fires on the second jump
            page.clock.fast_forward("01:00:00")
        page.wait_for_load_state("networkidle")
    assert requests, "the page made no request at all: it did not load"
    outside = [url for url in requests if not url.startswith(("file:", "data:", "about:"))]
    assert not outside, outside


def test_an_auto_run_report_says_how_the_model_was_chosen(demo_dir, tmp_path_factory, tmp_path):
    """candidates.json gives a section with the reason, the chart and every candidate; names are escaped."""
    source = Path(cached_run(tmp_path_factory, demo_dir, "gap"))
    for name in ("config.json", "status.json", "events.jsonl", "metrics.json"):
        shutil.copy(source / name, tmp_path / name)
    assert "How the model was chosen" not in report.build_report(tmp_path)  # a manual run
    record = candidates_record(hostile=True)
    (tmp_path / "candidates.json").write_text(json.dumps(record))
    page = report.build_report(tmp_path)
    section = page[page.index("<h2>How the model was chosen</h2>"):page.index("<h2>Training curves</h2>")]
    assert f"<b>Chosen:</b> {REASON}" in section and SCORING in section
    assert "accuracy in cross-validation" in section and 'class="plotly-graph-div"' in section
    rows = re.findall(r"<tr><td>(.*?)</td>", section)
    assert rows[0] == "block 4 features, average pooling, linear head (C=0.1)"  # best first: the chosen one
    assert sorted(rows) == sorted(report._e(row["name"]) for row in record["candidates"])
    assert section.count(">chosen</td>") == 1 and "± 3%" in section and "16 held-out training pictures" in section
    assert HOSTILE_NAME not in page and "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert_fetches_nothing_outside(page)
    (tmp_path / "candidates.json").write_text('{"candidates": [')
    assert "How the model was chosen" not in report.build_report(tmp_path)  # unreadable: left out quietly


def test_an_auto_run_report_names_its_accuracy_as_it_was_measured(demo_dir, tmp_path_factory):
    """8 pictures a class: no validation split, so the summary, the results and the mistakes say cross-validated,
    never "validation"; the linear head fitted in one step gets a note, not a one-point chart."""
    page = report.build_report(auto_run(tmp_path_factory, demo_dir))
    measure = measured.MEASURES["cross_validation"]
    assert "<td>cross-validated accuracy</td>" in page and "<td>training pictures, cross-validated</td>" in page
    assert "32 training images at 32 px, every one of them used to train the model" in page
    assert f"<h2>Results</h2><p>Cross-validated accuracy <b>" in page and measure.explained in page
    assert "<h2>Misclassified training pictures</h2>" in page and "wrong (training pictures, cross-validated)" in page
    assert "validation" not in without_scripts(page).lower().replace("cross-validat", "").replace(
        "validation_fraction", "")  # the settings table names the (unused) validation share
    curves = page[page.index("<h2>Training curves</h2>"):page.index("<h2>Results</h2>")]
    assert "None: the chosen model is a linear head" in curves and "plotly-graph-div" not in curves
    assert_fetches_nothing_outside(page)


def test_an_auto_run_report_draws_the_fine_tune_candidate_as_a_curve_of_its_own(tmp_path_factory):
    page = report.build_report(fine_tune_auto_run(tmp_path_factory))
    curves = page[page.index("<h2>Training curves</h2>"):page.index("<h2>Results</h2>")]
    assert "plotly-graph-div" in curves
    assert '"name":"fine-tuning candidate val_accuracy"' in curves.replace(": ", ":")


def test_an_experiment_section_names_data_and_weights_without_server_paths(tmp_path):
    token = "s3cr3tsessiontoken42"
    (tmp_path / "config.json").write_text(json.dumps({"model": "vgg16", "head": "gap"}))
    (tmp_path / "status.json").write_text(json.dumps({"state": "failed", "error": "stopped"}))
    results = {"title": "sweep", "kind": "freeze-depth", "data": f"/srv/workspace/datasets/{token}/20261130-abc",
               "settings": {"weights": f"/srv/workspace/weights/{token}/mine.weights.h5", "epochs": 2}}
    page = report.build_report(tmp_path, results)
    assert token not in page and "/srv/workspace" not in page
    assert "20261130-abc" in page and "mine.weights.h5" in page
