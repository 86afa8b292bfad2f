"""Experiments are jobs of their own kind in the job manager: the same queue and limit as training runs, the same
stop (a request the run in progress sees within a batch, the experiment landing "stopped"), the same liveness
check (a killed experiment fails with a reason), and the lists of training runs leave them out.

Real parts, made tiny: experiments train at 32 px from random weights on 32 demo pictures. The training runs
that hold the slots are the job tests' stand-in (tests/jobs_helpers.py), which speaks the run-directory
contract without TensorFlow: a wrapper passed as the manager's ``python`` runs ``-m core train`` with the
stand-in and every other command (the experiment) with the real interpreter.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path

import psutil
import pytest

from core import jobs, runs
from core.__main__ import main as cli_main
from core.config import TrainConfig
from jobs_helpers import fake_data, make_fake_python, wait_for

TINY = {"weights": "none", "image_size": 32}


@pytest.fixture
def manager_of(tmp_path):
    """Make a JobManager on the test's workspace (no polling thread: the test refreshes it); each is shut down,
    its processes stopped, when the test ends."""
    made = []

    def make(**kwargs):
        manager = jobs.JobManager(start_thread=False, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(stop_running=True, timeout=20)


def stand_in_for_training(folder: Path) -> str:
    """An interpreter for the manager: ``-m core train ...`` goes to the stand-in, anything else to Python."""
    fake = make_fake_python(folder)
    path = Path(folder) / "python-with-fake-training"
    path.write_text(f'#!/bin/sh\nif [ "$3" = "train" ]; then exec {fake} "$@"; fi\nexec {sys.executable} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def states(manager) -> dict[str, str]:
    return {row["id"]: row["status"].get("state") for row in runs.list_runs(manager.root, kind=None)}


def refresh_until(manager, predicate, timeout: float, message: str, limit: int | None = None):
    """Refresh the manager until predicate() holds; with ``limit``, check at every step that no more jobs run."""
    def step():
        manager.refresh()
        if limit is not None:
            running = [run_id for run_id, state in states(manager).items() if state == "running"]
            assert len(manager.running()) <= limit and len(running) <= limit, states(manager)
        return predicate()

    return wait_for(step, timeout, interval=0.1, message=message)


def test_an_experiment_queues_behind_training_runs_within_the_limit_and_is_no_training_run(demo_dir, tmp_path,
                                                                                           manager_of, capsys,
                                                                                           monkeypatch):
    manager = manager_of(max_concurrent=1, python=stand_in_for_training(tmp_path))
    release = tmp_path / "release"
    held = fake_data(tmp_path / "held", hold_file=str(release))
    first = manager.submit(TrainConfig.from_dict({**TINY, "epochs": 1}), held, "owner-a")
    experiment = manager.submit_experiment("freeze-depth", demo_dir, "owner-b", quick=True, epochs=1, **TINY)
    second = manager.submit(TrainConfig.from_dict({**TINY, "epochs": 1}), held, "owner-a")
    assert manager.running() == [first] and manager.queue() == [experiment, second]
    assert manager.status(experiment, owner="owner-b")["queue_position"] == 1
    job = runs.read_json(manager.root / experiment / "job.json")
    assert job["kind"] == "experiment" and job["owner"] == "owner-b"
    assert job["command"][1:5] == ["-m", "core", "experiment", "freeze-depth"]
    with pytest.raises(PermissionError):
        manager.stop(experiment, owner="owner-a")

    # the lists of training runs leave the experiment out; asked for, it is there
    assert {row["id"] for row in manager.runs()} == {first, second}
    assert {row["id"] for row in runs.list_runs(manager.root)} == {first, second}
    assert manager.runs(owner="owner-b") == []
    assert [row["id"] for row in manager.runs(owner="owner-b", kind="experiment")] == [experiment]
    # the command line's list shows both kinds, each with its kind (they share the queue an operator watches)
    capsys.readouterr()
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")  # the command's own manager starts nothing: the slot is taken
    assert cli_main(["jobs", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(row["id"], row["kind"], row["state"]) for row in listed} == {
        (first, "train", "running"), (experiment, "experiment", "queued"), (second, "train", "queued")}

    release.write_text("")
    refresh_until(manager, lambda: manager.running() == [experiment], 30, "the experiment to start", limit=1)
    assert manager.queue() == [second]
    # a second manager on the folder (the command line's, a restarted server) sees it running, the run queued
    other = manager_of(max_concurrent=1, python=stand_in_for_training(tmp_path))
    assert other.running() == [experiment] and other.queue() == [second]
    other.shutdown()
    manager.stop(experiment, owner="owner-b")
    refresh_until(manager, lambda: states(manager)[experiment] == "stopped", 120, "the experiment to stop", limit=1)
    refresh_until(manager, lambda: states(manager)[second] == "done", 60, "the queued run to train", limit=1)


def test_stopping_an_experiment_stops_the_run_in_progress_within_a_batch(demo_dir, manager_of):
    manager = manager_of(max_concurrent=2, stop_grace_seconds=120)
    experiment = manager.submit_experiment("transfer-vs-scratch", demo_dir, "owner-a", quick=True, epochs=30,
                                           **TINY)
    out = manager.root / experiment

    def run_training():
        current = (runs.read_json(out / "results.json") or {}).get("current")
        if current and any(event["type"] == "batch" for event in runs.read_all_events(current)):
            return current
        return None

    current = refresh_until(manager, run_training, 180, "a run of the experiment to train")
    manager.stop(experiment, owner="owner-a")
    asked = runs.stop_request_time(out)
    refresh_until(manager, lambda: experiment not in manager.running(), 120, "the experiment's process to end")
    status = manager.status(experiment)
    assert status["state"] == "stopped" and not status.get("error"), status
    inner = runs.read_status(current)
    assert inner["state"] == "stopped", inner
    late = [event for event in runs.read_all_events(current) if event["type"] == "batch" and event["time"] >= asked]
    assert len(late) <= 2, late   # the batch under way when the stop was asked, at most one more
    results = runs.read_json(out / "results.json")
    assert results["state"] == "stopped"
    *before, last = results["rows"]   # no run started after the stopped one
    assert last["run_dir"] == current and last["state"] == "stopped"
    assert all(row["state"] == "done" for row in before)


def test_a_killed_experiment_fails_with_a_reason_and_takes_its_training_process_along(demo_dir, manager_of):
    """Killed while one of its runs trains (30 epochs: longer than the test waits), the experiment is marked failed
    by the manager, and the process training its run ends too instead of training on for nobody."""
    manager = manager_of(max_concurrent=1)
    experiment = manager.submit_experiment("transfer-vs-scratch", demo_dir, "owner-a", quick=True, epochs=30,
                                           **TINY)
    out = manager.root / experiment
    pid = runs.read_json(out / "job.json")["pid"]

    def training_process():
        current = (runs.read_json(out / "results.json") or {}).get("current")
        if not current or not any(event["type"] == "batch" for event in runs.read_all_events(current)):
            return None
        return psutil.Process(pid).children(recursive=True)

    children = refresh_until(manager, training_process, 180, "a run of the experiment to train")
    os.kill(pid, signal.SIGKILL)
    status = refresh_until(manager, lambda: manager.status(experiment)["state"] != "running"
                           and manager.status(experiment), 30, "the experiment to be marked failed")
    assert status["state"] == "failed" and "killed" in status["error"], status
    assert runs.read_json(out / "results.json")["state"] == "running"  # what the dead process left...
    from core import experiments

    assert experiments.read_results(out)["state"] == "failed"          # ...is read as the manager says
    assert "killed" in experiments.read_results(out)["error"]
    wait_for(lambda: not any(alive(child) for child in children), 5, interval=0.1,
             message="the experiment's training process to end with it")


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
