"""The Experiments page: loads, estimates, starts an experiment through the server's job manager, shows its rows
(and its place in the queue while every slot is taken); finds the settings a session kept after a reload; names
an uploaded weights file by its upload name, and starts nothing without the weights it needs."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import wait_for
from core import experiments, runs, session_settings
from pages import common
from core import weights as vgg16_weights
from core.config import TrainConfig

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "7_experiments.py")
OWNER = "test-owner-experiments"


def page(demo_dir=None, reload=False, **settings) -> AppTest:
    """The page in a new browser session of OWNER, its settings weights none and 32 px with ``settings`` over
    them; on a ``reload`` no settings are given, so the page finds what the session kept on the server."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["owner"] = OWNER
    if not reload:
        at.session_state["config"] = {**TrainConfig.from_dict({"weights": "none", "image_size": 32}).to_dict(),
                                      **settings}
    if demo_dir:
        classes = sorted(p.name for p in Path(demo_dir).iterdir() if p.is_dir())
        counts = {name: len(list((Path(demo_dir) / name).iterdir())) for name in classes}
        at.session_state["dataset"] = {"id": "demo", "name": "demo", "path": demo_dir, "classes": classes,
                                       "counts": counts, "images": sum(counts.values()), "skipped": []}
    return at


def jobs_of_this_server():
    """The job manager the page uses (one per runs folder, kept by Streamlit's resource cache)."""
    return common.job_manager()


@pytest.fixture(autouse=True)
def page_manager_ends():
    """The page's job manager ends with the test, and what it started with it."""
    yield
    if runs.runs_root().is_dir():
        common._job_manager_for(str(runs.runs_root())).shutdown(stop_running=True, timeout=60)
    common._job_manager_for.clear()


def finished_experiment(kind: str, results: dict, owner: str = OWNER) -> Path:
    """An experiment folder as the job manager leaves a finished one: job.json (kind experiment, the owner),
    status.json done, and ``results`` as results.json."""
    out = runs.runs_root() / runs.new_run_id()
    writer = runs.RunWriter(out)
    writer.write_json("job.json", {"kind": "experiment", "owner": owner, "experiment": {"kind": kind}})
    writer.write_json(experiments.RESULTS_FILE, results)
    writer.set_status("done")
    return out


def test_page_without_a_dataset_says_where_to_get_one():
    at = page().run()
    assert not at.exception
    assert any("Data" in info.value for info in at.info)


def test_page_shows_the_estimate_and_changes_with_the_kind(demo_dir):
    at = page(demo_dir).run()
    assert not at.exception
    first = [info.value for info in at.info if "models to train" in info.value]
    assert "3 models to train and 5 linear probes" in first[0]   # freeze-depth, quick
    at.radio(key="experiment_kind").set_value("data-efficiency").run()
    second = [info.value for info in at.info if "models to train" in info.value]
    assert first and second and first != second
    assert any("nothing to transfer" in warning.value for warning in at.warning)  # weights "none"


def test_starting_an_experiment_fills_in_rows(demo_dir):
    """Start submits a job of kind "experiment" to the job manager, which the lists of training runs leave out."""
    at = page(demo_dir).run()
    at.number_input(key="experiment_epochs_True").set_value(1)
    at.button(key="experiment_start").click().run()
    assert not at.exception
    manager = jobs_of_this_server()
    (item,) = manager.runs(owner=OWNER, kind="experiment")
    out = Path(item["path"])
    assert runs.read_json(out / "job.json")["command"][3:5] == ["experiment", "freeze-depth"]
    assert manager.runs(owner=OWNER) == [] and runs.list_runs() == []  # not a training run

    def first_row_or_the_end():
        results = experiments.read_results(out)  # None until the process has written it
        return results if results and (results["rows"] or results["state"] != "running") else None

    # the process this test starts is stopped (and ended if it does not stop) by page_manager_ends
    results = wait_for(first_row_or_the_end, timeout=600, interval=0.1, message="the experiment's first row")
    assert results["rows"], (out / experiments.LOG_FILE).read_text()[-2000:]
    at.run()
    assert not at.exception
    # freeze-depth starts with its linear probes: rows without a run directory
    table = at.dataframe[0].value
    assert table["method"].iloc[0] == "linear probe" and table["block"].iloc[0] == "1"
    assert table["epochs"].iloc[0] == "" and "None" not in table.to_string()  # blank, not "None"
    probe = results["rows"][0]
    assert table["validation accuracy"].iloc[0] == round(100 * probe["val_accuracy"], 1)  # percent
    assert table["run id"].iloc[0] == ""
    assert at.get("plotly_chart")
    assert at.button(key="experiment_start").disabled or results["state"] != "running"


