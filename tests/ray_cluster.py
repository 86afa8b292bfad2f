"""A real Ray cluster for the tests, on 127.0.0.1 only: a head (with the Jobs API) and extra nodes, each a
``ray start --block`` process of ours, ended by its own process id and those of its children. Never
``ray stop``: that would end every Ray process on the machine, other people's included.

Ray is part of requirements.txt, so nothing here skips: a head that cannot start fails the test.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env() -> dict:
    # no token from another Ray on this machine, no usage reporting, no network lookups
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


class RayCluster:
    """``with RayCluster(num_cpus=2) as cluster:`` a head at ``cluster.address`` (its dashboard, for
    JobSubmissionClient and $TRANSFER_STUDIO_RAY_ADDRESS); ``add_node(resources)`` and ``kill_node``."""

    def __init__(self, num_cpus: int = 2):
        self.num_cpus = num_cpus
        self.temp_dir = tempfile.mkdtemp(prefix="tsray", dir="/tmp")  # Ray's socket paths must stay short
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.nodes: list[subprocess.Popen] = []
        self.head: subprocess.Popen | None = None

    def _start(self, arguments: list[str], name: str) -> subprocess.Popen:
        log = open(Path(self.temp_dir) / f"{name}.log", "wb")
        ports = ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                 "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                 "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
                 "--min-worker-port", "0", "--max-worker-port", "0"]
        return subprocess.Popen([RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                                 *ports, *arguments], env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start(self) -> "RayCluster":
        from ray.job_submission import JobSubmissionClient

        self.head = self._start([
            "--head", "--port", str(self.gcs_port), "--num-cpus", str(self.num_cpus),
            "--ray-client-server-port", str(free_port()), "--include-dashboard=true",
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--temp-dir", self.temp_dir,
            # a dead node is noticed in about 2 s, not Ray's default 30 s
            "--system-config", json.dumps({"health_check_period_ms": 500, "health_check_failure_threshold": 4}),
        ], "head")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.head.poll() is not None:
                raise RuntimeError(f"the Ray head exited ({self.head.returncode}): {self.log_tail('head')}")
            try:
                self.client = JobSubmissionClient(self.address)
                self.client.list_jobs()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not answer in {START_TIMEOUT} s: {self.log_tail('head')}")
                time.sleep(0.3)

    def add_node(self, num_cpus: int = 1, resources: dict | None = None) -> subprocess.Popen:
        node = self._start(["--address", f"127.0.0.1:{self.gcs_port}", "--num-cpus", str(num_cpus),
                            "--resources", json.dumps(resources or {})], f"node{len(self.nodes)}")
        self.nodes.append(node)
        return node

    def kill_node(self, node: subprocess.Popen) -> None:
        """The node dies at once (SIGKILL to its processes), as when a machine loses power."""
        _kill_tree(node, signal.SIGKILL)

    def log_tail(self, name: str) -> str:
        try:
            return (Path(self.temp_dir) / f"{name}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        for node in self.nodes:
            _kill_tree(node, signal.SIGKILL)
        if self.head is not None:
            _kill_tree(self.head, signal.SIGTERM, wait=5)
            _kill_tree(self.head, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _kill_tree(process: subprocess.Popen, sig: int, wait: float = 5) -> None:
    """Signal a ``ray start --block`` process and every process under it (ours only, by pid)."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    for member in tree:
        try:
            member.send_signal(sig)
        except psutil.Error:
            pass
    psutil.wait_procs(tree, timeout=wait)
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
