"""The job manager's own logic (queue, owners, ids, failures, restart) against a stand-in job.

The stand-in speaks the run-directory contract without TensorFlow (see jobs_helpers), so these
run in seconds; tests/test_reliability.py drives the real ``python -m core train``.
"""
from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from core import jobs, runs
from core.config import ConfigError, TrainConfig
from tests.jobs_helpers import fake_data, home, make_fake_python, managers, wait_for  # noqa: F401 (fixtures)

FAST = TrainConfig(epochs=1)


@pytest.fixture
def fake_python(home):
    return make_fake_python(home)


def state_of(manager, run_id):
    return manager.status(run_id).get("state")


def test_submit_writes_the_run_folder_and_runs_to_done(home, fake_python, managers):
    manager = managers(python=fake_python, max_concurrent=1, poll_seconds=0.05)
    data = fake_data(home / "data")
    run_id = manager.submit(TrainConfig(epochs=2, seed=7), str(data), owner="alice")

    wait_for(lambda: state_of(manager, run_id) == "done", 20, message="the run to finish")
    run_dir = runs.runs_root() / run_id
    assert manager.root == runs.runs_root()
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 7
    job = json.loads((run_dir / "job.json").read_text())
    assert job["owner"] == "alice" and job["data"] == str(data)
    assert job["command"][1:4] == ["-m", "core", "train"] and "--out" in job["command"]
    assert isinstance(job["pid"], int) and job["create_time"] > 0
    status = manager.status(run_id)
    assert status["pid"] == job["pid"] and status["device"] == "fake"
    assert "fake training started" in (run_dir / "log.txt").read_text()
    assert len([e for e in runs.read_all_events(run_dir) if e["type"] == "epoch"]) == 2
    wait_for(lambda: manager.running() == [], 5, message="the process to be reaped")


def test_queue_positions_and_start_order(home, fake_python, managers):
    manager = managers(python=fake_python, max_concurrent=1, start_thread=False)
    hold = home / "release"
    data = fake_data(home / "data", hold_file=str(hold))
    ids = [manager.submit(FAST, str(data), owner="alice", run_id=f"run-{i}") for i in range(4)]

    assert state_of(manager, "run-0") == "running"
    assert "queue_position" not in manager.status("run-0")
    assert manager.queue() == ids[1:]
    assert [manager.status(r)["queue_position"] for r in ids[1:]] == [1, 2, 3]
    assert all(state_of(manager, r) == "queued" for r in ids[1:])
    by_id = {row["id"]: row for row in manager.runs()}
    assert by_id["run-3"]["queue_position"] == 3

    manager.stop("run-2", owner="alice")  # leaving the queue moves those behind it up
    assert manager.queue() == ["run-1", "run-3"]
    assert manager.status("run-3")["queue_position"] == 2

    hold.touch()
    finished = []
    deadline = time.monotonic() + 30
    while len(finished) < 3 and time.monotonic() < deadline:
        manager.refresh()
        assert len(manager.running()) <= 1
        for run_id in ("run-0", "run-1", "run-3"):
            if run_id not in finished and state_of(manager, run_id) == "done":
                finished.append(run_id)
        time.sleep(0.05)
    assert finished == ["run-0", "run-1", "run-3"]


def test_stopping_a_queued_run_never_starts_it(home, fake_python, managers):
    manager = managers(python=fake_python, max_concurrent=1, poll_seconds=0.05)
    data = fake_data(home / "data", hold_file=str(home / "never"))
    first = manager.submit(FAST, str(data), owner="alice")
    second = manager.submit(FAST, str(data), owner="alice")
    manager.stop(second)
    manager.stop(first)
    wait_for(lambda: state_of(manager, first) == "stopped", 20, message="the running run to stop")
    time.sleep(0.3)
    assert state_of(manager, second) == "stopped"
    second_dir = runs.runs_root() / second
    assert "pid" not in json.loads((second_dir / "job.json").read_text())
    assert not (second_dir / "log.txt").exists()
    manager.stop(first)  # stopping a finished run changes nothing
    assert state_of(manager, first) == "stopped"


