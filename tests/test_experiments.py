"""Experiments: each kind trains ordinary runs, writes results.json row by row and the charts; the
data-efficiency validation set stays fixed; bad kinds and missing weights fail in plain words."""
import json
from pathlib import Path

import numpy as np
import pytest

from core import experiments, ingest, runs, training

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


def test_freeze_depth_writes_rows_runs_and_charts(demo_dir, tmp_path):
    results, seen = run("freeze-depth", demo_dir, tmp_path / "exp")
    assert results["state"] == "done" and results["planned"] == 3
    assert [row["freeze_depth"] for row in results["rows"]] == list(experiments.QUICK_FREEZE_DEPTHS)
    assert seen == [(1, 1), (2, 2), (3, 3)]
    for row in results["rows"]:
        assert row["method"] == "transfer" and 0.0 <= row["val_accuracy"] <= 1.0 and row["train_seconds"] > 0
        assert runs.read_status(row["run_dir"])["state"] == "done"  # an ordinary run directory
        assert Path(row["run_dir"]).parent == tmp_path / "exp" / "runs"
        assert len(row["curve"]) == 1
    assert json.loads((tmp_path / "exp" / "results.json").read_text()) == json.loads(json.dumps(results))
    charts = (tmp_path / "exp" / "charts.html").read_text()
    assert "Plotly.newPlot" in charts and len(charts) > 1_000_000  # plotly.js inlined: works offline
    (figure,) = experiments.figures(results)
    assert {trace.name for trace in figure.data} == {"validation accuracy", "training time (s)"}


def test_transfer_vs_scratch_uses_one_split_and_draws_curves(demo_dir, tmp_path):
    results, _ = run("transfer-vs-scratch", demo_dir, tmp_path / "exp", epochs=2)
    rows = results["rows"]
    assert [row["method"] for row in rows] == ["transfer", "fine-tune", "scratch", "autoencoder"]
    assert [row["freeze_depth"] for row in rows[:3]] == [5, experiments.QUICK_BEST_K, 0]
    assert rows[2]["weights"] == "none" and all(len(row["curve"]) == 2 for row in rows)
    splits = {json.dumps(validation_paths(row["run_dir"])) for row in rows}
    assert len(splits) == 1  # the same validation images for every method
    curves, bars = experiments.figures(results)
    assert len(curves.data) == 4 and len(bars.data[0].x) == 4
    assert experiments.best_fine_tune(results) is rows[1]


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
        expected_depth = experiments.TRANSFER_FREEZE_DEPTH if row["method"] == "transfer" else 0
        assert row["freeze_depth"] == expected_depth and row["weights"] == "none"
    assert subsets[("transfer", 2, 0)] == subsets[("scratch", 2, 0)]   # paired: same images for both methods
    assert subsets[("transfer", 2, 0)] < subsets[("transfer", 5, 0)]   # nested within a seed
    assert subsets[("transfer", 2, 0)] != subsets[("transfer", 2, 1)]
    points = {(item["method"], item["per_class"]): item for item in results["summary"]}
    assert points[("transfer", 2)]["n"] == 2 and points[("scratch", 6)]["all"] is True
    assert np.isclose(points[("transfer", 2)]["mean"], np.mean(
        [row["val_accuracy"] for row in rows if row["method"] == "transfer" and row["per_class"] == 2]), atol=1e-4)
    (figure,) = experiments.figures(results)
    assert len(figure.data) == 2 and figure.data[0].error_y.array is not None
    assert "transfer reached" in experiments.headline(results)


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


def test_cli_unknown_kind_fails_in_one_line(tmp_path, capsys):
    from core.__main__ import main

    assert main(["experiment", "nope", str(tmp_path), "--out", str(tmp_path / "exp")]) != 0
    error = capsys.readouterr().err
    assert "freeze-depth" in error and "Traceback" not in error


def test_missing_weights_fail_before_training_in_plain_words(demo_dir, tmp_path):
    with pytest.raises(training.RunFailed, match="weights file not found"):
        experiments.run_experiment("freeze-depth", demo_dir, tmp_path / "exp", weights=str(tmp_path / "no.h5"),
                                   image_size=32, quick=True)
    results = experiments.read_results(tmp_path / "exp")
    assert results["state"] == "failed" and "weights file not found" in results["error"]
    assert results["rows"] == [] and not (tmp_path / "exp" / "runs").exists()


def test_a_stop_request_stops_between_runs(demo_dir, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    seen = []

    def stop_after_first(row, results):
        seen.append(row)
        experiments.stop_experiment(out)

    results = experiments.run_experiment("freeze-depth", demo_dir, out, on_row=stop_after_first, **TINY)
    assert results["state"] == "stopped" and len(results["rows"]) == 1 == len(seen)
    assert experiments.read_results(out)["state"] == "stopped"


def test_estimate_grows_with_the_work():
    quick = experiments.estimate_seconds("freeze-depth", 120, 64, quick=True)
    full = experiments.estimate_seconds("freeze-depth", 120, 64, quick=False)
    assert 0 < quick < full < experiments.estimate_seconds("freeze-depth", 120, 128, quick=False)
    for kind in experiments.KINDS:
        plan = experiments.plan_summary(kind, 120, 64, quick=True)
        assert plan["runs"] >= 3 and plan["seconds"] > 0
    assert experiments.plan_summary("data-efficiency", 120, quick=False)["runs"] == 26


def test_experiments_are_listed_per_owner(tmp_path):
    mine = experiments.new_experiment_dir("owner_a-123456789", "freeze-depth")
    runs.write_json_atomic(mine / "results.json", {"kind": "freeze-depth", "state": "done", "rows": []})
    other = experiments.new_experiment_dir("owner_b-123456789", "freeze-depth")
    runs.write_json_atomic(other / "results.json", {"kind": "freeze-depth", "state": "done", "rows": []})
    assert [item["path"] for item in experiments.list_experiments("owner_a-123456789")] == [str(mine)]
    with pytest.raises(ValueError):
        experiments.experiments_root("../etc")
    # a "running" experiment whose process is gone reads as failed, with the reason
    runs.write_json_atomic(mine / "results.json", {"kind": "freeze-depth", "state": "running", "pid": -5,
                                                   "rows": []})
    assert experiments.read_results(mine)["state"] == "failed"
    assert experiments.running_experiments() == 0


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
