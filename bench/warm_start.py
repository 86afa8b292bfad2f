"""Start -> the first sign of training, with a fresh process per run (cold), with warm workers, and as Ray Jobs
(issue 12).

``python -m bench.warm_start [--weights FILE] [--repeats N] [--ray]``

On the app's demo data (30 pictures a class at 64 px, as "Use the demo data" makes it) a real JobManager
takes each run the way the Train page's Start button submits it, and the clock runs from ``submit`` to:

- the first ``batch`` event of a manual-recipe run (every default but recipe manual): the first point of
  the live loss curve;
- the first progress event of the forward pass of a recipe-auto run (the default): the first move of the
  progress bar past loading and building.

Cold: ``TRANSFER_STUDIO_WARM_WORKERS=0``, each run in a fresh ``python -m core train`` process. Warm: one
worker per slot, started when the manager is (the app's manager starts with the server) and ready before the
first Start, as it is once a server has been up for a few seconds. Ray (``--ray``): each run a Ray Job on a
one-node Ray cluster started here on 127.0.0.1 (tests/ray_cluster.py), the same run, the same machine; also
Start -> "done" of the whole manual run, cold and on Ray, for the executor's overhead per run. Prints a table
of medians and the ratios; asserts nothing (a measurement for bench/results.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import machine


def first_sign(run_dir: Path, recipe: str) -> float | None:
    from core import runs

    for event in runs.read_all_events(run_dir):
        if recipe == "manual" and event.get("type") == "batch":
            return event["time"]
        if (recipe == "auto" and event.get("type") == "progress"
                and event.get("phase") not in (None, "load_data", "build_model")):
            return event["time"]
    return None


def measure(data: Path, weights: str, warm: bool, recipe: str, repeats: int, executor: str = "local",
            to_the_end: bool = False) -> list[float]:
    """Seconds from submit to the first sign of training (or, ``to_the_end``, to the run's "done")."""
    from core import jobs, runs
    from core.config import TrainConfig

    os.environ["TRANSFER_STUDIO_WARM_WORKERS"] = "1" if warm else "0"
    manager = jobs.JobManager(max_concurrent=1, poll_seconds=0.05, executor=executor)
    try:
        if warm:
            assert manager.executor.pool.workers[0].ready.wait(300), "the warm worker never got ready"
        seconds = []
        for repeat in range(repeats):
            config = TrainConfig.from_dict({"recipe": recipe, "weights": weights, "seed": repeat,
                                            **({"epochs": 3} if to_the_end else {})})
            started = time.time()
            run_id = manager.submit(config, str(data), owner="bench-warm-start")
            run_dir = manager.root / run_id
            if to_the_end:
                while (status := runs.read_status(run_dir) or {}).get("state") not in runs.FINISHED_STATES:
                    time.sleep(0.02)
                if status["state"] != "done":
                    raise RuntimeError(f"run {run_id} ended {status['state']}: {status.get('error')}")
                seconds.append(round(status["times"]["done"] - started, 2))
                manager.refresh()
                time.sleep(0.5)
                continue
            sign = None
            while sign is None:
                time.sleep(0.02)
                sign = first_sign(run_dir, recipe)
                state = (runs.read_status(run_dir) or {}).get("state")
                if sign is None and state in runs.FINISHED_STATES:
                    raise RuntimeError(f"run {run_id} ended ({state}) before its first sign of training: "
                                       f"{(runs.read_status(run_dir) or {}).get('error')}")
            seconds.append(round(sign - started, 2))
            manager.stop(run_id, owner="bench-warm-start")  # the rest of the run is not measured here
            while (runs.read_status(run_dir) or {}).get("state") not in runs.FINISHED_STATES:
                time.sleep(0.05)
            manager.refresh()
            time.sleep(0.5)  # the worker (or the process) has let go of the run
        return seconds
    finally:
        manager.shutdown(stop_running=True, timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a VGG16 (no top) weights file (default: the offline one, else none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="also as Ray Jobs on a local one-node Ray cluster")
    args = parser.parse_args(argv)
    from bench.run import resolve_weights

    weights = args.weights or resolve_weights("auto")[0]
    with tempfile.TemporaryDirectory(prefix="warm-start-") as scratch:
        os.environ["TRANSFER_STUDIO_HOME"] = str(Path(scratch) / "workspace")
        from core import demo_data

        data = Path(scratch) / "demo"
        demo_data.write_demo_data(str(data), per_class=30, size=64, seed=0)
        rows, ray_rows = [], []
        for recipe in ("manual", "auto"):
            cold = measure(data, weights, False, recipe, args.repeats)
            warm = measure(data, weights, True, recipe, args.repeats)
            rows.append((recipe, cold, warm))
        if args.ray:
            from tests.ray_cluster import RayCluster

            with RayCluster(num_cpus=2) as cluster:
                os.environ["TRANSFER_STUDIO_RAY_ADDRESS"] = cluster.address
                for to_the_end in (False, True):
                    cold = measure(data, weights, False, "manual", args.repeats, to_the_end=to_the_end)
                    ray = measure(data, weights, False, "manual", args.repeats, "ray", to_the_end=to_the_end)
                    ray_rows.append((to_the_end, cold, ray))
    print(f"Start -> first sign of training, demo data 4 x 30 at 64 px, weights {Path(weights).name}; "
          f"{machine.cpu_model()}, {machine.usable_cores()} cores, load average {[round(x, 2) for x in os.getloadavg()]}")
    print("| recipe | what appears | cold (fresh process) | warm worker | warm / cold |")
    print("|---|---|---|---|---|")
    for recipe, cold, warm in rows:
        what = "first batch of the loss curve" if recipe == "manual" else "forward pass's first progress"
        print(f"| {recipe} | {what} | {statistics.median(cold):.1f} s {cold} | {statistics.median(warm):.1f} s "
              f"{warm} | {statistics.median(warm) / statistics.median(cold):.2f} |")
    if ray_rows:
        print("\n| manual run, Start -> | local, fresh process | Ray Job (one-node cluster) | Ray - local |")
        print("|---|---|---|---|")
        for to_the_end, cold, ray in ray_rows:
            what = "done (3 epochs)" if to_the_end else "first batch"
            print(f"| {what} | {statistics.median(cold):.1f} s {cold} | {statistics.median(ray):.1f} s {ray} | "
                  f"{statistics.median(ray) - statistics.median(cold):+.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