def test_owners_see_and_control_only_their_own_runs(home, fake_python, managers):
    manager = managers(python=fake_python, max_concurrent=1, start_thread=False)
    data = fake_data(home / "data", hold_file=str(home / "never"))
    mine = manager.submit(FAST, str(data), owner="session-a")
    theirs = manager.submit(FAST, str(data), owner="session-b")

    assert [row["id"] for row in manager.runs(owner="session-a")] == [mine]
    assert [row["id"] for row in manager.runs(owner="session-b")] == [theirs]
    assert {row["id"] for row in manager.runs()} == {mine, theirs}
    assert manager.runs(owner="nobody") == []
    assert manager.status(mine, owner="session-a")["state"] == "running"
    with pytest.raises(PermissionError):
        manager.status(mine, owner="session-b")
    with pytest.raises(PermissionError):
        manager.stop(theirs, owner="session-a")
    assert manager.queue() == [theirs]  # the refused stop did nothing
    with pytest.raises(jobs.RunNotFound):
        manager.status("20990101-000000-0000000000")
    with pytest.raises(ValueError):
        manager.submit(FAST, str(data), owner="")


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", ".", "", "/etc", "a\\b", "x" * 100, None])
def test_invalid_run_ids_are_rejected_everywhere(home, fake_python, managers, bad_id):
    manager = managers(python=fake_python, start_thread=False)
    data = fake_data(home / "data")
    calls = [lambda: manager.status(bad_id), lambda: manager.stop(bad_id)]
    if bad_id is not None:  # submit's run_id=None means "make a new id"
        calls.append(lambda: manager.submit(FAST, str(data), owner="a", run_id=bad_id))
    for call in calls:
        with pytest.raises(runs.RunIdError):
            call()
    assert list(manager.root.iterdir()) == []
    assert not (home / "x").exists()


def test_invalid_config_or_missing_data_launches_nothing(home, fake_python, managers):
    manager = managers(python=fake_python, start_thread=False)
    data = fake_data(home / "data")
    bad = TrainConfig()
    bad.learning_rate = -1.0
    bad.image_size = 5
    with pytest.raises(ConfigError) as error:
        manager.submit(bad, str(data), owner="a")
    assert set(error.value.problems) == {"learning_rate", "image_size"}
    with pytest.raises(FileNotFoundError):
        manager.submit(FAST, str(home / "no-such-data"), owner="a")
    manager.submit(FAST, str(data), owner="a", run_id="taken")
    with pytest.raises(FileExistsError):
        manager.submit(FAST, str(data), owner="a", run_id="taken")
    assert [p.name for p in manager.root.iterdir()] == ["taken"]
    assert manager.running() == ["taken"] and manager.queue() == []


def test_relative_data_path_is_resolved_against_the_callers_folder(home, fake_python, managers, monkeypatch):
    fake_data(home / "data")
    monkeypatch.chdir(home)
    manager = managers(python=fake_python, poll_seconds=0.05)
    run_id = manager.submit(FAST, "data", owner="a")
    wait_for(lambda: state_of(manager, run_id) == "done", 20, message="the run to finish")
    assert runs.read_json(manager.root / run_id / "job.json")["data"] == str(home / "data")


@pytest.mark.parametrize("exit_code, words", [(1, "exited with code 1 before finishing: out of disk"),
                                              (2, "rejected its arguments (exit code 2): out of disk"),
                                              (0, "exited without reporting a result")])
