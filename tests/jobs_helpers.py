"""Shared pieces of the job tests: waiting, tiny configs, demo data, and a stand-in training job.

The stand-in is an executable passed to JobManager as ``python``: it receives the same
``-m core train DATA --out RUN_DIR --config CONFIG`` arguments and speaks the run-directory
contract (status running with pid and device, batch and epoch events, stop between batches,
done/stopped/failed) without importing TensorFlow, so the manager's own logic tests in
seconds. Its behaviour comes from ``DATA/fake.json``, so each run can behave differently.
"""
from __future__ import annotations

import functools
import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import jobs
from core.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent

FAKE_TRAIN = r'''#!{python}
import json, os, sys, time
sys.path.insert(0, os.getcwd())  # the manager runs jobs in the repo root
from core import runs

args = sys.argv[1:]
assert args[:3] == ["-m", "core", "train"], args
data, out, config_path = args[3], args[args.index("--out") + 1], args[args.index("--config") + 1]
behaviour = runs.read_json(os.path.join(data, "fake.json"), {{}})
config = runs.read_json(config_path)
writer = runs.RunWriter(out)
writer.set_status("running", pid=os.getpid(), device="fake")
print("fake training started", flush=True)
if "exit_code" in behaviour:
    print(behaviour.get("message", "fake crash"), flush=True)
    sys.exit(behaviour["exit_code"])
hold = behaviour.get("hold_file")
batch = 0
for epoch in range(1, config["epochs"] + 1):
    for step in range(behaviour.get("batches", 3)):
        if runs.stop_requested(out) and not behaviour.get("ignore_stop"):
            writer.set_status("stopped")
            sys.exit(0)
        time.sleep(behaviour.get("batch_seconds", 0.02))
        batch += 1
        writer.event("batch", epoch=epoch, batch=step + 1, loss=1.0 / batch)
    writer.event("epoch", phase="train", epoch=epoch, loss=1.0 / epoch, seed=config["seed"])
while hold and not os.path.exists(hold):
    if runs.stop_requested(out) and not behaviour.get("ignore_stop"):
        writer.set_status("stopped")
        sys.exit(0)
    time.sleep(0.02)
writer.set_status("done")
'''


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh workspace per test (runs go to home/runs), and no concurrency override."""
    monkeypatch.setenv("TRANSFER_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(jobs.MAX_JOBS_ENV, raising=False)
    return tmp_path


@pytest.fixture
def managers():
    """Make JobManagers; each is shut down, its processes stopped, when the test ends."""
    made = []

    def make(*args, **kwargs):
        manager = jobs.JobManager(*args, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(stop_running=True, timeout=5)


def make_fake_python(folder: Path) -> str:
    path = Path(folder) / "fake-python"
    path.write_text(FAKE_TRAIN.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def fake_data(folder: Path, **behaviour) -> Path:
    """A data folder whose fake.json tells the stand-in job what to do."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fake.json").write_text(json.dumps(behaviour))
    return folder


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value, or fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


def tiny_config(**changes) -> TrainConfig:
    """The smallest real run: random weights, 32 px, head only, two epochs."""
    values = dict(weights="none", image_size=32, epochs=2, batch_size=4, freeze_depth=5)
    values.update(changes)
    return TrainConfig.from_dict(values)


@functools.lru_cache(maxsize=1)
def cli_available() -> bool:
    """True once ``python -m core train`` answers --help and what it imports is there."""
    if not (REPO_ROOT / "core" / "__main__.py").exists():
        return False
    try:
        done = subprocess.run([sys.executable, "-c", "import core.training, core.demo_data; "
                               "from core.__main__ import main; raise SystemExit(main(['train', '--help']))"],
                              cwd=REPO_ROOT, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def make_demo_data(folder: Path, per_class: int = 6, size: int = 32) -> Path:
    subprocess.run([sys.executable, "-m", "core", "demo-data", str(folder), "--per-class", str(per_class),
                    "--size", str(size)], cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    return Path(folder)


def run_dir_events(run_dir: Path, type: str | None = None) -> list[dict]:
    from core import runs

    events = runs.read_all_events(run_dir)
    return [event for event in events if type is None or event.get("type") == type]
