"""Runs each training run as its own process, queues beyond a concurrency limit, and rebuilds
its picture from the run directories after a restart.

One JobManager serves a whole server (pages share it through ``st.cache_resource``), so every
public method takes the lock and checks the run id and, where given, the owner (an opaque
string: the browser session's id). The run directory stays the one source of truth: the
manager keeps only what a directory cannot say (which Popen is whose, the queue order), and a
new manager on the same folder rebuilds both from ``status.json`` and ``job.json``.

A run moves queued -> running -> done | stopped | failed. The training process writes its own
states; the manager writes "queued", "running" (just before it launches, so a run being
launched is never shown as waiting), "stopped" for a run stopped while queued, and "failed"
when a process ends without saying how it ended (killed, crashed, or the server restarted).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from core import runs, workers
from core.config import TrainConfig

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent  # the folder holding core/: the job's cwd
MAX_JOBS_ENV = "TRANSFER_STUDIO_MAX_JOBS"
RESTART_ERROR = "the server restarted while this run was training"
# psutil's create_time is a float from /proc; the same process reads back equal to well within this.
CREATE_TIME_TOLERANCE = 1.0


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


def exit_reason(returncode: int, log_path: Path | None = None) -> str:
    """Plain words for a training process that ended without writing a final state."""
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            return f"the training process was killed (signal {number}) - possibly out of memory"
        if number == signal.SIGTERM:
            return f"the training process was terminated (signal {number})"
        if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE):
            return f"the training process crashed ({name}, signal {number})"
        return f"the training process was ended by {name} (signal {number})"
    last = last_log_line(log_path) if log_path is not None else ""
    detail = f": {last}" if last else "; see log.txt in the run folder"
    if returncode == 0:
        return "the training process exited without reporting a result" + detail
    if returncode == 2:
        return "the training command rejected its arguments (exit code 2)" + detail
    return f"the training process exited with code {returncode} before finishing" + detail


def last_log_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log (an exception's message, usually), shortened."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


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
    """

    def __init__(self, root: str | os.PathLike | None = None, max_concurrent: int | None = None,
                 python: str = sys.executable, poll_seconds: float = 0.5, start_thread: bool = True,
                 stop_grace_seconds: float = 30.0, warm_workers: int | None = None):
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
        self._children: dict[str, subprocess.Popen | workers.WarmRun] = {}  # launched by this manager
        self._adopted: dict[str, psutil.Process] = {}       # still alive from before a restart
        self._queue: list[str] = []
        self._stop_asked: dict[str, float] = {}             # run id -> when stop() was called
        self._owners: dict[str, str | None] = {}            # run id -> owner, from job.json
        self._terminated: dict[str, float] = {}             # run id -> when we sent SIGTERM
        self._closed = False
        self._wake = threading.Event()
        if warm_workers is None:
            warm_workers = workers.pool_size(max_concurrent) if python == sys.executable else 0
        self._pool = (workers.WorkerPool(warm_workers, python, REPO_ROOT, self._child_env(),
                                         self.root.parent / "workers") if warm_workers > 0 else None)
        if self._pool is not None:
            self._pool.fill()  # TensorFlow's import starts now, not when the first run does
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
        data_path = Path(data).absolute()  # the job runs in the repo root, not the caller's folder
        if not data_path.exists():
            raise FileNotFoundError(f"no training data at {str(data_path)!r}; upload or create a dataset first")
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager has been shut down")
            run_dir = self.root / run_id
            try:
                run_dir.mkdir(parents=True)
            except FileExistsError:
                raise FileExistsError(f"run {run_id!r} already exists; choose another id") from None
            writer = runs.RunWriter(run_dir)
            writer.write_json("config.json", config.to_dict())
            writer.write_json("job.json", {
                "owner": owner,
                "data": str(data_path),
                "submitted": round(time.time(), 6),
                "command": self._command(run_id, data_path),
            })
            writer.set_status("queued")  # last: a folder with a status is a complete submission
            self._queue.append(run_id)
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
            for run_id in list(self._children) + list(self._adopted):
                try:
                    self._check_process(run_id)
                except Exception:  # one broken run folder must not stop the others being watched
                    log.exception("could not check run %s", run_id)
            if not self._closed:
                if self._pool is not None:
                    self._pool.fill()  # replace retired and dead workers
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

    def runs(self, owner: str | None = None) -> list[dict]:
        """Runs on disk, newest first (rows of ``runs.list_runs`` plus ``owner`` and
        ``queue_position``); only ``owner``'s runs when an owner is given."""
        with self._lock:
            ids = None
            if owner is not None:  # read only this owner's folders: a page polls this every second
                ids = [child.name for child in self.root.iterdir()
                       if runs.RUN_ID_PATTERN.match(child.name) and self._owner_of(child) == owner]
            rows = runs.list_runs(self.root, ids=ids)
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
            return list(self._children) + list(self._adopted)

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
        if self._pool is not None:
            self._pool.close()  # idle workers exit now, busy ones when their run has ended
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

    def _start_queued(self) -> None:
        while self._queue and len(self._children) + len(self._adopted) < self.max_concurrent:
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
        worker = None
        if self._pool is not None and command[:3] == [self.python, "-m", "core"]:
            worker = self._pool.take()
        if worker is not None:  # a warm worker runs the same command in its own process
            child = worker.give(run_id, command[3:], run_dir / "log.txt")
        else:
            with open(run_dir / "log.txt", "ab") as log_file:
                child = subprocess.Popen(command, cwd=REPO_ROOT, env=self._child_env(), stdin=subprocess.DEVNULL,
                                         stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self._children[run_id] = child
        try:
            create_time = psutil.Process(child.pid).create_time()
        except psutil.Error:
            create_time = None  # already gone; the next refresh reaps it
        runs.write_json_atomic(run_dir / "job.json", {**job, "command": command, "pid": child.pid,
                                                      "create_time": create_time, "warm": worker is not None,
                                                      "started": round(time.time(), 6)})

    # ------------------------------------------------------------------ watching
    def _check_process(self, run_id: str) -> None:
        run_dir = self.root / run_id
        child = self._children.get(run_id)
        if child is not None:
            returncode = child.poll()
            if returncode is None:
                self._enforce_stop_grace(run_id)
                return
            del self._children[run_id]
            reason = exit_reason(returncode, run_dir / "log.txt")
        else:
            process = self._adopted[run_id]
            if _alive(process):
                self._enforce_stop_grace(run_id)
                return
            del self._adopted[run_id]
            reason = ("the training process ended without reporting a result "
                      "(it was started before the server restarted); see log.txt in the run folder")
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
        child = self._children.get(run_id)
        try:
            if child is not None:
                if child.poll() is None:
                    os.killpg(child.pid, sig)  # its own session: take any helpers it forked too
            elif run_id in self._adopted:
                self._adopted[run_id].send_signal(sig)
        except (ProcessLookupError, psutil.Error):
            pass

    def _fail(self, run_id: str, error: str) -> None:
        writer = runs.RunWriter(self.root / run_id)
        writer.event("error", message=error)
        writer.set_status("failed", error=error)

    # ------------------------------------------------------------------ after a restart
    def _recover(self) -> None:
        """Rebuild the queue and the running set from the run folders on disk."""
        queued = []
        for row in runs.list_runs(self.root):
            run_id, run_dir, state = row["id"], Path(row["path"]), row["status"].get("state")
            try:
                if state == "queued":
                    job = runs.read_json(run_dir / "job.json", {})
                    queued.append((job.get("submitted", 0), run_id))
                elif state == "running":
                    process = _find_process(run_dir, row["status"])
                    if process is not None:
                        self._adopted[run_id] = process
                        if runs.stop_requested(run_dir):
                            self._stop_asked[run_id] = time.monotonic()
                    else:
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


def _find_process(run_dir: Path, status: dict) -> psutil.Process | None:
    """The live process of a run left "running", or None when it is gone (or its pid reused)."""
    job = runs.read_json(run_dir / "job.json", {})
    pid = job.get("pid") or status.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        process = psutil.Process(pid)
        if not _alive(process):
            return None
        recorded = job.get("create_time") if job.get("pid") == pid else status.get("create_time")
        if recorded is not None:
            if abs(process.create_time() - float(recorded)) > CREATE_TIME_TOLERANCE:
                return None
        elif str(run_dir) not in " ".join(process.cmdline()):
            # started outside a manager (no create_time): a reused pid would not name this folder
            return None
        return process
    except (psutil.Error, ValueError, TypeError):
        return None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