def test_a_process_that_ends_without_a_final_state_fails_in_plain_words(
        home, fake_python, managers, exit_code, words):
    manager = managers(python=fake_python, poll_seconds=0.05)
    data = fake_data(home / "data", exit_code=exit_code, message="out of disk")
    run_id = manager.submit(FAST, str(data), owner="a")
    status = wait_for(lambda: manager.status(run_id) if state_of(manager, run_id) == "failed" else None, 20,
                      message="the run to be marked failed")
    assert words in status["error"]
    assert runs.read_all_events(manager.root / run_id)[-1] == {
        "type": "error", "message": status["error"], "time": pytest.approx(time.time(), abs=30)}


def test_exit_reasons_for_signals():
    assert jobs.exit_reason(-9) == "the training process was killed (signal 9) - possibly out of memory"
    assert jobs.exit_reason(-15) == "the training process was terminated (signal 15)"
    assert "SIGSEGV" in jobs.exit_reason(-11)


def test_a_run_that_ignores_a_stop_is_ended_after_the_grace_period(home, fake_python, managers):
    manager = managers(python=fake_python, poll_seconds=0.05, stop_grace_seconds=0.5)
    data = fake_data(home / "data", ignore_stop=True, hold_file=str(home / "never"))
    run_id = manager.submit(FAST, str(data), owner="a")
    wait_for(lambda: manager.status(run_id).get("pid"), 20, message="the run to start")
    asked = time.monotonic()
    manager.stop(run_id, owner="a")
    status = wait_for(lambda: manager.status(run_id) if state_of(manager, run_id) == "stopped" else None, 10,
                      message="the run to be ended")
    elapsed = time.monotonic() - asked
    print(f"\n[jobs] run ignoring its stop request ended after {elapsed:.2f} s (grace 0.5 s)")
    assert 0.5 <= elapsed < 5
    assert "did not stop within 0.5 s" in status["error"]


def test_the_background_thread_moves_the_queue_without_refresh_calls(home, fake_python, managers):
    manager = managers(python=fake_python, max_concurrent=1, poll_seconds=0.05)
    data = fake_data(home / "data")
    ids = [manager.submit(FAST, str(data), owner="a") for _ in range(3)]
    wait_for(lambda: all(state_of(manager, r) == "done" for r in ids), 30, message="all three runs")
    wait_for(lambda: manager.running() == [], 5, message="the last process to be reaped")
    assert manager.queue() == []


def test_the_manager_survives_a_job_that_cannot_start(home, managers):
    manager = managers(python=str(home / "no-such-python"), max_concurrent=1, start_thread=False)
    data = fake_data(home / "data")
    first = manager.submit(FAST, str(data), owner="a")
    second = manager.submit(FAST, str(data), owner="a")
    for run_id in (first, second):
        status = manager.status(run_id)
        assert status["state"] == "failed" and "could not be started" in status["error"]
    assert manager.running() == [] and manager.queue() == []


def test_restart_rebuilds_queue_and_fails_runs_whose_process_is_gone(home, fake_python, managers):
    root = runs.runs_root()
    data = fake_data(home / "data")
    first = managers(root, python=fake_python, max_concurrent=1, start_thread=False)
    hold = home / "release"
    held = fake_data(home / "held", hold_file=str(hold))
    alive = first.submit(FAST, str(held), owner="a", run_id="r0-alive")
    queued = [first.submit(FAST, str(data), owner="a", run_id=f"r{i}-queued") for i in (2, 1)]
    first.shutdown()  # the server goes away; its process keeps running

    # runs left "running" by a dead server: a dead pid, a reused pid (ours, wrong start time), no pid
    dead = subprocess_that_exited()
    for run_id, job_fields in (("r5-dead", {"pid": dead, "create_time": 1.0}),
                               ("r6-reused", {"pid": os.getpid(), "create_time": 12345.0}),
                               ("r7-nopid", {})):
        writer = runs.RunWriter(root / run_id)
        writer.write_json("config.json", FAST.to_dict())
        writer.write_json("job.json", {"owner": "a", "data": str(data), "submitted": 1.0, **job_fields})
        writer.set_status("running")
    finished = runs.RunWriter(root / "r8-done")
    finished.set_status("done")

    second = managers(root, python=fake_python, max_concurrent=1, poll_seconds=0.05)
    for run_id in ("r5-dead", "r6-reused", "r7-nopid"):
        status = second.status(run_id)
        assert status["state"] == "failed" and status["error"] == jobs.RESTART_ERROR
    assert state_of(second, "r8-done") == "done"
    # the live process from before the restart is adopted: it holds the only slot
    assert second.running() == ["r0-alive"] and state_of(second, "r0-alive") == "running"
    assert second.queue() == queued  # submission order, not id order
    hold.touch()
    wait_for(lambda: all(state_of(second, r) == "done" for r in ["r0-alive", *queued]), 30,
             message="the adopted and queued runs")


