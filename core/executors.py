"""Where a job's command runs: on this machine (fresh processes or warm workers), or as Ray Jobs on a cluster.

An executor only starts a job's command, ends it, and says whether it is still going and, when it has ended
without writing its own final state, why, in words. The queue, the limits, the owners and the states are the
job manager's (core.jobs), the same whichever executor runs the commands. Chosen by
$TRANSFER_STUDIO_EXECUTOR: ``local`` (the default) or ``ray``.

Ray (``pip install "ray[default]"``): each run is a Ray Job whose entrypoint is the run's own command
(``python -m core train DATA --out RUN_DIR ...``), its submission id the run id, its owner in the metadata.
Ray never re-runs a job's entrypoint, so a killed run fails once, with its exit code. The nodes see the
workspace and this checkout at the same paths (a shared filesystem): a node that cannot see the run folder
fails the run at once with a message that says so.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
from pathlib import Path

import psutil

from core import workers

log = logging.getLogger(__name__)

EXECUTOR_ENV = "TRANSFER_STUDIO_EXECUTOR"
EXECUTORS = ("local", "ray")
RAY_ADDRESS_ENV = "TRANSFER_STUDIO_RAY_ADDRESS"      # the Ray dashboard's address (its Jobs API)
DEFAULT_RAY_ADDRESS = "http://127.0.0.1:8265"
RAY_GPUS_ENV = "TRANSFER_STUDIO_RAY_GPUS"            # GPUs each run asks Ray for (default 0)
RAY_RESOURCES_ENV = "TRANSFER_STUDIO_RAY_RESOURCES"  # custom Ray resources each run asks for, as JSON
# the entrypoint's own exit codes when a node cannot see what every node must share
NO_WORKSPACE_EXIT = 78
NO_PYTHON_EXIT = 79
# psutil's create_time is a float from /proc; the same process reads back equal to well within this.
CREATE_TIME_TOLERANCE = 1.0
# environment variables a Ray run gets from the app's server (a node's own environment gives the rest)
PASSED_ON = ("TRANSFER_STUDIO_", "KERAS_", "TF_CPP_", "CUDA_VISIBLE_DEVICES")


class ExecutorError(RuntimeError):
    """The executor cannot be used (a bad setting, Ray not installed or not reachable), in plain words."""


def executor_name() -> str:
    """$TRANSFER_STUDIO_EXECUTOR, checked: "local" (the default) or "ray"."""
    value = os.environ.get(EXECUTOR_ENV, "").strip().lower() or "local"
    if value not in EXECUTORS:
        raise ExecutorError(f"{EXECUTOR_ENV}={os.environ.get(EXECUTOR_ENV)!r}; expected one of: "
                            f"{', '.join(EXECUTORS)}")
    return value


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
    if returncode in (NO_WORKSPACE_EXIT, NO_PYTHON_EXIT) and last:
        return last
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


# ---------------------------------------------------------------------- handles: one started job each

class Handle:
    """A started job as the manager watches it: ``ended()`` is None while it goes, else why it ended (used
    only when the job wrote no final state itself); ``terminate(sig)`` ends it; ``record()`` goes into
    job.json so a restarted manager can find it again."""

    pid: int | None = None

    def ended(self) -> str | None:
        raise NotImplementedError

    def terminate(self, sig: int) -> None:
        raise NotImplementedError

    def record(self) -> dict:
        return {}


class ProcessHandle(Handle):
    """A process this manager started: a fresh ``python -m core ...`` (its own process group) or a run in
    a warm worker (core.workers.WarmRun, whose pid is the worker's)."""

    def __init__(self, child, log_path: Path, warm: bool):
        self.child, self.log_path, self.warm, self.pid = child, log_path, warm, child.pid

    def ended(self) -> str | None:
        code = self.child.poll()
        return None if code is None else exit_reason(code, self.log_path)

    def terminate(self, sig: int) -> None:
        if self.child.poll() is None:
            try:
                os.killpg(self.pid, sig)  # its own session: take any helpers it forked too
            except ProcessLookupError:
                pass

    def record(self) -> dict:
        try:
            create_time = psutil.Process(self.pid).create_time()
        except psutil.Error:
            create_time = None  # already gone; the next refresh reaps it
        return {"pid": self.pid, "create_time": create_time, "warm": self.warm}


class AdoptedHandle(Handle):
    """A process still alive from before the manager restarted."""

    REASON = ("the training process ended without reporting a result (it was started before the server "
              "restarted); see log.txt in the run folder")

    def __init__(self, process: psutil.Process):
        self.process, self.pid = process, process.pid

    def ended(self) -> str | None:
        return None if _alive(self.process) else self.REASON

    def terminate(self, sig: int) -> None:
        try:
            self.process.send_signal(sig)
        except psutil.Error:
            pass


class LocalExecutor:
    """Runs each command on this machine: a training run in an idle warm worker when there is one, anything
    else (an experiment, which starts processes of its own) in a fresh process."""

    name = "local"

    def __init__(self, python: str, cwd: Path, env: dict, warm_workers: int, worker_logs: Path):
        self.python, self.cwd, self.env = python, cwd, env
        self.pool = (workers.WorkerPool(warm_workers, python, cwd, env, worker_logs) if warm_workers > 0 else None)
        if self.pool is not None:
            self.pool.fill()  # TensorFlow's import starts now, not when the first run does

    def start(self, run_id: str, run_dir: Path, command: list[str], owner: str | None) -> Handle:
        log_path = run_dir / "log.txt"
        worker = None
        if self.pool is not None and command[:4] == [self.python, "-m", "core", "train"]:
            worker = self.pool.take()
        if worker is not None:  # a warm worker runs the same command in its own process
            try:
                return ProcessHandle(worker.give(run_id, command[3:], log_path), log_path, warm=True)
            except OSError:  # it died between take() and give(): this run starts cold instead
                worker.run_id = None
        with open(log_path, "ab") as log_file:
            child = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        return ProcessHandle(child, log_path, warm=False)

    def adopt(self, run_id: str, run_dir: Path, job: dict, status: dict) -> Handle | None:
        process = _find_process(run_dir, job, status)
        return AdoptedHandle(process) if process is not None else None

    def refresh(self) -> None:
        if self.pool is not None:
            self.pool.fill()  # replace retired and dead workers

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()  # idle workers exit now, busy ones when their run has ended


def _find_process(run_dir: Path, job: dict, status: dict) -> psutil.Process | None:
    """The live process of a run left "running", or None when it is gone (or its pid reused)."""
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


# ---------------------------------------------------------------------- Ray

class RayHandle(Handle):
    """A run submitted as a Ray Job (submission id = run id)."""

    def __init__(self, executor: "RayExecutor", run_id: str, log_path: Path):
        self.executor, self.run_id, self.log_path = executor, run_id, log_path
        self.stop_sent = False

    def ended(self) -> str | None:
        info = self.executor.info(self.run_id)
        if info is None:
            return "the Ray cluster no longer knows this run (its head restarted?); see log.txt in the run folder"
        if not info.status.is_terminal():
            return None
        return self.executor.reason(info, self.log_path)

    def terminate(self, sig: int) -> None:
        # Ray's stop_job sends SIGTERM, then SIGKILL after $RAY_JOB_STOP_WAIT_TIME_S: one call does both
        if not self.stop_sent:
            self.stop_sent = True
            try:
                self.executor.client.stop_job(self.run_id)
            except Exception:  # noqa: BLE001 - already ended, or the head is gone: the next poll says which
                log.exception("could not stop Ray job %s", self.run_id)

    def record(self) -> dict:
        return {"ray_job": self.run_id, "ray_address": self.executor.address, "warm": False}


class RayExecutor:
    """Runs each command as a Ray Job on the cluster at $TRANSFER_STUDIO_RAY_ADDRESS (the head's dashboard,
    default http://127.0.0.1:8265)."""

    name = "ray"

    def __init__(self, python: str, cwd: Path, env: dict, address: str | None = None):
        self.python, self.cwd = python, cwd
        self.address = address or os.environ.get(RAY_ADDRESS_ENV, "").strip() or DEFAULT_RAY_ADDRESS
        self.env_vars = {key: value for key, value in env.items() if key.startswith(PASSED_ON)}
        self.env_vars["PYTHONUNBUFFERED"] = "1"
        self.num_gpus = _number_from_env(RAY_GPUS_ENV, 0.0)
        self.resources = _resources_from_env()
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as error:
            raise ExecutorError(f"{EXECUTOR_ENV}=ray needs Ray on this server: pip install \"ray[default]\" "
                                f"({error})") from None
        try:
            self.client = JobSubmissionClient(self.address)
        except Exception as error:  # noqa: BLE001 - any failure to connect is the same message
            raise ExecutorError(f"cannot reach the Ray cluster at {self.address} ({type(error).__name__}): start "
                                f"its head with `ray start --head --dashboard-host 127.0.0.1` or set "
                                f"{RAY_ADDRESS_ENV} to its dashboard's address") from None
        self._known: dict[str, object] = {}  # run id -> JobDetails, from the last list_jobs()

    def entrypoint(self, run_dir: Path, command: list[str]) -> str:
        """The shell line a node runs: checks that it sees the workspace and the interpreter, then becomes
        the run's own command (exec: Ray's exit code and signals are the training process's)."""
        log_path = shlex.quote(str(run_dir / "log.txt"))
        folder = shlex.quote(str(run_dir))
        return (f"if [ ! -d {folder} ]; then echo \"this Ray node cannot see the workspace folder {run_dir}: "
                f"mount the shared workspace at the same path on every node\"; exit {NO_WORKSPACE_EXIT}; fi; "
                f"if [ ! -x {shlex.quote(command[0])} ]; then echo \"this Ray node has no {command[0]}: install "
                f"Transfer Studio at the same path on every node\" | tee -a {log_path}; exit {NO_PYTHON_EXIT}; fi; "
                f"cd {shlex.quote(str(self.cwd))} && exec {shlex.join(command)} >> {log_path} 2>&1")

    def start(self, run_id: str, run_dir: Path, command: list[str], owner: str | None) -> Handle:
        self.client.submit_job(
            entrypoint=self.entrypoint(run_dir, command), submission_id=run_id,
            metadata={"owner": str(owner or ""), "app": "transfer-studio", "run_dir": str(run_dir)},
            runtime_env={"env_vars": self.env_vars}, entrypoint_num_cpus=1,
            entrypoint_num_gpus=self.num_gpus or None, entrypoint_resources=self.resources or None)
        return RayHandle(self, run_id, run_dir / "log.txt")

    def adopt(self, run_id: str, run_dir: Path, job: dict, status: dict) -> Handle | None:
        if not job.get("ray_job"):
            return None
        info = self.info(run_id)
        if info is None or info.status.is_terminal():
            return None
        return RayHandle(self, run_id, run_dir / "log.txt")

    def info(self, run_id: str):
        """The Ray Job's details, or None when the cluster does not know it."""
        try:
            return self.client.get_job_info(run_id)
        except RuntimeError:  # "Job ... does not exist"
            return None

    def reason(self, info, log_path: Path) -> str:
        """Why a Ray Job ended, in the same words as a local process's end where Ray gives an exit code."""
        code = getattr(info, "driver_exit_code", None)
        if code in (NO_WORKSPACE_EXIT, NO_PYTHON_EXIT):  # said on the node, where the run folder is not
            said = [line for line in (info.message or "").splitlines() if line.startswith("this Ray node")]
            if said:
                return said[-1][:300]
        if isinstance(code, int):
            return exit_reason(code, log_path)
        if "node" in (info.message or "") and "died" in (info.message or ""):
            return ("the machine training this run (a Ray node) stopped or lost contact with the cluster; "
                    "start the run again")
        message = (info.message or "").strip().splitlines()
        first = message[0][:300] if message else str(info.status)
        if info.status.name == "STOPPED":
            return "the run was stopped on the Ray cluster"
        return f"the Ray cluster ended the run: {first}"

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _number_from_env(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ExecutorError(f"{name}={value!r}; expected a number of at least 0")
    return number


def _resources_from_env() -> dict:
    value = os.environ.get(RAY_RESOURCES_ENV, "").strip()
    if not value:
        return {}
    try:
        resources = json.loads(value)
        if not isinstance(resources, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) and v >= 0
                                                       for k, v in resources.items()):
            raise ValueError
    except ValueError:
        raise ExecutorError(f"{RAY_RESOURCES_ENV}={value!r}; expected a JSON object of resource names and "
                            f"amounts, such as {{\"gpu_server\": 1}}") from None
    return {key: float(amount) for key, amount in resources.items()}


def make(name: str | None, python: str, cwd: Path, env: dict, warm_workers: int, worker_logs: Path):
    """The executor named ``name`` (default: $TRANSFER_STUDIO_EXECUTOR, else local)."""
    name = name or executor_name()
    if name not in EXECUTORS:
        raise ExecutorError(f"executor {name!r}; expected one of: {', '.join(EXECUTORS)}")
    if name == "ray":
        return RayExecutor(python, cwd, env)
    return LocalExecutor(python, cwd, env, warm_workers, worker_logs)
