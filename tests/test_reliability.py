"""Reliability of real training jobs: stop, crash, restart, many sessions, readers during writes.

Every run here is a real ``python -m core train`` process on tiny demo data (32 px, random
weights), launched by a real JobManager. Measured numbers are printed (``pytest -s``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from core import executors, jobs, runs
from tests.jobs_helpers import (cli_available, home, make_demo_data, managers, run_dir_events,  # noqa: F401
                                tiny_config, wait_for)
from tests.ray_cluster import RayCluster

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cli_available(), reason="python -m core train is not available yet"),
]

RUN_TIMEOUT = 120  # seconds for one tiny run, generous for 2 busy cores


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    return make_demo_data(tmp_path_factory.mktemp("demo") / "data", per_class=6, size=32)


def state_of(manager, run_id):
    return manager.status(run_id).get("state")


def wait_state(manager, run_id, states, timeout=RUN_TIMEOUT):
    states = (states,) if isinstance(states, str) else states
    return wait_for(lambda: manager.status(run_id) if state_of(manager, run_id) in states else None,
                    timeout, interval=0.05, message=f"run {run_id} to be {'/'.join(states)}")


def position(event: dict) -> int:
    """Batches trained up to and including a batch event, counted from the start of the run."""
    return (event["epoch"] - 1) * event["steps"] + event["batch"]


def load_and_predict(run_dir: Path, image_size: int = 32) -> tuple:
    import keras

    model = keras.saving.load_model(run_dir / "model.keras")
    labels = json.loads((run_dir / "labels.json").read_text())
    images = np.random.default_rng(0).uniform(0, 255, (2, image_size, image_size, 3)).astype("float32")
    probabilities = np.asarray(model.predict(images, verbose=0))
    assert probabilities.shape == (2, len(labels))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    return model, probabilities


class Reader(threading.Thread):
    """Polls status.json and events.jsonl of some runs as fast as it can, counting what it sees.

    A half-written record would show as a JSON error from the raw status file, a None from
    runs.read_status once the file existed, an exception or a non-record from runs.read_events,
    or incremental reads that do not add up to the final file.
    """

    def __init__(self, run_dirs, pause: float = 0.0):
        super().__init__(daemon=True)
        self.run_dirs = [Path(d) for d in run_dirs]
        self.pause = pause  # between rounds; 0 = as fast as it can (it then holds a core)
        self.halt = threading.Event()
        self.problems: list[str] = []
        self.status_reads = self.event_reads = 0
        self.seen = {d: [] for d in self.run_dirs}
        self.offsets = {d: 0 for d in self.run_dirs}

    def run(self):
        existed = set()
        while not self.halt.is_set():
            for run_dir in self.run_dirs:
                self.poll(run_dir, existed)
            if self.pause:
                time.sleep(self.pause)

    def poll(self, run_dir, existed):
        try:
            raw = (run_dir / "status.json").read_bytes()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            existed.add(run_dir)
            try:
                json.loads(raw)
            except ValueError as error:
                self.problems.append(f"{run_dir.name}: status.json did not parse: {error}")
        if run_dir in existed and runs.read_status(run_dir) is None:
            self.problems.append(f"{run_dir.name}: read_status returned None after status.json existed")
        self.status_reads += 1
        try:
            events, self.offsets[run_dir] = runs.read_events(run_dir, self.offsets[run_dir])
        except Exception as error:  # noqa: BLE001 - any failure here is the finding
            self.problems.append(f"{run_dir.name}: read_events raised {error!r}")
            return
        self.event_reads += 1
        for event in events:
            if not isinstance(event, dict) or "type" not in event:
                self.problems.append(f"{run_dir.name}: partial event {event!r}")
        self.seen[run_dir].extend(events)

    def finish(self):
        self.halt.set()
        self.join(10)
        for run_dir in self.run_dirs:  # pick up the tail, then compare with one whole read
            self.poll(run_dir, set())
            if self.seen[run_dir] != runs.read_all_events(run_dir):
                self.problems.append(f"{run_dir.name}: incremental reads do not add up to the file")


# ---------------------------------------------------------------------- 5. stop

@pytest.fixture(scope="module")
def ray_cluster():
    """One real Ray head for this module's Ray runs (2 CPUs, 127.0.0.1), started when the first needs it."""
    with RayCluster(num_cpus=2) as cluster:
        yield cluster


