"""How the default settings were chosen: a small grid of candidates on the demo data, a few seeds each.

``python -m bench.defaults_check [--per-class 80] [--size 64] [--seeds 0 1 2] [--epochs 10] [--weights auto|none|PATH]``

Every candidate trains through core.training.train (the feature cache on, as the app trains) on the
same generated demo dataset and the same seeded split per seed, and the script prints, per candidate,
the mean and spread of the last epoch's validation accuracy (the best epoch's beside it, which is what
a run keeps) and the mean training seconds. It asserts nothing: it is a measurement for the README.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.run import resolve_weights  # noqa: E402
from core import demo_data, ingest, runs, training  # noqa: E402
from core.config import TrainConfig  # noqa: E402

# Every candidate names its freeze depth, head and rate: any of them given means recipe manual, and the
# defaults these were measured against have since changed (freeze depth 5 and Adam 1e-3 at first).
CANDIDATES = {
    "first defaults (k=5, gap head, Adam 1e-3)": {"freeze_depth": 5, "head": "gap", "learning_rate": 1e-3},
    "k=5, gap head, Adam 1e-2": {"freeze_depth": 5, "head": "gap", "learning_rate": 1e-2},
    "k=5, seed head, Adam 1e-3": {"freeze_depth": 5, "head": "seed", "learning_rate": 1e-3},
    "k=5, seed head, Adam 1e-4": {"freeze_depth": 5, "head": "seed", "learning_rate": 1e-4},
    "k=5, linear SVM": {"freeze_depth": 5, "head": "svm"},
    "k=4, gap head, Adam 1e-3": {"freeze_depth": 4, "head": "gap", "learning_rate": 1e-3},
    "manual defaults (k=4, gap head, Adam 1e-4)": {"freeze_depth": 4, "head": "gap", "learning_rate": 1e-4},
    "k=4, seed head, Adam 1e-4": {"freeze_depth": 4, "head": "seed", "learning_rate": 1e-4},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every candidate (10, as the README's table)")
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    args = parser.parse_args(argv)

    weights, note = resolve_weights(args.weights)
    work = Path(tempfile.mkdtemp(prefix="defaults_check_"))
    data = demo_data.write_demo_data(str(work / "demo"), per_class=args.per_class, size=args.size, seed=0)
    dataset = ingest.load_labeled(data, args.size)
    print(f"weights: {note}\ndata: {args.per_class} per class at {args.size} px; seeds {args.seeds}; "
          f"{args.epochs} epochs", flush=True)
    for name, settings in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        last, best, seconds = [], [], []
        for seed in args.seeds:
            config = TrainConfig.from_dict({"weights": weights, "image_size": args.size, "seed": seed,
                                            "epochs": args.epochs, **settings})
            started = time.perf_counter()
            result = training.train(config, data, work / "runs" / f"{len(seconds)}-{seed}-{abs(hash(name))}",
                                    dataset=dataset)
            if result.state != "done":
                print(f"{name}, seed {seed}: {result.state}: {result.error}", flush=True)
                break
            epochs = [event for event in runs.read_all_events(result.run_dir)
                      if event["type"] == "epoch" and "val_accuracy" in event]
            last.append(epochs[-1]["val_accuracy"])
            best.append(result.val_accuracy)
            seconds.append(time.perf_counter() - started)
        if last:
            print(f"{name:40s} last epoch {_mean_std(last)}   best epoch {_mean_std(best)}   "
                  f"{sum(seconds) / len(seconds):5.1f} s a run", flush=True)
    return 0


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    std = (sum((value - mean) ** 2 for value in values) / max(1, len(values) - 1)) ** 0.5
    return f"{mean:.3f} +- {std:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
