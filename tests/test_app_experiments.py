"""The Experiments page: loads, estimates, starts an experiment in its own process, shows its rows."""
import os
import signal
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import experiments, runs
from core.config import TrainConfig

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "7_experiments.py")
OWNER = "test-owner-experiments"


def page(demo_dir=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["owner"] = OWNER
    at.session_state["config"] = TrainConfig.from_dict({"weights": "none", "image_size": 32}).to_dict()
    if demo_dir:
        classes = sorted(p.name for p in Path(demo_dir).iterdir() if p.is_dir())
        counts = {name: len(list((Path(demo_dir) / name).iterdir())) for name in classes}
        at.session_state["dataset"] = {"id": "demo", "name": "demo", "path": demo_dir, "classes": classes,
                                       "counts": counts, "images": sum(counts.values()), "skipped": []}
    return at


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
    at = page(demo_dir).run()
    at.number_input(key="experiment_epochs_True").set_value(1)
    at.button(key="experiment_start").click().run()
    assert not at.exception
    (item,) = experiments.list_experiments(OWNER)
    out = Path(item["path"])
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            results = experiments.read_results(out)
            if results["rows"] or results["state"] != "running":
                break
            time.sleep(2)
        assert results["rows"], (out / experiments.LOG_FILE).read_text()[-2000:]
        at.run()
        assert not at.exception
        # freeze-depth starts with its linear probes: rows without a run directory
        table = at.dataframe[0].value
        assert table["method"].iloc[0] == "linear probe" and table["block"].iloc[0] == 1
        assert table["run"].iloc[0] == ""
        assert at.get("plotly_chart")
        assert at.button(key="experiment_start").disabled or results["state"] != "running"
    finally:
        results = experiments.read_results(out)
        if results.get("state") == "running":  # the process this test started: stop it, then make sure
            experiments.stop_experiment(out)
            for _ in range(60):
                if experiments.read_results(out).get("state") != "running":
                    break
                time.sleep(1)
            else:
                os.killpg(results["pid"], signal.SIGTERM)


def test_a_finished_transfer_vs_scratch_shows_the_automatic_recipe(demo_dir):
    """Its row names what the recipe chose, and the per-epoch chart draws its one accuracy as a level line."""
    out = experiments.new_experiment_dir(OWNER, "transfer-vs-scratch")
    rows = [
        {"method": "transfer", "label": "pretrained, automatic recipe", "recipe": "auto", "val_accuracy": 0.8,
         "train_seconds": 3.0, "epochs": None, "state": "done", "error": None, "run_dir": str(out / "runs" / "a"),
         "curve": [0.8], "chosen": "block 4 features, average pooling, linear head (C=0.1)",
         "chosen_kind": "linear", "chosen_block": 4},
        {"method": "scratch", "label": "random weights, every block trained", "recipe": "manual",
         "freeze_depth": 0, "val_accuracy": 0.3, "train_seconds": 30.0, "epochs": 3, "state": "done",
         "error": None, "run_dir": str(out / "runs" / "b"), "curve": [0.25, 0.3, 0.3]}]
    runs.write_json_atomic(out / experiments.RESULTS_FILE, {
        "kind": "transfer-vs-scratch", "title": "Transfer against training from scratch", "state": "done",
        "planned": 2, "rows": rows, "summary": []})
    at = page(demo_dir).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["chosen"].iloc[0].startswith("block 4 features") and table["epochs"].isna().iloc[0]
    assert any("automatic recipe" in markdown.value for markdown in at.markdown)
    assert at.success[0].value == "Finished: 2 models trained."
    curves = at.get("plotly_chart")[0].proto.spec
    assert "no epochs" in curves
