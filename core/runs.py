"""The run directory: the one interface between a training process and everything that watches it.

Writers replace whole files atomically (temp file + rename) and append whole lines to
events.jsonl, so a reader polling at any moment never sees half a record.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

STATES = ("queued", "running", "done", "failed", "stopped")
FINISHED_STATES = ("done", "failed", "stopped")
STOP_FILE = "stop.request"
JOB_KINDS = ("train", "experiment")  # job.json's "kind"; a folder without one is a training run
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class RunIdError(ValueError):
    pass


class WorkspaceError(OSError):
    """The workspace cannot be written; the message says what to check."""


def workspace() -> Path:
    """The folder that holds datasets and runs: $TRANSFER_STUDIO_HOME, default ./workspace."""
    return Path(os.environ.get("TRANSFER_STUDIO_HOME") or "workspace").absolute()


WORKSPACE_PATH_WORDS = "a file on the server"


def without_workspace_paths(text: str) -> str:
    """``text`` with each path inside the server's workspace replaced by words: its folders are named by
    session tokens, and a message from core may quote one (a file that could not be written, say)."""
    root = workspace()
    for prefix in sorted({str(root), str(root.resolve())}, key=len, reverse=True):
        if prefix in text:
            text = re.sub(re.escape(prefix) + r"[^\s'\"(),;]*", WORKSPACE_PATH_WORDS, text)
    return text


def runs_root() -> Path:
    return workspace() / "runs"


def new_run_id() -> str:
    """Random and unguessable, so one session cannot guess another's runs; sortable by time."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(5)


def validate_run_id(run_id: str) -> str:
    """Accept only plain ids (letters, digits, - and _): never a path separator or '..'."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise RunIdError(f"not a valid run id: {str(run_id)[:80]!r} (letters, digits, '-' and '_' only)")
    return run_id


def run_path(run_id: str) -> Path:
    return runs_root() / validate_run_id(run_id)


# ---------------------------------------------------------------------- writing

def workspace_error(error: OSError) -> str:
    """Plain words for a file-system failure in the workspace."""
    if error.errno == errno.ENOSPC:
        return "the disk is full: free some space in the workspace folder and start the run again"
    where = error.filename or "the workspace folder"
    return (f"cannot write {where} ({error.strerror or error}): check that the workspace folder "
            "($TRANSFER_STUDIO_HOME, default ./workspace) exists and is writable")



def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=2, default=_json_default)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are as readable as events.jsonl
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _json_default(value):
    # numpy scalars and arrays end up in events and metrics
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class RunWriter:
    """Writes one run directory: config, status, events and result files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.events_path = self.path / "events.jsonl"
        self._started = time.time()

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def event(self, type: str, **fields) -> dict:
        """Append one event as one whole line (a single write on an O_APPEND descriptor)."""
        record = {"type": type, "time": round(time.time(), 3), **fields}
        line = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return record

    def progress(self, phase: str, fraction: float, message: str = "") -> dict:
        return self.event("progress", phase=phase, fraction=round(float(min(max(fraction, 0.0), 1.0)), 4),
                          message=message)

    def set_status(self, state: str | None = None, **fields) -> dict:
        """Merge fields into status.json (and set state) atomically."""
        status = read_status(self.path) or {}
        if state is not None:
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            status["state"] = state
            status.setdefault("times", {})[state] = round(time.time(), 3)
        status.update(fields)
        status["updated"] = round(time.time(), 3)
        write_json_atomic(self.path / "status.json", status)
        return status


# ---------------------------------------------------------------------- reading

def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def read_status(run_dir: str | os.PathLike) -> dict | None:
    return read_json(Path(run_dir) / "status.json")


def read_events(run_dir: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Events appended since byte ``offset``; returns (events, new offset).

    Only complete lines are consumed, so a line being written is picked up next time.
    """
    path = Path(run_dir) / "events.jsonl"
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        if line.strip():
            events.append(json.loads(line))
    return events, offset + end + 1


def read_all_events(run_dir: str | os.PathLike) -> list[dict]:
    return read_events(run_dir, 0)[0]


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask the training loop of this run to stop; it checks between batches. The file holds the time of the
    request (a file's own time is coarser than a small batch), so the run can tell how soon it stopped."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    path = Path(run_dir) / STOP_FILE
    if not path.exists():  # a second request keeps the first one's time
        temporary = path.with_name(f".{STOP_FILE}.{secrets.token_hex(4)}")
        temporary.write_text(f"{time.time():.6f}\n")
        os.replace(temporary, path)  # the request appears whole, time and all


def stop_request_time(run_dir: str | os.PathLike) -> float | None:
    """When the stop was requested (None without a request, or one written without its time)."""
    try:
        return float((Path(run_dir) / STOP_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def stop_requested(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


def job_kind(run_dir: str | os.PathLike) -> str:
    """What a folder under the runs root holds: "train" (a training run) or "experiment" (a set of them,
    core.experiments, whose own runs are inside it), as its job.json says."""
    return (read_json(Path(run_dir) / "job.json") or {}).get("kind") or "train"


def list_runs(root: str | os.PathLike | None = None, ids: Iterable[str] | None = None,
              kind: str | None = "train") -> list[dict]:
    """Summaries of runs on disk (newest first): id, path, kind, status and config; ``ids`` limits the list.

    kind: "train" (the default: the training runs, which are what every list of models shows), "experiment",
    or None for every job in the folder.
    """
    if kind is not None and kind not in JOB_KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(JOB_KINDS)} or None")
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    wanted = set(ids) if ids is not None else None
    rows = []
    for child in root.iterdir():
        if not child.is_dir() or not RUN_ID_PATTERN.match(child.name):
            continue
        if wanted is not None and child.name not in wanted:
            continue
        child_kind = job_kind(child)
        if kind is not None and child_kind != kind:
            continue
        rows.append({
            "id": child.name,
            "path": str(child),
            "kind": child_kind,
            "status": read_status(child) or {},
            "config": read_json(child / "config.json", {}),
        })
    rows.sort(key=lambda row: row["id"], reverse=True)
    return rows