def test_an_adopted_process_that_dies_is_marked_failed(home, fake_python, managers):
    root = runs.runs_root()
    held = fake_data(home / "held", hold_file=str(home / "never"))
    first = managers(root, python=fake_python, start_thread=False)
    run_id = first.submit(FAST, str(held), owner="a")
    first.shutdown()
    second = managers(root, python=fake_python, poll_seconds=0.05)
    assert second.running() == [run_id]
    pid = runs.read_json(root / run_id / "job.json")["pid"]
    os.kill(pid, signal.SIGKILL)
    first.refresh()  # the old manager reaps its child, as the dead server's OS would
    status = wait_for(lambda: second.status(run_id) if state_of(second, run_id) == "failed" else None, 10,
                      message="the adopted run to fail")
    assert "started before the server restarted" in status["error"]


def test_default_concurrency(monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "3")
    assert jobs.default_max_concurrent() == 3
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "0")
    with pytest.raises(ValueError, match=jobs.MAX_JOBS_ENV):
        jobs.default_max_concurrent()
    monkeypatch.delenv(jobs.MAX_JOBS_ENV)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not jobs.gpu_visible()
    assert jobs.default_max_concurrent() == (2 if (os.cpu_count() or 1) >= 2 else 1)
    with pytest.raises(ValueError, match="max_concurrent"):
        jobs.JobManager(max_concurrent=0, start_thread=False)


def subprocess_that_exited() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    return child.pid


def test_a_visible_gpu_means_one_run_at_a_time(monkeypatch, tmp_path, home, fake_python, managers):
    """A fake ``nvidia-smi`` on PATH stands for a GPU (none here): the limit becomes 1 and a second run queues."""
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0000)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(jobs.MAX_JOBS_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert jobs.gpu_visible() and jobs.default_max_concurrent() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # the card hidden from this server: CPU rules
    assert not jobs.gpu_visible()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    smi.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")  # a driver without a card
    assert not jobs.gpu_visible()
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0000)'\n")
    manager = managers(python=fake_python, start_thread=False)  # no limit given: the device decides
    assert manager.max_concurrent == 1
    hold = home / "release"
    data = fake_data(home / "data", hold_file=str(hold))
    ids = [manager.submit(FAST, str(data), owner=owner, run_id=f"gpu-{i}") for i, owner in enumerate(("ann", "bo"))]
    assert [state_of(manager, run_id) for run_id in ids] == ["running", "queued"]
    hold.touch()
    deadline = time.monotonic() + 30
    while state_of(manager, ids[1]) != "done" and time.monotonic() < deadline:
        manager.refresh()
        assert len(manager.running()) <= 1
        time.sleep(0.05)
    assert [state_of(manager, run_id) for run_id in ids] == ["done", "done"]