@pytest.fixture(params=["fresh process", "warm worker", "ray"])
def executor(request, monkeypatch) -> dict:
    """How the manager runs each training: a fresh ``python -m core train`` process, a warm worker
    (core.workers) that already imported TensorFlow and runs the same command, or a Ray Job on a real
    Ray cluster (core.executors.RayExecutor). The behaviour is the same."""
    return _executor(request, monkeypatch)


@pytest.fixture(params=["fresh process", "ray"])
def local_or_ray(request, monkeypatch) -> dict:
    """As ``executor``, less the warm worker, where it adds nothing: a warm worker's run is adopted by its
    process id and launched from the same queue, as a fresh process's is."""
    return _executor(request, monkeypatch)


def _executor(request, monkeypatch) -> dict:
    if request.param == "ray":
        cluster = request.getfixturevalue("ray_cluster")
        monkeypatch.setenv(executors.RAY_ADDRESS_ENV, cluster.address)
        return {"warm_workers": 0, "executor": "ray"}
    return {"warm_workers": 0 if request.param == "fresh process" else 2, "executor": "local"}


def test_three_runs_with_a_limit_of_two_never_run_three_at_once(home, demo_data, managers, local_or_ray):
    executor = local_or_ray
    manager = managers(max_concurrent=2, poll_seconds=0.1, **executor)
    submitted = [manager.submit(tiny_config(epochs=2, seed=seed), str(demo_data), owner="class")
                 for seed in range(3)]
    assert manager.queue() == submitted[2:]
    most = 0
    deadline = time.monotonic() + 3 * RUN_TIMEOUT
    while True:
        states = [state_of(manager, run_id) for run_id in submitted]
        most = max(most, states.count("running"), len(manager.running()))
        assert most <= 2, states
        if all(state in runs.FINISHED_STATES for state in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert states == ["done"] * 3 and most == 2
    for run_id in submitted:
        job = runs.read_json(manager.root / run_id / "job.json")
        assert job["executor"] == executor["executor"]
        load_and_predict(manager.root / run_id)
    if executor["executor"] == "ray":  # each run was a Ray Job named by its run id, owner in its metadata
        jobs_on_ray = {job.submission_id: job for job in manager.executor.client.list_jobs()}
        for run_id in submitted:
            assert jobs_on_ray[run_id].status.name == "SUCCEEDED"
            assert jobs_on_ray[run_id].metadata["owner"] == "class"


def test_stop_lands_within_one_batch_and_leaves_a_usable_model(home, demo_data, managers, executor):
    manager = managers(max_concurrent=1, poll_seconds=0.1, **executor)
    # cache off: the saved model is the one fitted, so its optimizer counts every batch trained
    config = tiny_config(epochs=50, batch_size=2, cache_features=False)
    run_id = manager.submit(config, str(demo_data), owner="teacher")
    run_dir = manager.root / run_id

    # request the stop the moment a batch event of epoch 3 appears: mid-training, at a known batch
    offset, trigger = 0, None
    deadline = time.monotonic() + RUN_TIMEOUT
    while trigger is None:
        assert time.monotonic() < deadline, "the run never reached epoch 3"
        assert state_of(manager, run_id) in ("running",), manager.status(run_id)
        events, offset = runs.read_events(run_dir, offset)
        batches = [e for e in events if e["type"] == "batch" and e["epoch"] >= 3]
        if batches:
            trigger = batches[-1]
        else:
            time.sleep(0.001)
    asked_at = time.time()
    manager.stop(run_id, owner="teacher")
    status = wait_state(manager, run_id, ("stopped", "failed", "done"), timeout=60)
    noticed = time.time() - asked_at
    assert status["state"] == "stopped", status

    model, _ = load_and_predict(run_dir)
    trained = int(model.optimizer.iterations.numpy()) if model.optimizer is not None else None
    after = [e for e in run_dir_events(run_dir, "batch") if e["time"] > asked_at]
    stopped_in = status["times"]["stopped"] - asked_at
    print(f"\n[stop] request at batch {position(trigger)} (epoch {trigger['epoch']}, {trigger['steps']} "
          f"batches/epoch); batches trained after the request: "
          f"{trained - position(trigger) if trained is not None else 'unknown'}; batch events after it: "
          f"{len(after)}; state 'stopped' written {stopped_in:.2f} s after the request (model saved), "
          f"seen by the manager after {noticed:.2f} s")
    assert trained is not None, "the saved model has no optimizer to count batches with"
    # The run counts the batches that ended after the request file was made (by the file's own time, not by
    # when this test happened to read an event: a busy machine delays the reading, not the run): the batch
    # under way when the request came, and none after it.
    (stop_event,) = run_dir_events(run_dir, "stop")
    print(f"[stop] batches that ended after the request: {stop_event['batches_after_request']}")
    assert stop_event["batches_after_request"] == 1
    assert trained - position(trigger) >= 1
    assert trained < 50 * trigger["steps"]
    assert stopped_in < 30
    assert max(e["epoch"] for e in run_dir_events(run_dir, "epoch")) < 50


# ---------------------------------------------------------------------- 6. crash

def test_a_killed_job_fails_with_a_reason_and_others_carry_on(home, demo_data, managers, executor):
    manager = managers(max_concurrent=2, poll_seconds=0.5, **executor)
    doomed = manager.submit(tiny_config(epochs=400, batch_size=2), str(demo_data), owner="a")
    other = manager.submit(tiny_config(epochs=40, batch_size=2), str(demo_data), owner="b")
    doomed_dir, other_dir = manager.root / doomed, manager.root / other

    # kill once both are training (the other still has epochs to go)
    def both_training():
        return (any(e["epoch"] >= 2 for e in run_dir_events(doomed_dir, "batch"))
                and run_dir_events(other_dir, "batch"))
    wait_for(both_training, RUN_TIMEOUT, message="both runs to be training")
    assert state_of(manager, other) == "running"
    last = run_dir_events(doomed_dir, "batch")[-1]
    pid = runs.read_status(doomed_dir)["pid"]  # the training process (a warm worker's is the worker)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    status = wait_state(manager, doomed, ("failed", "done", "stopped"), timeout=30)
    marked_after = time.monotonic() - killed_at
    print(f"\n[crash] SIGKILL after batch event epoch {last['epoch']} batch {last['batch']}/{last['steps']}; "
          f"marked failed after {marked_after:.2f} s (poll every 0.5 s): {status['error']!r}")
    assert status["state"] == "failed"
    assert status["error"] == "the training process was killed (signal 9) - possibly out of memory"
    assert marked_after < 10
    assert run_dir_events(doomed_dir)[-1] == {"type": "error", "message": status["error"],
                                              "time": pytest.approx(time.time(), abs=60)}

    assert wait_state(manager, other, ("done", "failed", "stopped"))["state"] == "done"
    assert (other_dir / "model.keras").is_file()
    # no silent re-run of the killed one: nothing trained in its folder after the kill
    batches = len(run_dir_events(doomed_dir, "batch"))
    time.sleep(2)
    assert len(run_dir_events(doomed_dir, "batch")) == batches and state_of(manager, doomed) == "failed"
    if executor["executor"] == "ray":
        info = manager.executor.client.get_job_info(doomed)
        assert info.status.name == "FAILED" and info.driver_exit_code == -signal.SIGKILL
    wait_for(lambda: manager.running() == [], 10, message="the manager to reap the finished run")
    assert manager._thread.is_alive() and manager.queue() == []
    if executor["warm_workers"]:  # the killed worker is replaced; the other one goes on serving
        assert runs.read_json(doomed_dir / "job.json")["warm"] and runs.read_json(other_dir / "job.json")["warm"]
        wait_for(lambda: len([w for w in manager.executor.pool.workers if w.alive()]) == 2, 30,
                 message="a new worker in place of the killed one")
        assert pid not in [worker.pid for worker in manager.executor.pool.workers]


# ---------------------------------------------------------------------- 7. restart

def test_a_restarted_manager_rebuilds_its_picture_from_disk(home, demo_data, managers):
    root = runs.runs_root()
    # no polling thread: the finished run is never reaped, so the queued one stays queued
    before = managers(root, max_concurrent=2, start_thread=False)
    finished = before.submit(tiny_config(epochs=1), str(demo_data), owner="a", run_id="r1-finished")
    training = before.submit(tiny_config(epochs=400, batch_size=2), str(demo_data), owner="a",
                             run_id="r2-training")
    queued = before.submit(tiny_config(epochs=1, seed=3), str(demo_data), owner="b", run_id="r3-queued")
    assert before.queue() == [queued]
    wait_for(lambda: runs.read_status(root / finished)["state"] == "done"
             and run_dir_events(root / training, "batch"), RUN_TIMEOUT, message="one done, one training")

    # the server goes down hard: its manager is gone, and the run it was training died with it
    pid = runs.read_json(root / training / "job.json")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 10,
             message="the killed process to die")
    del before  # (its fixture still reaps and shuts it down at the end; it never polls again)
    restarted_at = time.monotonic()
    after = managers(root, max_concurrent=2, poll_seconds=0.2)
    recovered_in = time.monotonic() - restarted_at

    status = after.status(training)
    print(f"\n[restart] new manager rebuilt its picture in {recovered_in * 1000:.0f} ms; "
          f"running at restart -> {status['state']!r}: {status.get('error')!r}")
    assert status["state"] == "failed" and status["error"] == jobs.RESTART_ERROR
    assert state_of(after, finished) == "done"
    assert state_of(after, queued) == "running" and after.running() == [queued]
    assert wait_state(after, queued, ("done", "failed", "stopped"))["state"] == "done"

    listed = {row["id"]: row["status"]["state"] for row in after.runs()}
    assert listed == {finished: "done", training: "failed", queued: "done"}
    assert [row["id"] for row in after.runs(owner="b")] == [queued]
    for run_id in (finished, queued):
        load_and_predict(root / run_id)


