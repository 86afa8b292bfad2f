"""Warm training workers for the job manager: processes that have already imported TensorFlow and Keras
(and built a VGG16 once), each reused for several runs, so a run's first batch does not wait for them.

A worker is ``python -m core.workers`` in its own session. It reads one task a line on its stdin (JSON:
the ``python -m core ...`` arguments and the run's log file), runs ``core.__main__.main`` on them with its
stdout and stderr sent to that log file (as a fresh process's would be), and answers ``done <exit code>``
on a control pipe of its own. After ``runs_per_worker`` runs, or when its memory has grown by more than
``retire_growth_mb`` since it was warm, it answers ``done <code> retire`` and exits; the pool starts a
replacement. A worker whose manager has gone (its stdin closed) exits when its current run has ended.

To the job manager a run in a worker looks like a process of its own (``WarmRun``: ``pid``, ``poll()``):
it is running while the worker works on it, its exit code is the one ``main`` returned, and a worker killed
mid-run gives that run the worker's exit status (a signal), so the manager fails it with the reason as it
would a killed process. Ending a run's process group (a stop that outlived its grace period) ends its worker,
which is then replaced.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

WARM_ENV = "TRANSFER_STUDIO_WARM_WORKERS"  # 0: every run in a fresh process; else the pool's size
RUNS_PER_WORKER = 8          # a worker retires after this many runs (memory the runs leave behind adds up)
RETIRE_GROWTH_MB = 1500      # ... or when its resident memory grew this much since it was warm
READY = "ready"


def pool_size(max_concurrent: int) -> int:
    """How many warm workers a manager keeps: $TRANSFER_STUDIO_WARM_WORKERS, else one per training slot."""
    value = os.environ.get(WARM_ENV, "").strip()
    if not value:
        return max_concurrent
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{WARM_ENV}={value!r}; expected a whole number (0: no warm workers)")
    return min(number, max_concurrent)


class Worker:
    """One warm worker process, seen from the manager."""

    def __init__(self, python: str, cwd: Path, env: dict, log_path: Path):
        read_end, write_end = os.pipe()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [python, "-m", "core.workers", "--control-fd", str(write_end)], cwd=cwd, env=env,
                stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT, pass_fds=(write_end,),
                start_new_session=True)
        os.close(write_end)
        self.pid = self.process.pid
        self.ready = threading.Event()
        self.retiring = False
        self.run_id: str | None = None
        self._answer: int | None = None
        self._answered = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(read_end,), name=f"worker-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as control:
            for line in control:
                words = line.split()
                if words[:1] == [READY]:
                    self.ready.set()
                elif words[:1] == ["done"] and len(words) >= 2:
                    self.retiring = "retire" in words[2:]
                    try:
                        self._answer = int(words[1])
                    except ValueError:
                        self._answer = 1
                    self._answered.set()

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def idle(self) -> bool:
        return self.run_id is None and not self.retiring and self.alive()

    def give(self, run_id: str, argv: list[str], log_path: Path) -> "WarmRun":
        self._answer = None
        self._answered.clear()
        self.run_id = run_id
        line = json.dumps({"argv": argv, "log": str(log_path)}) + "\n"
        self.process.stdin.write(line.encode())
        self.process.stdin.flush()
        return WarmRun(self)

    def answer(self) -> int | None:
        """The exit code of the run it was given, once it has answered (None before)."""
        return self._answer if self._answered.is_set() else None

    def close(self) -> None:
        """No more tasks: the worker exits once its current run (if any) has ended."""
        try:
            self.process.stdin.close()
        except OSError:
            pass


class WarmRun:
    """A run handed to a worker, as the job manager watches a process: ``pid`` (the worker's, which is also
    its process group) and ``poll()``."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.pid = worker.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        answer = self.worker.answer()
        if answer is None:
            code = self.worker.process.poll()
            if code is None:
                return None
            self.worker._reader.join(timeout=1)  # its last words may still be in the pipe
            answer = self.worker.answer()
            if answer is None:
                answer = code  # the worker died during the run (killed, out of memory): its status is the run's
        self.returncode = answer
        self.worker.run_id = None
        return answer


