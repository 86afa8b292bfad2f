"""Experiments: each kind trains ordinary runs, writes results.json row by row and the charts; transfer is
the automatic recipe and everything else says its recipe (manual); freeze-depth scores a linear probe per
block; the data-efficiency validation set stays fixed; bad kinds and missing weights fail in plain words."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from core import experiments, ingest, runs, training
from core.config import frozen_words

TINY = {"weights": "none", "image_size": 32, "epochs": 1, "quick": True}


def run(kind, demo_dir, out, **changes):
    seen = []

    def on_row(row, results):
        # results.json on disk already holds this row when the callback runs: a watcher sees it
        on_disk = json.loads((Path(out) / "results.json").read_text())
        seen.append((len(results["rows"]), len(on_disk["rows"])))

    results = experiments.run_experiment(kind, demo_dir, out, on_row=on_row, **{**TINY, **changes})
    return results, seen


def validation_paths(run_dir):
    return json.loads((Path(run_dir) / "dataset.json").read_text())["split"]["validation"]


def run_config(run_dir):
    return json.loads((Path(run_dir) / "config.json").read_text())


def test_freeze_depth_writes_rows_runs_and_charts(demo_dir, tmp_path):
    results, seen = run("freeze-depth", demo_dir, tmp_path / "exp")
    steps = len(experiments.PROBE_BLOCKS) + len(experiments.QUICK_FREEZE_DEPTHS)
    assert results["state"] == "done" and results["planned"] == steps
    assert runs.read_status(tmp_path / "exp")["state"] == "done"  # the job's state, as a training run's
    assert seen == [(n, n) for n in range(1, steps + 1)]
    probes = [row for row in results["rows"] if row["method"] == "linear probe"]
    tuned = [row for row in results["rows"] if row["method"] == "transfer"]
    # a linear probe per block first (seconds each), on the same split, without a run directory
    assert [row["block"] for row in probes] == list(experiments.PROBE_BLOCKS) and results["rows"][:len(probes)] == probes
    for row in probes:
        assert row["state"] == "done" and 0.0 <= row["val_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert row["run_dir"] is None and row["regularization"] in (0.01, 0.1, 1.0) and row["curve"]
    assert [row["freeze_depth"] for row in tuned] == list(experiments.QUICK_FREEZE_DEPTHS)
    for row in tuned:
        assert row["train_seconds"] > 0
        # an ordinary run directory, whose own status says the accuracy the row shows
        assert runs.read_status(row["run_dir"])["state"] == "done"
        assert row["val_accuracy"] == runs.read_status(row["run_dir"])["val_accuracy"]
        assert Path(row["run_dir"]).parent == tmp_path / "exp" / "runs"
        # the base config's recipe is auto: each k must be trained as said, by the manual recipe
        assert row["recipe"] == "manual" == run_config(row["run_dir"])["recipe"]
        assert run_config(row["run_dir"])["freeze_depth"] == row["freeze_depth"]
        assert len(row["curve"]) == 1
    assert sorted(path.name for path in (tmp_path / "exp" / "runs").iterdir()) == [
        Path(row["run_dir"]).name for row in tuned]
    assert json.loads((tmp_path / "exp" / "results.json").read_text()) == json.loads(json.dumps(results))
    charts = (tmp_path / "exp" / "charts.html").read_text()
    assert "Plotly.newPlot" in charts and len(charts) > 1_000_000  # plotly.js inlined: works offline
    (figure,) = experiments.figures(results)
    assert {trace.name for trace in figure.data} == {
        "linear probe on a frozen block's features", "some blocks frozen, the rest trained", "training time (s)"}
    assert list(figure.layout.xaxis.categoryarray) == [f"block {b} + linear" for b in experiments.PROBE_BLOCKS] + [
        frozen_words(k) for k in experiments.QUICK_FREEZE_DEPTHS]
    lesson = experiments.headline(results)
    assert lesson.startswith("Best so far: a linear probe on block") and "the rest trained, " in lesson
    assert "blocks frozen at" in lesson or "none frozen (every block trains) at" in lesson, lesson
    assert "k=" not in lesson and "k =" not in figure.layout.xaxis.title.text
    results["rows"] = tuned   # without probes, the sentence of the frozen-block runs alone
    assert re.match(r"Best so far: (\d of 5 blocks frozen|none frozen \(every block trains\)) at \d+%",
                    experiments.headline(results)), experiments.headline(results)
    table = experiments.table(results)
    assert [line["frozen blocks"] for line in table] == [frozen_words(row["freeze_depth"]) for row in tuned]
    assert [line["run"] for line in table] == [frozen_words(row["freeze_depth"]) for row in tuned]


def test_transfer_vs_scratch_uses_one_split_and_draws_curves(demo_dir, tmp_path):
    results, _ = run("transfer-vs-scratch", demo_dir, tmp_path / "exp", epochs=2)
    rows = results["rows"]
    assert [row["method"] for row in rows] == ["transfer", "fine-tune", "scratch", "autoencoder"]
    transfer, twin, scratch, _ = rows
    # transfer is the automatic recipe; what it chose is in the row (6 pictures a class: a linear head)
    assert transfer["recipe"] == "auto" == run_config(transfer["run_dir"])["recipe"]
    assert transfer["chosen_kind"] == "linear" and transfer["chosen_block"] in (3, 4, 5)
    assert transfer["chosen"].startswith(f"block {transfer['chosen_block']} features")
    assert len(transfer["curve"]) == 1 and transfer["epochs"] is None
    # the fine-tune arm is scratch's twin: every block trained, same rate and epochs, only the start differs
    for row in (twin, scratch):
        config = run_config(row["run_dir"])
        assert row["recipe"] == "manual" == config["recipe"] and config["freeze_depth"] == row["freeze_depth"] == 0
        assert config["learning_rate"] == experiments.SCRATCH_LEARNING_RATE
    assert scratch["weights"] == "none" and all(len(row["curve"]) == 2 for row in rows[1:])
    splits = {json.dumps(validation_paths(row["run_dir"])) for row in rows}
    assert len(splits) == 1  # the same validation images for every method, the automatic recipe's too
    curves, bars = experiments.figures(results)
    assert len(curves.data) == 4 and len(bars.data[0].x) == 4
    level = curves.data[0]  # no epochs: a level line across the epochs of the others
    assert list(level.x) == [1, 2] and level.y[0] == level.y[1] == transfer["val_accuracy"]
    assert "no epochs" in level.name
    lesson = experiments.headline(results)
    assert lesson.startswith("Transfer (the automatic recipe) reached") and "from random weights" in lesson


def test_data_efficiency_fixes_validation_and_draws_subsets_from_training(demo_dir, tmp_path):
    results, _ = run("data-efficiency", demo_dir, tmp_path / "exp")
    dataset = ingest.load_labeled(demo_dir, 32)
    train_idx, val_idx = ingest.split(dataset, experiments.VALIDATION_FRACTION, experiments.SPLIT_SEED)
    expected_validation = [dataset.paths[i] for i in val_idx]
    training_paths = {dataset.paths[i] for i in train_idx}
    rows = results["rows"]
    # 8 per class -> 6 training images per class: sizes 2 and 5 with 2 seeds, then all (one seed)
    assert {(row["method"], row["per_class"], row["seed"]) for row in rows} == {
        (method, n, seed) for method in ("transfer", "scratch") for n, seed in
        ((2, 0), (2, 1), (5, 0), (5, 1), (6, 0))}
    subsets = {}
    for row in rows:
        assert validation_paths(row["run_dir"]) == expected_validation
        used = json.loads((Path(row["run_dir"]) / "dataset.json").read_text())["split"]["train"]
        assert set(used) <= training_paths and len(used) == 4 * row["per_class"] == row["train_images"]
        subsets[(row["method"], row["per_class"], row["seed"])] = set(used)
        config = run_config(row["run_dir"])
        assert row["weights"] == "none" and config["seed"] == row["seed"]
        if row["method"] == "transfer":  # the automatic recipe, and what it chose
            assert row["recipe"] == "auto" == config["recipe"] and row["chosen_kind"] == "linear"
            assert "freeze_depth" not in row
        else:                            # scratch: random weights, every block trained
            assert row["recipe"] == "manual" == config["recipe"] and row["freeze_depth"] == config["freeze_depth"] == 0
    assert subsets[("transfer", 2, 0)] == subsets[("scratch", 2, 0)]   # paired: same images for both methods
    assert subsets[("transfer", 2, 0)] < subsets[("transfer", 5, 0)]   # nested within a seed
    assert subsets[("transfer", 2, 0)] != subsets[("transfer", 2, 1)]
    points = {(item["method"], item["per_class"]): item for item in results["summary"]}
    assert points[("transfer", 2)]["n"] == 2 and points[("scratch", 6)]["all"] is True
    assert np.isclose(points[("transfer", 2)]["mean"], np.mean(
        [row["val_accuracy"] for row in rows if row["method"] == "transfer" and row["per_class"] == 2]), atol=1e-4)
    (figure,) = experiments.figures(results)
    assert len(figure.data) == 2 and figure.data[0].error_y.array is not None
    assert "automatic recipe" in figure.data[0].name
    assert "transfer reached" in experiments.headline(results)


def test_curves_draw_every_kind_of_row():
    """An automatic run whose fine-tuning won has a curve; one whose linear head won has one point (a level
    line); with nothing longer than one epoch every row is a point; a row without a curve still shows."""
    def row(label, curve, accuracy=0.5):
        return {"method": "transfer", "label": label, "curve": curve, "val_accuracy": accuracy,
                "train_seconds": 1.0}

    results = {"kind": "transfer-vs-scratch", "rows": [
        row("fine-tune won", [0.4, 0.6, 0.7]), row("linear won", [0.8]), row("no curve", [], 0.3)]}
    curves, bars = experiments.figures(results)
    assert [list(trace.x) for trace in curves.data] == [[1, 2, 3], [1, 3], [1, 3]]
    assert list(curves.data[2].y) == [0.3, 0.3] and len(bars.data[0].x) == 3
    results["rows"] = [row("linear won", [0.8]), row("also one epoch", [0.6])]
    curves, _ = experiments.figures(results)
    assert [list(trace.x) for trace in curves.data] == [[1], [1]]


def test_equal_step_epochs_gives_small_subsets_the_same_updates():
    assert experiments.equal_step_epochs(10, 96, 96) == 10
    assert experiments.equal_step_epochs(10, 96, 8) == 30   # 3 steps an epoch on all, 1 on 8 images
    assert experiments.equal_step_epochs(10, 96, 40) == 15


def test_unknown_kind_names_the_allowed_kinds(tmp_path):
    with pytest.raises(ValueError, match="freeze-depth, transfer-vs-scratch, data-efficiency"):
        experiments.run_experiment("nope", tmp_path, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()
    with pytest.raises(ValueError, match="allowed"):
        experiments.estimate_seconds("nope", 100)


def test_missing_weights_fail_before_training_in_plain_words(demo_dir, tmp_path):
    with pytest.raises(training.RunFailed, match="weights file not found"):
        experiments.run_experiment("freeze-depth", demo_dir, tmp_path / "exp", weights=str(tmp_path / "no.h5"),
                                   image_size=32, quick=True)
    results = experiments.read_results(tmp_path / "exp")
    assert results["state"] == "failed" and "weights file not found" in results["error"]
    assert results["rows"] == [] and not (tmp_path / "exp" / "runs").exists()
    status = runs.read_status(tmp_path / "exp")  # as a training run's: the job manager reads it
    assert status["state"] == "failed" and "weights file not found" in status["error"]


def test_a_stop_request_stops_between_runs(demo_dir, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    seen = []

    def stop_after_first(row, results):
        seen.append(row)
        experiments.stop_experiment(out)

    results = experiments.run_experiment("freeze-depth", demo_dir, out, on_row=stop_after_first, **TINY)
    assert results["state"] == "stopped" and len(results["rows"]) == 1 == len(seen)
    assert experiments.read_results(out)["state"] == "stopped" == runs.read_status(out)["state"]


def test_estimate_grows_with_the_work():
    quick = experiments.estimate_seconds("freeze-depth", 120, 64, quick=True)
    full = experiments.estimate_seconds("freeze-depth", 120, 64, quick=False)
    assert 0 < quick < full < experiments.estimate_seconds("freeze-depth", 120, 128, quick=False)
    for kind in experiments.KINDS:
        plan = experiments.plan_summary(kind, 120, 64, quick=True)
        assert plan["runs"] >= 3 and plan["seconds"] > 0
    assert experiments.plan_summary("data-efficiency", 120, quick=False)["runs"] == 26
    quick_freeze = experiments.plan_summary("freeze-depth", 120, quick=True)
    assert quick_freeze["runs"] == 3 and quick_freeze["probes"] == 5   # k = 5, 3, 0; blocks 1-5
    assert experiments.plan_summary("transfer-vs-scratch", 120, quick=True)["probes"] == 0


def test_estimate_knows_when_the_automatic_recipe_fine_tunes():
    """From core.auto's threshold of training pictures a class, the automatic recipe fine-tunes block 5 too."""
    from core import auto, experiment_plan

    assert experiment_plan.FINE_TUNE_MIN_PER_CLASS == auto.FINE_TUNE_MIN_PER_CLASS
    automatic = experiments.plan_runs("transfer-vs-scratch")[0]
    threshold = auto.FINE_TUNE_MIN_PER_CLASS

    def seconds(per_class):
        return experiment_plan._run_seconds(automatic, 4 * per_class, 20, 64, 10, experiments.CPU_MACS_PER_SECOND,
                                            4)

    assert seconds(threshold) > 2 * seconds(threshold - 1)


