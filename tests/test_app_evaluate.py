"""The Evaluate page through AppTest, on the tiny finished run of test_app_predict (real CLI training)."""
import io
import json
import zipfile

from app_helpers import assert_no_exception, plotly_specs, shown_text, start_app
from core import measured, predict
from test_app_predict import (HOSTILE_CLASS, OWNER, RUN_ID, add_stopped_run_without_model, assert_shown_as_text,
                              open_page, stop_run, finished_run, trained_run)  # noqa: F401 (fixtures)


def test_evaluate_without_a_trained_model_says_to_train_first(isolated_workspace):
    at = start_app({"session": OWNER}, page="pages/5_evaluate.py")
    assert "No trained model yet" in shown_text(at)
    assert not at.error


def test_a_stopped_run_that_kept_its_model_is_offered_and_evaluated(finished_run, isolated_workspace):
    stop_run(finished_run)
    add_stopped_run_without_model(isolated_workspace)  # nothing to evaluate: not offered
    at = open_page("pages/5_evaluate.py", run_id=None)
    [offered] = at.selectbox(key="evaluate_run").options
    assert offered.startswith(RUN_ID) and "stopped" in offered, offered
    assert not at.error, [e.value for e in at.error]
    assert int({m.label: m.value for m in at.metric}["Pictures evaluated"]) > 0


def test_evaluate_shows_accuracy_confusion_matrix_and_cell_pictures(finished_run):
    at = open_page("pages/5_evaluate.py")
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    # the run's own numbers (metrics.json), as the page writes them: recipe auto with 6 pictures a class has no
    # validation split, so its accuracy is cross-validated and named so
    stored = json.loads((finished_run["path"] / "metrics.json").read_text())
    assert measured.measure(stored["evaluation"]).title == "Cross-validated accuracy"
    assert metrics["Cross-validated accuracy"] == f"{stored['accuracy']:.1%}"
    evaluated = int(metrics["Pictures evaluated"])
    assert evaluated == sum(map(sum, stored["confusion_matrix"]))
    assert int(metrics["Mistakes"]) == evaluated - sum(row[i] for i, row in enumerate(stored["confusion_matrix"]))
    macro_f1 = sum(row["f1"] for row in stored["per_class"].values()) / len(stored["per_class"])
    assert metrics["Average F1 over classes"] == f"{macro_f1:.2f}"
    figures = plotly_specs(at)
    matrix = figures[f"cm::{finished_run['id']}"]["data"][0]["z"]
    assert sum(map(sum, matrix)) == evaluated  # every validation picture is in one cell
    assert "per_class" in figures and "feature_map" in figures
    # The keyboard way into a cell (the click does the same through the chart's selection).
    cell = at.selectbox(key=f"cm_cell::{finished_run['id']}")
    hostile = [i for i, option in enumerate(cell.options) if option.startswith(f"true {HOSTILE_CLASS}")]
    cell.select_index(hostile[0]).run()
    assert_no_exception(at)
    assert "predicted as" in shown_text(at)  # "N pictures of X predicted as Y" or "No picture of X was ..."
    assert at.get("image")  # the Grad-CAM gallery, and the cell's pictures when it has any
    assert not at.error, [e.value for e in at.error]
    assert_shown_as_text(at)


def test_evaluate_on_an_uploaded_labeled_zip(finished_run):
    at = open_page("pages/5_evaluate.py")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(finished_run["data"].rglob("*.png")):
            archive.write(path, path.relative_to(finished_run["data"]).as_posix())
    at.radio(key="eval_source").set_value("A labeled zip (one folder per class)").run()
    at.file_uploader(key="eval_zip").set_value(("shapes.zip", buffer.getvalue(), "application/zip")).run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Pictures evaluated"]) == 24  # every picture of the zip, not just the validation split
    # on the zip: plain accuracy, no claim about how the run measured it; the share of pictures the model
    # predicts as their folder, each predicted on its own here
    pictures = sorted(finished_run["data"].rglob("*.png"))
    rows = predict.predict_files(finished_run["path"], [(path.name, path.read_bytes()) for path in pictures])
    right = sum(row["label"] == path.parent.name for row, path in zip(rows, pictures))
    assert metrics["Accuracy"] == f"{right / len(pictures):.1%}"
    assert int(metrics["Mistakes"]) == len(pictures) - right


def test_a_run_whose_pictures_are_gone_gets_a_plain_error(finished_run):
    dataset_file = finished_run["path"] / "dataset.json"
    info = json.loads(dataset_file.read_text())
    dataset_file.write_text(json.dumps({**info, "source": str(finished_run["path"] / "gone")}))
    at = open_page("pages/5_evaluate.py")
    assert_no_exception(at)
    assert len(at.error) == 1 and "no longer at" in at.error[0].value and "labeled folder or zip" in at.error[0].value
    assert "Traceback" not in shown_text(at)