class WorkerPool:
    """Up to ``size`` warm workers, started ahead of the runs that will use them."""

    MAX_FAILED_STARTS = 3  # workers that died before they were warm: then every run starts cold
    KEPT_LOGS = 20         # worker logs kept in log_dir (the newest)

    def __init__(self, size: int, python: str, cwd: Path, env: dict, log_dir: Path):
        self.size, self.python, self.cwd, self.env, self.log_dir = size, python, cwd, env, log_dir
        self.workers: list[Worker] = []
        self.failed_starts = 0
        self.disabled = False  # set when workers keep dying before they are warm (see the log)
        self._prune_logs()

    def _prune_logs(self) -> None:
        try:
            logs = sorted(self.log_dir.glob("worker-*.log"))
            for old in logs[:-self.KEPT_LOGS]:
                old.unlink()
        except OSError:
            pass

    def _start(self) -> Worker:
        worker = Worker(self.python, self.cwd, self.env, self.log_dir / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-"
                        f"{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def fill(self) -> None:
        """Forget ended workers and start new ones until ``size`` are alive. Workers that keep dying before
        they are warm (a broken install, no memory) are not restarted for ever: after a few, the pool gives
        up and every run starts in a fresh process, which reports its own error."""
        for worker in [w for w in self.workers if not w.alive() and w.run_id is None]:
            self.workers.remove(worker)
            if not worker.ready.is_set():
                self.failed_starts += 1
                log.warning("warm worker %s ended before it was ready (exit %s); see %s", worker.pid,
                            worker.process.returncode, self.log_dir)
        if self.failed_starts >= self.MAX_FAILED_STARTS and not self.disabled:
            self.disabled = True
            log.warning("warm workers off: %d ended before they were ready; runs start in fresh processes",
                        self.failed_starts)
        if self.disabled:
            return
        for worker in [w for w in self.workers if w.retiring and w.run_id is None]:
            worker.close()  # it exits by itself; stop counting it
            self.workers.remove(worker)
        while len(self.workers) < self.size:
            self._start()

    def take(self) -> Worker | None:
        """An idle worker (the warmest first), or None when every one is busy."""
        self.fill()
        if self.disabled:
            return None
        idle = [worker for worker in self.workers if worker.idle]
        idle.sort(key=lambda worker: not worker.ready.is_set())
        return idle[0] if idle else None

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []


# ---------------------------------------------------------------------- the worker process

def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - memory is only a reason to retire early
        return 0.0


WARM_IMAGE_SIZES = (64,)  # the app's default image size: the VGG16 a worker builds ahead and keeps


def _warm_up() -> None:
    """Import what every run imports, and build a VGG16 once (its layer code and graph paths). When the
    ImageNet weights are here (Keras's cache or the server's file), build VGG16 with them at the common
    sizes and keep it (core.models.reusing_bases), so a run with the default weights builds nothing."""
    from core.quiet import import_keras_quietly

    import_keras_quietly()
    import keras  # noqa: F401

    from core import models, training  # noqa: F401
    from core import weights as weight_sources

    try:
        models.load_vgg16_base(32, "none")
        keras.backend.clear_session()
        if weight_sources.imagenet_file() is not None:  # never a download here: a run asks for that itself
            with models.reusing_bases():
                for size in WARM_IMAGE_SIZES:
                    models.load_vgg16_base(size, "imagenet")
    except Exception:  # noqa: BLE001 - a run will say what is wrong with its own model
        log.exception("warm-up build failed")


def _run_task(task: dict) -> int:
    """``python -m core <argv>`` in this process, its output to the run's log file."""
    import runpy

    import keras

    saved = os.dup(1), os.dup(2)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(task["log"], "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    try:
        # ``python -m core ARGS`` run in this process, as the program it is (not a module this one depends on)
        sys.argv = ["python -m core", *task["argv"]]
        runpy.run_module("core", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - main reports failures itself; anything else is this run's end
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        keras.backend.clear_session()
    return int(code or 0)


def worker_main(control_fd: int, runs_per_worker: int = RUNS_PER_WORKER,
                retire_growth_mb: float = RETIRE_GROWTH_MB) -> int:
    control = os.fdopen(control_fd, "w", buffering=1, encoding="utf-8")
    _warm_up()
    warm_rss = _rss_mb()
    control.write(f"{READY}\n")
    done = 0
    for line in sys.stdin:
        try:
            task = json.loads(line)
        except ValueError:
            continue
        code = _run_task(task)
        done += 1
        retire = done >= runs_per_worker or _rss_mb() - warm_rss > retire_growth_mb
        try:
            control.write(f"done {code}{' retire' if retire else ''}\n")
        except OSError:  # the manager has gone: nobody to tell, nothing more to do
            return 0
        if retire:
            return 0
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.workers", description="a warm training worker")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("TRANSFER_STUDIO_WORKER_RUNS",
                                                                       RUNS_PER_WORKER)))
    arguments = parser.parse_args()
    sys.exit(worker_main(arguments.control_fd, arguments.runs))