def test_the_state_of_an_experiment_is_its_status_as_a_job(tmp_path):
    """results.json says what the experiment's process last wrote; status.json, which the job manager keeps
    too (a process that died is "failed" with why), has the last word; a queued experiment, without
    results.json yet, reads as its job's settings and no rows."""
    out = tmp_path / "exp"
    runs.write_json_atomic(out / "results.json", {"kind": "freeze-depth", "state": "running", "rows": [{"a": 1}]})
    assert experiments.read_results(out)["state"] == "running"  # run by hand, without a status
    runs.RunWriter(out).set_status("failed", error="the training process was killed (signal 9)")
    results = experiments.read_results(out)
    assert results["state"] == "failed" and "killed" in results["error"] and results["rows"] == [{"a": 1}]

    queued = tmp_path / "queued"
    runs.RunWriter(queued).write_json("job.json", {"kind": "experiment", "experiment": {
        "kind": "data-efficiency", "weights": "none", "image_size": 32, "epochs": None, "quick": True}})
    runs.RunWriter(queued).set_status("queued")
    results = experiments.read_results(queued)
    assert results["state"] == "queued" and results["rows"] == [] and results["title"] == experiments.KIND_TITLES[
        "data-efficiency"]
    assert experiments.read_results(tmp_path / "nothing") is None


