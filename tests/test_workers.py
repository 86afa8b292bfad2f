"""Warm workers (core.workers): a job manager's runs go to processes that already imported TensorFlow,
each reused for several runs and replaced when it retires; a stand-in interpreter runs cold; the pool's size
is named with what is allowed when it is wrong. Real ``python -m core`` workers, tiny real runs (32 px,
random weights). The stop and kill behaviour of warm runs is in tests/test_reliability.py (both executors)."""
from __future__ import annotations

import json
import sys

import pytest

from core import jobs, runs, workers
from tests.jobs_helpers import home, make_demo_data, make_fake_python, managers, tiny_config, wait_for  # noqa: F401

RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    return make_demo_data(tmp_path_factory.mktemp("demo") / "data", per_class=4, size=32)


def finish(manager, run_id) -> dict:
    return wait_for(lambda: manager.status(run_id) if manager.status(run_id)["state"] in runs.FINISHED_STATES
                    else None, RUN_TIMEOUT, interval=0.05, message=f"run {run_id} to end")


def test_runs_reuse_a_warm_worker_until_it_retires(home, demo_data, managers, monkeypatch):
    """Two runs in one worker (same process, its log in each run's log.txt, models that load), then with
    one run a worker each worker retires after its run and the next run gets a new one."""
    import keras

    manager = managers(max_concurrent=1, poll_seconds=0.05, warm_workers=1)
    (worker,) = manager.executor.pool.workers
    assert worker.ready.wait(RUN_TIMEOUT), "the worker never got warm"
    first, second = (manager.submit(tiny_config(epochs=1, seed=seed), str(demo_data), owner="t") for seed in (0, 1))
    jobs_seen = []
    for run_id in (first, second):
        assert finish(manager, run_id)["state"] == "done"
        run_dir = manager.root / run_id
        job = runs.read_json(run_dir / "job.json")
        jobs_seen.append(job)
        assert job["warm"] is True and job["pid"] == worker.pid
        # the command's output: printed after the run wrote "done", so it reaches log.txt a moment later
        def command_output(run_dir=run_dir):
            text = (run_dir / "log.txt").read_text()
            return f'"run_dir": "{run_dir}"' in text and '"state": "done"' in text

        wait_for(command_output, 30, interval=0.05, message="the command's output in log.txt")
        model = keras.saving.load_model(run_dir / "model.keras")
        assert model.output_shape[-1] == len(json.loads((run_dir / "labels.json").read_text()))
    assert (manager.root / first / "log.txt").read_text().count('"state": "done"') == 1  # each log its own run
    # the run's status says "done" before the manager's next poll hears the worker's answer and frees it
    wait_for(lambda: worker.idle or None, 30, interval=0.05, message="the worker to be free again")
    assert worker.alive()

    monkeypatch.setenv("TRANSFER_STUDIO_WORKER_RUNS", "1")  # new workers retire after one run
    retiring = managers(max_concurrent=1, poll_seconds=0.05, warm_workers=1)
    pids = []
    for seed in (2, 3):
        run_id = retiring.submit(tiny_config(epochs=1, seed=seed), str(demo_data), owner="t")
        assert finish(retiring, run_id)["state"] == "done"
        job = runs.read_json(retiring.root / run_id / "job.json")
        assert job["warm"] is True
        pids.append(job["pid"])
    assert pids[0] != pids[1], "a worker past its runs should have been replaced"


def test_a_stand_in_interpreter_runs_cold_and_a_bad_pool_size_is_named(home, managers, monkeypatch):
    fake = make_fake_python(home)
    monkeypatch.delenv(workers.WARM_ENV, raising=False)
    assert managers(python=fake, max_concurrent=2, start_thread=False).executor.pool is None
    assert workers.pool_size(2) == 2  # the default: one warm worker per training slot
    monkeypatch.setenv(workers.WARM_ENV, "5")
    assert workers.pool_size(2) == 2  # never more workers than runs at once
    monkeypatch.setenv(workers.WARM_ENV, "0")
    assert workers.pool_size(2) == 0
    for bad in ("many", "-1"):
        monkeypatch.setenv(workers.WARM_ENV, bad)
        with pytest.raises(ValueError, match="TRANSFER_STUDIO_WARM_WORKERS=.*whole number"):
            jobs.JobManager(home / "runs", python=sys.executable, max_concurrent=1, start_thread=False)


def test_workers_that_die_before_they_are_warm_are_given_up_and_runs_start_cold(home, managers, tmp_path):
    """A worker that cannot start (here an interpreter that exits at once) is not restarted for ever: after
    three, the pool gives up and runs start in fresh processes, which train (the stand-in job) as before."""
    from tests.jobs_helpers import fake_data

    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    manager = managers(python=str(broken), max_concurrent=1, poll_seconds=0.05, warm_workers=1)
    wait_for(lambda: manager.executor.pool.disabled, 30, message="the pool to give up")
    assert manager.executor.pool.failed_starts == workers.WorkerPool.MAX_FAILED_STARTS
    manager.refresh()
    assert manager.executor.pool.workers == [] and manager.executor.pool.take() is None  # nothing more is started
    manager.python = make_fake_python(home)  # the run's own command: the stand-in job, cold
    run_id = manager.submit(tiny_config(), str(fake_data(home / "data")), owner="t")
    assert finish(manager, run_id)["state"] == "done"
    assert runs.read_json(manager.root / run_id / "job.json")["warm"] is False


def test_a_worker_warms_up_with_vgg16_built_and_kept_so_a_default_run_builds_none(demo_dir, tmp_path,
                                                                                  monkeypatch):
    """The warm-up (run here in this process, as a worker runs it) builds VGG16 with the ImageNet weights at
    the common sizes when they are on the server, and keeps it: the run after it loads no weights file; with
    no weights on the server the warm-up builds only the random one (never a download)."""
    import keras

    from core import models, training
    from core import weights as weight_sources
    from core.config import TrainConfig

    keras.utils.set_random_seed(7)
    weights_file = tmp_path / "vgg16_small.weights.h5"  # stands in for the ImageNet file: a random start
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(weights_file)
    monkeypatch.setattr(workers, "WARM_IMAGE_SIZES", (32,))
    monkeypatch.setattr(weight_sources, "cache_path", lambda: tmp_path / "no-keras-cache.h5")
    builds = []
    original = weight_sources.load_base
    monkeypatch.setattr(weight_sources, "load_base",
                        lambda *a, **k: (a[1] != "none" and builds.append(a)) or original(*a, **k))

    models.forget_kept_bases()
    monkeypatch.delenv(weight_sources.SERVER_WEIGHTS_ENV, raising=False)
    workers._warm_up()  # nothing on the server: nothing to keep, nothing downloaded
    assert builds == []

    monkeypatch.setenv(weight_sources.SERVER_WEIGHTS_ENV, str(weights_file))
    workers._warm_up()
    assert len(builds) == 1
    config = TrainConfig.from_dict({"recipe": "manual", "weights": "imagenet", "image_size": 32, "epochs": 1,
                                    "batch_size": 8})
    assert training.train(config, demo_dir, tmp_path / "run").state == "done"
    assert len(builds) == 1  # the run used the VGG16 the warm-up built
    models.forget_kept_bases()
