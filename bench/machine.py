"""Which machine and software produced a set of figures, so anyone can judge and reproduce them."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine makes timings noisy."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit + ("+uncommitted changes" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def describe() -> dict:
    """Cores, CPU model, RAM, backend, device and library versions, date and commit."""
    import keras
    import numpy

    from core import backend

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__}
    if backend.name() == "tensorflow":
        import tensorflow

        versions["tensorflow"] = tensorflow.__version__
    elif backend.name() == "jax":
        import jax

        versions["jax"] = jax.__version__
    elif backend.name() == "torch":
        import torch

        versions["torch"] = torch.__version__
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": usable_cores(),
        "cpu_model": cpu_model(),
        "ram_gib": ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "backend": backend.name(),
        "device": backend.describe_device(),
        "versions": versions,
        "load_average_start": load_average(),
        "commit": git_commit(),
    }