def test_a_worker_trains_several_runs_per_process_and_survives_a_killed_one(demo_dir, tmp_path):
    """Experiments train their runs in a worker process that is reused (TensorFlow's import is paid
    once per few runs); a run in a reused process gives the same result as the first, and a worker
    killed mid-run fails that run with a reason while the next run gets a fresh process."""
    import os
    import signal
    import threading

    from core.config import TrainConfig

    dataset = ingest.load_labeled(demo_dir, 32)
    config = TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1, "freeze_depth": 3,
                                    "batch_size": 8, "seed": 0})
    with experiments.TrainingWorker(runs_per_process=2) as worker:
        first = worker.train(config, demo_dir, tmp_path / "r1", dataset)
        second = worker.train(config, demo_dir, tmp_path / "r2", dataset)
        assert worker.processes_started == 1
        assert first.state == second.state == "done"
        assert second.val_accuracy == first.val_accuracy  # nothing leaks from one run into the next

        slow = config.replace(epochs=200)
        killed_dir = tmp_path / "r3"

        def kill_when_training():
            for _ in range(1200):
                if (killed_dir / "events.jsonl").exists() and worker._child is not None:
                    os.kill(worker._child.pid, signal.SIGKILL)
                    return
                threading.Event().wait(0.05)

        killer = threading.Thread(target=kill_when_training, daemon=True)
        killer.start()
        killed = worker.train(slow, demo_dir, killed_dir, dataset)   # a third run: a fresh process
        killer.join()
        assert killed.state == "failed" and "ended unexpectedly" in killed.error
        assert runs.read_status(killed_dir)["state"] == "failed"
        after = worker.train(config, demo_dir, tmp_path / "r4", dataset)
        assert after.state == "done" and worker.processes_started == 3