def test_a_restarted_app_adopts_the_runs_still_training_and_sees_them_end(home, demo_data, managers,
                                                                           local_or_ray):
    """The app restarts while a run trains (and another waits): the new manager finds the running one where
    it runs (its process, or its Ray Job), starts the queued one, and both end "done"."""
    executor = local_or_ray
    before = managers(max_concurrent=1, poll_seconds=0.1, **executor)
    training = before.submit(tiny_config(epochs=6, batch_size=2), str(demo_data), owner="a")
    waiting = before.submit(tiny_config(epochs=1, seed=5), str(demo_data), owner="b")
    wait_for(lambda: run_dir_events(before.root / training, "batch"), RUN_TIMEOUT, message="the run to train")
    before.shutdown()  # the app goes away; its run trains on
    assert state_of(before, waiting) == "queued"

    after = managers(max_concurrent=1, poll_seconds=0.1, **executor)
    assert after.running() == [training] and after.queue() == [waiting]
    assert wait_state(after, training, runs.FINISHED_STATES)["state"] == "done"
    assert wait_state(after, waiting, runs.FINISHED_STATES)["state"] == "done"
    assert [row["status"]["state"] for row in after.runs()] == ["done", "done"]


def test_the_jobs_command_line_queues_lists_stops_and_runs(home, demo_data, local_or_ray, monkeypatch):
    """``python -m core jobs submit/list/status/stop`` as an operator types them, each a separate process
    (no manager stays up in between), with a limit of one run at a time."""
    monkeypatch.setenv(executors.EXECUTOR_ENV, local_or_ray["executor"])
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    tiny = ["--image-size", "32", "--weights", "none", "--freeze-depth", "5", "--batch-size", "2"]

    def cli(*arguments, expect=0):
        done = subprocess.run([sys.executable, "-m", "core", "jobs", *map(str, arguments)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (arguments, done.stdout, done.stderr)
        return done

    long_id = cli("submit", demo_data, *tiny, "--epochs", "400", "--owner", "teacher").stdout.strip()
    short_id = cli("submit", demo_data, *tiny, "--epochs", "1").stdout.strip()
    assert runs.RUN_ID_PATTERN.match(long_id) and runs.RUN_ID_PATTERN.match(short_id)
    rows = {row["id"]: row for row in map(json.loads, cli("list").stdout.splitlines())}
    assert {rows[long_id]["state"], rows[short_id]["state"]} == {"running", "queued"}
    assert rows[short_id]["queue_position"] == 1 and rows[short_id]["owner"] == "cli"
    assert [json.loads(line)["id"] for line in cli("list", "--owner", "teacher").stdout.splitlines()] == [long_id]
    wait_for(lambda: run_dir_events(runs.runs_root() / long_id, "batch"), RUN_TIMEOUT, message="the run to train")
    assert json.loads(cli("status", long_id).stdout)["state"] == "running"

    stopped = json.loads(cli("stop", long_id).stdout)  # waits until it has stopped
    assert stopped["state"] == "stopped" and (runs.runs_root() / long_id / "model.keras").is_file()
    # the queued run starts when a command next looks (here: status), and trains to the end
    wait_for(lambda: json.loads(cli("status", short_id).stdout)["state"] in runs.FINISHED_STATES, RUN_TIMEOUT,
             interval=1, message="the queued run to finish")
    assert json.loads(cli("status", short_id).stdout)["state"] == "done"
    assert runs.read_json(runs.runs_root() / short_id / "job.json")["executor"] == local_or_ray["executor"]
    load_and_predict(runs.runs_root() / short_id)

    missing = cli("status", "no-such-run", expect=2)
    assert missing.stdout == "" and missing.stderr.startswith("error: no run 'no-such-run'")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_sigterm_to_a_training_command_stops_it_between_batches_with_its_model(home, demo_data, tmp_path):
    """What a job system sends to end a run (Ray's stop_job, a server's shutdown): the run records "stopped"
    and keeps its model, as the Stop button's request does, instead of dying half-saved."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "core", "train", str(demo_data), "--out", str(run_dir),
                                "--weights", "none", "--image-size", "32", "--epochs", "400", "--batch-size", "2",
                                "--freeze-depth", "5"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: run_dir_events(run_dir, "batch"), RUN_TIMEOUT, message="the run to train")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        process.kill()
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped", status
    (stop,) = run_dir_events(run_dir, "stop")
    assert stop["batches_after_request"] <= 1
    load_and_predict(run_dir)


def test_a_ray_run_goes_to_the_node_it_asks_for_and_fails_in_words_when_that_node_dies(
        home, demo_data, managers, ray_cluster, monkeypatch):
    """Two nodes on this machine (Ray's own ``ray start``): a run that asks for the second node's resource
    trains there; when that node dies, the run fails with a reason and the head carries on."""
    node = ray_cluster.add_node(num_cpus=1, resources={"second_node": 1})
    monkeypatch.setenv(executors.RAY_ADDRESS_ENV, ray_cluster.address)
    monkeypatch.setenv(executors.RAY_RESOURCES_ENV, '{"second_node": 1}')
    manager = managers(max_concurrent=2, poll_seconds=0.2, executor="ray")
    run_id = manager.submit(tiny_config(epochs=400, batch_size=2), str(demo_data), owner="a")
    wait_for(lambda: run_dir_events(manager.root / run_id, "batch"), RUN_TIMEOUT, message="the run to train")
    info = manager.executor.client.get_job_info(run_id)
    assert info.driver_node_id and info.status.name == "RUNNING"
    assert psutil.Process(runs.read_status(manager.root / run_id)["pid"]) in _tree(node)  # on the second node

    died_at = time.monotonic()
    ray_cluster.kill_node(node)
    status = wait_state(manager, run_id, runs.FINISHED_STATES, timeout=60)
    print(f"\n[ray] node death noticed after {time.monotonic() - died_at:.1f} s: {status['error']!r}")
    assert status["state"] == "failed"
    assert status["error"].startswith("the machine training this run (a Ray node) stopped")

    # the head alone still trains: an experiment (a job of its own kind, training its runs one after another)
    monkeypatch.delenv(executors.RAY_RESOURCES_ENV)
    other = managers(max_concurrent=2, poll_seconds=0.2, executor="ray")
    after = other.submit_experiment("freeze-depth", demo_data, "a", quick=True, epochs=1, weights="none",
                                    image_size=32)
    assert wait_state(other, after, runs.FINISHED_STATES, timeout=3 * RUN_TIMEOUT)["state"] == "done"
    wait_for(lambda: other.executor.client.get_job_info(after).status.name == "SUCCEEDED", 30,
             message="the experiment's Ray job to end (it writes done just before its process exits)")
    results = runs.read_json(other.root / after / "results.json")
    assert results["state"] == "done" and len(results["rows"]) >= 2


def _tree(popen) -> list:
    root = psutil.Process(popen.pid)
    return [root, *root.children(recursive=True)]


# ---------------------------------------------------------------------- 8. many users

def test_many_sessions_at_once_stay_separate_and_within_the_limit(home, demo_data, managers):
    manager = managers(max_concurrent=2, poll_seconds=0.2)
    owners = [f"session-{i}" for i in range(8)]
    wanted = {owner: {"seed": 1000 + i, "epochs": 1 + i % 2} for i, owner in enumerate(owners)}
    submitted: dict[str, str] = {}
    errors = []
    gate = threading.Barrier(len(owners))

    def submit(owner):
        try:
            gate.wait()
            submitted[owner] = manager.submit(tiny_config(**wanted[owner]), str(demo_data), owner=owner)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    started = time.monotonic()
    threads = [threading.Thread(target=submit, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(submitted.values())) == len(owners)
    # a gentler reader than test 9's: spinning would take one of the cores the runs train on
    reader = Reader([manager.root / run_id for run_id in submitted.values()], pause=0.002)
    reader.start()

    most_running = most_processes = samples = 0
    deadline = time.monotonic() + 6 * RUN_TIMEOUT
    while True:
        states = [row["status"].get("state") for row in manager.runs()]
        most_running = max(most_running, states.count("running"))
        most_processes = max(most_processes, len(manager.running()))
        samples += 1
        assert most_running <= 2 and most_processes <= 2, (states, manager.running())
        if all(state in runs.FINISHED_STATES for state in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    reader.finish()
    print(f"\n[many] {len(owners)} sessions, 8 runs, limit 2: all finished in {elapsed:.1f} s; "
          f"at most {most_running} running and {most_processes} processes over {samples} samples; "
          f"reader: {reader.status_reads} status and {reader.event_reads} event reads, "
          f"{len(reader.problems)} problems")
    assert most_running == 2
    assert reader.problems == []

    pids = set()
    for owner, run_id in submitted.items():
        run_dir = manager.root / run_id
        status = manager.status(run_id, owner=owner)
        assert status["state"] == "done", status
        assert [row["id"] for row in manager.runs(owner=owner)] == [run_id]
        others = [r for o, r in submitted.items() if o != owner]
        with pytest.raises(PermissionError):
            manager.status(others[0], owner=owner)
        config = runs.read_json(run_dir / "config.json")
        assert {key: config[key] for key in ("seed", "epochs")} == wanted[owner]
        epochs = run_dir_events(run_dir, "epoch")
        assert [e["epoch"] for e in epochs] == list(range(1, wanted[owner]["epochs"] + 1))
        assert all(e["epochs"] == wanted[owner]["epochs"] for e in epochs)
        job = runs.read_json(run_dir / "job.json")
        assert job["owner"] == owner and status["pid"] == job["pid"]
        pids.add(job["pid"])
        log_text = (run_dir / "log.txt").read_text(errors="replace")
        assert not any(other in log_text for other in others)
        assert (run_dir / "model.keras").is_file()
    assert len(pids) == len(owners)
    load_and_predict(manager.root / submitted[owners[0]])


# ---------------------------------------------------------------------- 9. readers during writes

def test_readers_never_see_half_a_record_while_a_run_writes(home, demo_data, managers):
    manager = managers(max_concurrent=1, poll_seconds=0.2)
    run_id = manager.submit(tiny_config(epochs=8, batch_size=2), str(demo_data), owner="a")
    reader = Reader([manager.root / run_id])
    reader.start()
    status = wait_state(manager, run_id, ("done", "failed", "stopped"))
    reader.finish()
    events = runs.read_all_events(manager.root / run_id)
    print(f"\n[readers] {reader.status_reads} status reads and {reader.event_reads} event reads during one "
          f"run ({len(events)} events); problems: {reader.problems}")
    assert status["state"] == "done"
    assert reader.problems == []
    assert reader.status_reads > 1000
