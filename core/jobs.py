"""Runs each training run as its own process, queues beyond a concurrency limit, and rebuilds
its picture from the run directories after a restart.

Jobs are of two kinds (job.json's "kind"): "train", one training run, and "experiment", a set of runs
trained one after another by one process (core.experiments), whose folder holds its results and its own
runs. Both share the queue, the limit (an experiment takes one slot), the owners, the stop and the
recovery; the lists of training runs (``runs()``, ``runs.list_runs``) leave experiments out unless asked.

One JobManager serves a whole server (pages share it through ``st.cache_resource``), so every
public method takes the lock and checks the run id and, where given, the owner (an opaque
string: the browser session's id). The run directory stays the one source of truth: the
manager keeps only what a directory cannot say (which process or Ray Job is whose, the queue order), and a
new manager on the same folder rebuilds both from ``status.json`` and ``job.json``.

A run moves queued -> running -> done | stopped | failed. The training process writes its own
states; the manager writes "queued", "running" (just before it launches, so a run being
launched is never shown as waiting), "stopped" for a run stopped while queued, and "failed"
when a process ends without saying how it ended (killed, crashed, or the server restarted).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core import executors, runs, workers
from core.config import TrainConfig
from core.executors import exit_reason, last_log_line  # noqa: F401 - part of this module's interface

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent  # the folder holding core/: the job's cwd
MAX_JOBS_ENV = "TRANSFER_STUDIO_MAX_JOBS"
RESTART_ERROR = "the server restarted while this run was training"
ORPHAN_SECONDS = 60  # a "running" run of another manager with no process for this long has failed


class RunNotFound(LookupError):
    """No run with that id under the manager's folder."""