def test_a_stop_reaches_the_run_in_progress_within_a_batch(demo_dir, tmp_path):
    """Stop while an experiment's run trains (its first batch event seen): that run stops within a batch,
    keeps its best epoch, and no later run starts."""
    import threading

    out = tmp_path / "exp"
    done = {}
    worker = threading.Thread(target=lambda: done.update(results=experiments.run_experiment(
        "transfer-vs-scratch", demo_dir, out, weights="none", image_size=32, epochs=30, quick=True)))
    worker.start()

    def training_run():
        current = (runs.read_json(out / "results.json") or {}).get("current")
        if current and any(e["type"] == "batch" for e in runs.read_all_events(current)):
            return current
        return None

    from app_helpers import wait_for

    current = wait_for(training_run, 120, interval=0.05, message="a run of the experiment to train")
    experiments.stop_experiment(out)
    worker.join(timeout=120)
    assert not worker.is_alive()
    results = done["results"]
    assert results["state"] == "stopped"
    status = runs.read_status(current)
    assert status["state"] == "stopped"
    epochs = [e for e in runs.read_all_events(current) if e["type"] == "epoch"]
    assert len(epochs) < 30  # it did not train on to the end
    later = [row for row in results["rows"] if row.get("run_dir") and Path(row["run_dir"]) != Path(current)]
    assert all(runs.read_status(row["run_dir"])["state"] == "done" for row in later)  # only those before it
    assert len(results["rows"]) < results["planned"]
