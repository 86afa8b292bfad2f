"""Run one command as this process's only child and print its peak resident memory as JSON.

``python -m bench.peak_rss -- CMD ...``. getrusage(RUSAGE_CHILDREN) reports the largest peak of
any child waited for, so a fresh wrapper process with exactly one child measures exactly that
child (the training process as the job manager would start it), with nothing sampled or missed.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m bench.peak_rss -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    started = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"returncode": completed.returncode, "peak_rss_bytes": peak_kib * 1024,
                      "wall_seconds": round(seconds, 3), "stdout_tail": completed.stdout[-2000:],
                      "stderr_tail": completed.stderr[-2000:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