def default_max_concurrent() -> int:
    """How many runs train at once when nobody says: $TRANSFER_STUDIO_MAX_JOBS, else by device.

    GPU: 1. Memory growth lets processes share a card (core.backend), but two VGG16 runs on one
    GPU compete for its memory and compute, and an out-of-memory there fails a user's run;
    queueing costs each run only its wait. Raise the limit by the environment on big cards.
    CPU: 2 (1 on a one-core machine). Two runs share the cores at about the same total
    throughput as one after the other, and a second user sees progress at once instead of
    waiting for the first run to finish.
    """
    value = os.environ.get(MAX_JOBS_ENV, "").strip()
    if value:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            raise ValueError(f"{MAX_JOBS_ENV}={value!r}; expected a whole number of at least 1")
        return number
    if gpu_visible():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def gpu_visible() -> bool:
    """Cheap check for an NVIDIA GPU (nvidia-smi -L), without importing TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return listing.returncode == 0 and any(line.startswith("GPU") for line in listing.stdout.splitlines())


class JobManager:
    """Launches, queues, stops and watches training runs under one runs folder.

    root: the runs folder (default ``runs.runs_root()``).
    max_concurrent: runs training at once; default ``default_max_concurrent()``.
    python: the interpreter that runs ``python -m core train`` (tests may pass a stand-in).
    poll_seconds: how often the background thread reaps finished processes and starts
        queued runs, so a queue moves without any page polling.
    start_thread: False leaves polling to whoever calls ``refresh()`` (tests).
    stop_grace_seconds: after a stop request, how long the run gets to stop by itself
        (between batches, saving its model) before its process is terminated.
    warm_workers: how many warm worker processes (core.workers) to keep, started now, each reused for
        several runs so a run does not wait for TensorFlow's import; default $TRANSFER_STUDIO_WARM_WORKERS,
        else one per training slot, and none when ``python`` is a stand-in (it runs each command cold).
        A run that finds no idle worker starts in a fresh process, as every run does with 0.
    executor: where the commands run (core.executors): "local" (this machine) or "ray" (Ray Jobs on a
        cluster); default $TRANSFER_STUDIO_EXECUTOR, else local. The queue, limits and states are the same.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_concurrent: int | None = None,
                 python: str = sys.executable, poll_seconds: float = 0.5, start_thread: bool = True,
                 stop_grace_seconds: float = 30.0, warm_workers: int | None = None, executor: str | None = None):
        if max_concurrent is None:
            max_concurrent = default_max_concurrent()
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent={max_concurrent!r}; expected a whole number of at least 1")
        if not poll_seconds > 0:
            raise ValueError(f"poll_seconds={poll_seconds!r}; expected a number above 0")
        self.root = Path(root).absolute() if root is not None else runs.runs_root()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise runs.WorkspaceError(runs.workspace_error(error)) from error
        self.max_concurrent = max_concurrent
        self.python = python
        self.poll_seconds = poll_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self._lock = threading.RLock()
        self._handles: dict[str, executors.Handle] = {}     # started by this manager, or adopted after a restart
        self._queue: list[str] = []
        self._stop_asked: dict[str, float] = {}             # run id -> when stop() was called
        self._owners: dict[str, str | None] = {}            # run id -> owner, from job.json
        self._terminated: dict[str, float] = {}             # run id -> when we sent SIGTERM
        self._closed = False
        self._wake = threading.Event()
        self._seen: set[str] = set()     # run folders this manager has looked at (others may add more)
        self._seen_mtime: int | None = None
        if warm_workers is None:
            warm_workers = workers.pool_size(max_concurrent) if python == sys.executable else 0
        self.executor = executors.make(executor, python, REPO_ROOT, self._child_env(), warm_workers,
                                       self.root.parent / "workers")
        self._recover()
        self._thread = None
        if start_thread:
            self._thread = threading.Thread(target=self._poll_forever, name="transfer-studio-jobs", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ public
    def submit(self, config: TrainConfig, data: str | os.PathLike, owner: str, run_id: str | None = None) -> str:
        """Queue one run of ``config`` on ``data`` for ``owner``; start it now if there is room.

        Raises ConfigError (nothing written, nothing launched) when the config is invalid,
        FileNotFoundError when the data is missing, FileExistsError when the run id is taken.
        """
        self._check_owner(owner)
        run_id = runs.validate_run_id(run_id) if run_id is not None else runs.new_run_id()
        config.validate()
        data_path = self._data_path(data)
        return self._enqueue(run_id, owner, data_path, "train", self._command(run_id, data_path),
                             files={"config.json": config.to_dict()})

    def submit_experiment(self, kind: str, data: str | os.PathLike, owner: str, *, weights: str = "imagenet",
                          image_size: int = 64, epochs: int | None = None, quick: bool = False,
                          run_id: str | None = None) -> str:
        """Queue one experiment (core.experiments) on ``data`` for ``owner``; start it now if there is room.

        A job of kind "experiment": the same queue and limit as training runs (it takes one slot while it
        trains its runs one after another), the same owner checks, stop (a request the run in progress sees
        within a batch, then the process ended after ``stop_grace_seconds``) and recovery. Its folder is
        ``root/<id>``: results.json, charts.html, status.json and its own runs under ``runs/``.

        kind: one of core.experiments.KINDS. weights, image_size, epochs (None: the experiment's default),
        quick: as ``python -m core experiment`` takes them.
        Raises ValueError for an unknown kind, ConfigError for bad settings, FileNotFoundError when the data
        is missing, FileExistsError when the id is taken; nothing is written then.
        """
        from core.experiment_plan import check_kind

        self._check_owner(owner)
        run_id = runs.validate_run_id(run_id) if run_id is not None else runs.new_run_id()
        check_kind(kind)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)):
            raise ValueError(f"epochs={epochs!r}; expected a whole number, or None for the experiment's default")
        TrainConfig.from_dict({"weights": weights, "image_size": image_size, "epochs": epochs or 1})  # checks them
        data_path = self._data_path(data)
        settings = {"kind": kind, "weights": weights, "image_size": image_size, "epochs": epochs,
                    "quick": bool(quick)}
        command = [self.python, "-m", "core", "experiment", kind, str(data_path), "--out", str(self.root / run_id),
                   "--weights", str(weights), "--image-size", str(image_size)]
        command += (["--epochs", str(epochs)] if epochs else []) + (["--quick"] if quick else [])
        return self._enqueue(run_id, owner, data_path, "experiment", command, job={"experiment": settings})

    @staticmethod
    def _data_path(data: str | os.PathLike) -> Path:
        data_path = Path(data).absolute()  # the job runs in the repo root, not the caller's folder
        if not data_path.exists():
            raise FileNotFoundError(f"no training data at {str(data_path)!r}; upload or create a dataset first")
        return data_path

    def _enqueue(self, run_id: str, owner: str, data_path: Path, kind: str, command: list[str],
                 files: dict | None = None, job: dict | None = None) -> str:
        """Write a job's folder (``files``, then job.json, then status "queued") and start it if there is room."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager has been shut down")
            run_dir = self.root / run_id
            try:
                run_dir.mkdir(parents=True)
            except FileExistsError:
                raise FileExistsError(f"run {run_id!r} already exists; choose another id") from None
            writer = runs.RunWriter(run_dir)
            for name, content in (files or {}).items():
                writer.write_json(name, content)
            writer.write_json("job.json", {
                "kind": kind,
                "owner": owner,
                "data": str(data_path),
                "submitted": round(time.time(), 6),
                "command": command,
                **(job or {}),
            })
            writer.set_status("queued")  # last: a folder with a status is a complete submission
            self._queue.append(run_id)
            self._seen.add(run_id)
            with self._disk_lock():
                self._start_queued()
        self._wake.set()
        return run_id

    def stop(self, run_id: str, owner: str | None = None) -> None:
        """Stop a run: a queued one never starts; a running one is asked to stop between batches
        (and its process terminated if it has not stopped ``stop_grace_seconds`` later).
        A finished run is left as it is."""
        with self._lock:
            run_dir = self._run_dir(run_id, owner)
            state = (runs.read_status(run_dir) or {}).get("state")
            if run_id in self._queue or state == "queued":
                if run_id in self._queue:
                    self._queue.remove(run_id)
                runs.RunWriter(run_dir).set_status("stopped")
                return
            if state in runs.FINISHED_STATES:
                return
            runs.request_stop(run_dir)
            self._stop_asked.setdefault(run_id, time.monotonic())

    def refresh(self) -> None:
        """Reap ended processes, end runs that ignored a stop, start queued runs up to the limit."""
        with self._lock:
            for run_id in list(self._handles):
                try:
                    self._check_process(run_id)
                except Exception:  # one broken run folder must not stop the others being watched
                    log.exception("could not check run %s", run_id)
            if not self._closed:
                self.executor.refresh()
                with self._disk_lock():
                    self._sync()
                    self._start_queued()

    def status(self, run_id: str, owner: str | None = None) -> dict:
        """status.json of a run, plus ``id`` and, while queued, ``queue_position`` (1 = next)."""
        with self._lock:
            run_dir = self._run_dir(run_id, owner)
            status = dict(runs.read_status(run_dir) or {})
            status["id"] = run_id
            if run_id in self._queue:
                status["queue_position"] = self._queue.index(run_id) + 1
            return status

    def runs(self, owner: str | None = None, kind: str | None = "train") -> list[dict]:
        """Runs on disk, newest first (rows of ``runs.list_runs`` plus ``owner`` and
        ``queue_position``); only ``owner``'s runs when an owner is given; only training runs unless
        ``kind`` says "experiment", or None for both."""
        with self._lock:
            ids = None
            if owner is not None:  # read only this owner's folders: a page polls this every second
                ids = [child.name for child in self.root.iterdir()
                       if runs.RUN_ID_PATTERN.match(child.name) and self._owner_of(child) == owner]
            rows = runs.list_runs(self.root, ids=ids, kind=kind)
            for row in rows:
                row["owner"] = self._owner_of(Path(row["path"]))
                if row["id"] in self._queue:
                    row["queue_position"] = self._queue.index(row["id"]) + 1
            return rows

    def queue(self) -> list[str]:
        """Ids of the queued runs, next to start first."""
        with self._lock:
            return list(self._queue)

    def running(self) -> list[str]:
        """Ids of the runs whose processes this manager is watching."""
        with self._lock:
            return list(self._handles)

    def shutdown(self, stop_running: bool = False, timeout: float | None = None) -> None:
        """Stop the polling thread. Running processes carry on (a new manager adopts them) unless
        ``stop_running``: then each is asked to stop and, after ``timeout`` seconds (default
        ``stop_grace_seconds``), terminated. Queued runs stay queued on disk for the next manager."""
        with self._lock:
            self._closed = True
            if stop_running:
                for run_id in self.running():
                    if (runs.read_status(self.root / run_id) or {}).get("state") not in runs.FINISHED_STATES:
                        runs.request_stop(self.root / run_id)
                        self._stop_asked.setdefault(run_id, time.monotonic())
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.executor.close()
        if not stop_running:
            return
        deadline = time.monotonic() + (self.stop_grace_seconds if timeout is None else timeout)
        while self.running() and time.monotonic() < deadline:
            self.refresh()
            time.sleep(min(self.poll_seconds, 0.2))
        with self._lock:
            for run_id in self.running():
                self._terminate(run_id, signal.SIGKILL)
        time.sleep(0.1)
        self.refresh()

    # ------------------------------------------------------------------ launching
    def _command(self, run_id: str, data_path: Path) -> list[str]:
        run_dir = self.root / run_id
        return [self.python, "-m", "core", "train", str(data_path), "--out", str(run_dir),
                "--config", str(run_dir / "config.json")]

    @contextlib.contextmanager
    def _disk_lock(self):
        """Held while runs are started: another manager on the same folder (the command line's
        ``python -m core jobs``, a second app server) waits, then sees what this one started."""
        with open(self.root.parent / f".{self.root.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sync(self) -> None:
        """Take in runs another manager added to the folder since this one last looked: queued ones join
        the queue, running ones are watched (and count towards the limit)."""
        try:
            mtime = self.root.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._seen_mtime:
            return
        self._seen_mtime = mtime
        new = sorted(name for name in os.listdir(self.root)
                     if name not in self._seen and runs.RUN_ID_PATTERN.match(name))
        for run_id in new:
            run_dir = self.root / run_id
            status = runs.read_status(run_dir)
            state = (status or {}).get("state")
            if state is None:  # not written whole yet: look again next time
                self._seen_mtime = None
                continue
            if state == "running" and not self._watch(run_id, run_dir, status):
                if time.time() - float(status.get("updated") or 0) > ORPHAN_SECONDS:
                    self._fail(run_id, RESTART_ERROR)  # its process ended, and nobody was watching
                else:  # another manager may be starting it right now: look again next time
                    self._seen_mtime = None
                    continue
            if state == "queued":
                self._queue.append(run_id)
            self._seen.add(run_id)

    def _watch(self, run_id: str, run_dir: Path, status: dict) -> bool:
        """Watch a run that is running (started by another manager, or before a restart); False when its
        process or job cannot be found."""
        handle = self.executor.adopt(run_id, run_dir, runs.read_json(run_dir / "job.json", {}), status)
        if handle is None:
            return False
        self._handles[run_id] = handle
        if runs.stop_requested(run_dir):
            self._stop_asked.setdefault(run_id, time.monotonic())
        return True

    def _start_queued(self) -> None:
        """Start queued runs up to the limit (with the disk lock held). A run another manager started or
        stopped meanwhile leaves the queue; a started one is watched from here too."""
        for run_id in list(self._queue):
            status = runs.read_status(self.root / run_id) or {}
            if status.get("state") == "queued":
                continue
            self._queue.remove(run_id)
            if status.get("state") == "running" and run_id not in self._handles:
                self._watch(run_id, self.root / run_id, status)
        while self._queue and len(self._handles) < self.max_concurrent:
            run_id = self._queue.pop(0)
            try:
                self._launch(run_id)
            except Exception as error:  # a run that cannot start fails alone
                log.exception("could not start run %s", run_id)
                self._fail(run_id, f"the training process could not be started: {error}")

    def _child_env(self) -> dict:
        env = dict(os.environ)
        # the child runs in the repo root, where a relative ./workspace would name another folder
        env["TRANSFER_STUDIO_HOME"] = str(runs.workspace())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _launch(self, run_id: str) -> None:
        run_dir = self.root / run_id
        job = runs.read_json(run_dir / "job.json", {})
        command = job.get("command") or self._command(run_id, Path(job["data"]))
        writer = runs.RunWriter(run_dir)
        # "running" before the process exists: it imports for seconds before saying so itself
        writer.set_status("running")
        handle = self.executor.start(run_id, run_dir, command, job.get("owner"))
        self._handles[run_id] = handle
        runs.write_json_atomic(run_dir / "job.json", {**job, "command": command, "executor": self.executor.name,
                                                      **handle.record(), "started": round(time.time(), 6)})

    # ------------------------------------------------------------------ watching
    def _check_process(self, run_id: str) -> None:
        run_dir = self.root / run_id
        reason = self._handles[run_id].ended()
        if reason is None:
            self._enforce_stop_grace(run_id)
            return
        del self._handles[run_id]
        stop_asked = self._stop_asked.pop(run_id, None)
        terminated = self._terminated.pop(run_id, None)
        state = (runs.read_status(run_dir) or {}).get("state")
        if state in runs.FINISHED_STATES:
            return
        if stop_asked is not None and terminated is not None:
            runs.RunWriter(run_dir).set_status(
                "stopped", error=f"the run did not stop within {self.stop_grace_seconds:g} s of the "
                                 "request, so its process was ended; the model may be missing")
            return
        self._fail(run_id, reason)

    def _enforce_stop_grace(self, run_id: str) -> None:
        asked = self._stop_asked.get(run_id)
        if asked is None:
            return
        now = time.monotonic()
        terminated = self._terminated.get(run_id)
        if terminated is None and now - asked >= self.stop_grace_seconds:
            self._terminate(run_id, signal.SIGTERM)
            self._terminated[run_id] = now
        elif terminated is not None and now - terminated >= 10:
            self._terminate(run_id, signal.SIGKILL)

    def _terminate(self, run_id: str, sig: int) -> None:
        handle = self._handles.get(run_id)
        if handle is not None:
            handle.terminate(sig)

    def _fail(self, run_id: str, error: str) -> None:
        writer = runs.RunWriter(self.root / run_id)
        writer.event("error", message=error)
        writer.set_status("failed", error=error)

    # ------------------------------------------------------------------ after a restart
    def _recover(self) -> None:
        """Rebuild the queue and the running set from the run folders on disk."""
        queued = []
        with self._disk_lock():  # no other manager is half-way through starting a run
            self._seen_mtime = self.root.stat().st_mtime_ns
            for row in runs.list_runs(self.root, kind=None):
                run_id, run_dir, state = row["id"], Path(row["path"]), row["status"].get("state")
                self._seen.add(run_id)
                try:
                    if state == "queued":
                        job = runs.read_json(run_dir / "job.json", {})
                        queued.append((job.get("submitted", 0), run_id))
                    elif state == "running" and not self._watch(run_id, run_dir, row["status"]):
                        self._fail(run_id, RESTART_ERROR)
                except Exception:
                    log.exception("could not recover run %s", run_id)
            self._queue = [run_id for _, run_id in sorted(queued)]
            self._start_queued()

    # ------------------------------------------------------------------ helpers
    def _run_dir(self, run_id: str, owner: str | None) -> Path:
        run_dir = self.root / runs.validate_run_id(run_id)
        if not (run_dir / "status.json").is_file():
            raise RunNotFound(f"no run {run_id!r}")
        if owner is not None and self._owner_of(run_dir) != owner:
            raise PermissionError(f"run {run_id!r} belongs to another session")
        return run_dir

    def _owner_of(self, run_dir: Path) -> str | None:
        # an owner never changes once job.json is written, so it is read once per run
        if run_dir.name not in self._owners:
            job = runs.read_json(run_dir / "job.json")
            if job is None:
                return None  # not (yet) a manager's run: nobody's
            self._owners[run_dir.name] = job.get("owner")
        return self._owners[run_dir.name]

    @staticmethod
    def _check_owner(owner: str) -> None:
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"owner={owner!r}; expected a non-empty string (the session's id)")

    def _poll_forever(self) -> None:
        while not self._closed:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._closed:
                break
            try:
                self.refresh()
            except Exception:  # the thread must outlive any one bad refresh
                log.exception("job refresh failed")