def test_two_managers_on_one_folder_share_the_limit_and_the_queue(home, fake_python, managers):
    """The app's manager (polling) and a command line's (``python -m core jobs``, here a second manager on
    the same folder): each sees what the other started, the limit holds across both, and the app's manager
    starts the run the command line queued once a slot is free."""
    hold = home / "release"
    data = fake_data(home / "data", hold_file=str(hold))
    app = managers(python=fake_python, max_concurrent=1, poll_seconds=0.05)
    first = app.submit(FAST, str(data), owner="alice", run_id="app-run")
    assert state_of(app, first) == "running"

    command_line = managers(python=fake_python, max_concurrent=1, start_thread=False)
    assert command_line.running() == [first]  # it watches the app's run, so it counts it
    queued = command_line.submit(FAST, str(fake_data(home / "quick")), owner="cli", run_id="cli-run")
    assert state_of(command_line, queued) == "queued"
    wait_for(lambda: app.queue() == [queued], 5, message="the app's manager to see the queued run")
    assert app.status(queued)["queue_position"] == 1

    most = 0
    hold.write_text("go")
    for _ in range(200):
        states = [state_of(app, first), state_of(app, queued)]
        most = max(most, states.count("running"))
        if states == ["done", "done"]:
            break
        time.sleep(0.02)
    assert states == ["done", "done"] and most == 1
    assert runs.read_json(runs.runs_root() / queued / "job.json")["pid"] != runs.read_json(
        runs.runs_root() / first / "job.json")["pid"]
    command_line.refresh()  # the command line's manager finds it started, and starts nothing twice
    epochs = [e for e in runs.read_all_events(runs.runs_root() / queued) if e["type"] == "epoch"]
    assert command_line.queue() == [] and len(epochs) == 1  # trained once


def test_a_bad_executor_setting_is_named_with_what_is_allowed(home, monkeypatch, tmp_path):
    from core import executors

    monkeypatch.setenv(executors.EXECUTOR_ENV, "slurm")
    with pytest.raises(executors.ExecutorError, match=r"TRANSFER_STUDIO_EXECUTOR='slurm'; expected one of: local, ray"):
        jobs.JobManager(start_thread=False)
    monkeypatch.setenv(executors.EXECUTOR_ENV, "ray")
    monkeypatch.setenv(executors.RAY_ADDRESS_ENV, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(executors.ExecutorError, match=r"cannot reach the Ray cluster at http://127.0.0.1:9 "
                                                      r"\(ConnectionError\): start its head"):
        jobs.JobManager(start_thread=False)
    monkeypatch.setenv(executors.RAY_RESOURCES_ENV, "lots")
    with pytest.raises(executors.ExecutorError, match="TRANSFER_STUDIO_RAY_RESOURCES='lots'; expected a JSON object"):
        jobs.JobManager(start_thread=False)
    assert not (home / "home" / "runs").exists() or list((home / "home" / "runs").iterdir()) == []


def test_a_ray_node_that_cannot_see_the_workspace_says_so(tmp_path):
    """The Ray entrypoint's own guard, run here by the shell as a node would run it (no cluster needed: what
    a node does with the line is plain sh): a run folder the node cannot see ends it with exit 78 and the
    words the run's error will carry; with the folder there, it becomes the run's command (exec)."""
    import subprocess
    import types

    from core import executors

    line = executors.RayExecutor.entrypoint(types.SimpleNamespace(cwd=tmp_path), tmp_path / "not-mounted",
                                            ["/bin/echo", "trained"])
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert done.returncode == executors.NO_WORKSPACE_EXIT
    words = done.stdout.strip()
    assert words == (f"this Ray node cannot see the workspace folder {tmp_path / 'not-mounted'}: mount the "
                     "shared workspace at the same path on every node")
    info = types.SimpleNamespace(driver_exit_code=done.returncode, message=f"Job failed\n{words}\n",
                                 status=types.SimpleNamespace(name="FAILED"))
    assert executors.RayExecutor.reason(None, info, tmp_path / "log.txt") == words

    (tmp_path / "run").mkdir()
    done = subprocess.run(["sh", "-c", executors.RayExecutor.entrypoint(
        types.SimpleNamespace(cwd=tmp_path), tmp_path / "run", ["/bin/echo", "trained"])], capture_output=True)
    assert done.returncode == 0 and (tmp_path / "run" / "log.txt").read_text() == "trained\n"