def test_a_queued_experiment_says_its_place_in_line(demo_dir, tmp_path, monkeypatch):
    """With every training slot of the server taken (a limit of 1, another session's run holding it), Start
    queues the experiment, and the page says so in words; Stop takes it out of the queue."""
    from core import jobs
    from jobs_helpers import fake_data, make_fake_python

    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    other = jobs.JobManager(python=make_fake_python(tmp_path), start_thread=False)  # say, the command line's
    blocker = other.submit(TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1}),
                           fake_data(tmp_path / "slow", hold_file=str(tmp_path / "never")), "another-session")
    try:
        at = page(demo_dir).run()
        at.button(key="experiment_start").click().run()
        assert not at.exception
        (item,) = jobs_of_this_server().runs(owner=OWNER, kind="experiment")
        assert runs.read_status(item["path"])["state"] == "queued"
        assert any("number 1 in line" in info.value for info in at.info), [info.value for info in at.info]
        assert at.button(key="experiment_start").disabled
        at.button(key="experiment_stop").click().run()
        assert runs.read_status(item["path"])["state"] == "stopped"
        assert any("Stopped before it started" in warning.value for warning in at.warning)
    finally:
        other.stop(blocker)
        other.shutdown(stop_running=True, timeout=10)


def test_a_finished_transfer_vs_scratch_shows_the_automatic_recipe(demo_dir):
    """Its row names what the recipe chose, and the per-epoch chart draws its one accuracy as a level line."""
    out = runs.runs_root() / "planned-folder"  # the run folders the rows name
    rows = [
        {"method": "transfer", "label": "pretrained, automatic recipe", "recipe": "auto", "val_accuracy": 0.8,
         "train_seconds": 3.0, "epochs": None, "state": "done", "error": None, "run_dir": str(out / "runs" / "a"),
         "curve": [0.8], "chosen": "block 4 features, average pooling, linear head (C=0.1)",
         "chosen_kind": "linear", "chosen_block": 4},
        {"method": "scratch", "label": "random weights, every block trained", "recipe": "manual",
         "freeze_depth": 0, "val_accuracy": 0.3, "train_seconds": 30.0, "epochs": 3, "state": "done",
         "error": None, "run_dir": str(out / "runs" / "b"), "curve": [0.25, 0.3, 0.3]}]
    finished_experiment("transfer-vs-scratch", {
        "kind": "transfer-vs-scratch", "title": "Transfer against training from scratch", "state": "done",
        "planned": 2, "rows": rows, "summary": []})
    at = page(demo_dir).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["chosen by the automatic recipe"].iloc[0].startswith("block 4 features")
    assert table["epochs"].iloc[0] == "" and list(table["validation accuracy"]) == [80.0, 30.0]
    assert any("automatic recipe" in markdown.value for markdown in at.markdown)
    assert at.success[0].value == "Finished: 2 models trained."
    curves = at.get("plotly_chart")[0].proto.spec
    assert "no epochs" in curves


def page_text(at) -> str:
    """Everything the page shows as text, widget labels and help included, Markdown escapes removed."""
    parts = [str(element.value) for kind in ("title", "markdown", "caption", "error", "warning", "info", "success")
             for element in getattr(at, kind)]
    parts += [f"{widget.label} {widget.help or ''}" for kind in ("button", "radio", "toggle", "number_input")
              for widget in getattr(at, kind)]
    return "\n".join(parts).replace("\\", "")


def test_a_reload_on_this_page_finds_the_settings_the_session_kept(demo_dir):
    """A new browser session of the same session token opening Experiments first (a reload here) reads the
    settings kept on the server, not the defaults."""
    session_settings.save(OWNER, {**TrainConfig().to_dict(), "weights": "none", "image_size": 48})
    at = page(demo_dir, reload=True).run()
    assert not at.exception
    assert at.session_state["config"]["image_size"] == 48
    assert "image size 48 px" in page_text(at).replace("**", "")
    assert any("nothing to transfer" in warning.value for warning in at.warning)  # weights "none", as kept


def test_an_uploaded_weights_file_is_named_by_its_upload_name_and_none_uploaded_starts_nothing(demo_dir):
    """The page names the upload as the Model page does, never by its server path (which holds the session
    token); "a weights file" with nothing uploaded says so and Start is off."""
    folder = vgg16_weights.uploads_folder(OWNER)
    folder.mkdir(parents=True)
    upload = folder / "1a2b3c4d-my_vgg16.weights.h5"
    upload.write_bytes(b"only its existence is checked before Start")
    at = page(demo_dir, weights=str(upload))
    at.session_state["weights_file"] = {"path": str(upload), "name": "my vgg16.weights.h5"}
    at.run()
    assert not at.exception
    text = page_text(at)
    for leak in (str(runs.workspace()), OWNER, upload.name):
        assert leak not in text, leak
    assert "Weights your uploaded file my vgg16.weights.h5 and image size" in text.replace("**", "")
    assert not at.button(key="experiment_start").disabled

    at = page(demo_dir, weights="").run()  # "A weights file" chosen on the Model page, nothing uploaded
    assert not at.exception
    assert "a weights file (none uploaded yet)" in page_text(at)
    assert any("none is uploaded yet" in warning.value and "Nothing can start" in warning.value
               for warning in at.warning)
    assert at.button(key="experiment_start").disabled
