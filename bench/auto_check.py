"""Recipe auto against the manual defaults, scored on test pictures no run trained on: real photos and shapes.

``python -m bench.auto_check [--dev /tmp/dev] [--shapes-per-class 30] [--test-per-class 50] [--size 64]
[--seeds 0 1] [--weights auto|none|PATH] [--out RESULTS_JSON]``

Two datasets, each a training folder and a test folder that share no picture (the script also counts the
test pictures that equal a training one pixel for pixel: flat crops can):

* real photos: ``../shared/tools/real_devset.py``'s crops of scikit-image's photographs, 8 classes, 10
  training crops a class from the left half of each photograph and 40 test crops from the right half
  (``--dev``/train and ``--dev``/test; written there when missing, which needs scikit-image);
* demo shapes: ``core.demo_data``, ``--shapes-per-class`` pictures a class at seed 0 to train on and
  ``--test-per-class`` at seed 1 to test on (another seed draws other pictures).

Each recipe trains through core.training.train on the training folder alone and splits it as a user's run
would: recipe auto trains on every picture below 50 a class (what it reports is then cross-validated), the
manual defaults (blocks 1-4 frozen and cached, block 5 and a GAP head, Adam 1e-4, 20 epochs) hold 20 % out
for validation. Every model is then scored on the test folder with core.evaluation.evaluate. The script
prints a Markdown table (test accuracy per seed and the mean, what the run itself reported, seconds, what
auto chose) and the load averages; it asserts nothing: it is a measurement for bench/results.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import machine  # noqa: E402
from bench.run import _quiet_tensorflow, resolve_weights  # noqa: E402
from core import demo_data, evaluation, ingest, runs, training  # noqa: E402
from core.config import TrainConfig  # noqa: E402

DEVSET_TOOL = machine.REPO.parent / "shared" / "tools" / "real_devset.py"
RECIPES = {
    "recipe auto (the default)": {"recipe": "auto"},
    "manual defaults": {"recipe": "manual"},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", default="/tmp/dev", help="the real-photo set: DEV/train and DEV/test "
                                                          "(written by ../shared/tools/real_devset.py when missing)")
    parser.add_argument("--shapes-per-class", type=int, default=30, help="demo shapes a class to train on")
    parser.add_argument("--test-per-class", type=int, default=50, help="demo shapes a class to test on")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    weights, note = resolve_weights(args.weights)
    _quiet_tensorflow()
    work = Path(tempfile.mkdtemp(prefix="auto_check_"))
    facts = machine.describe()
    print(f"date: {facts['date']}; {facts['cpu_model']}, {facts['cores']} cores; load average "
          f"{facts['load_average_start']}\nweights: {note}\nseeds {args.seeds}, {args.size} px", flush=True)

    datasets = {"real photos": _real_photos(Path(args.dev), args.size)}
    shapes_train = demo_data.write_demo_data(str(work / "shapes_train"), per_class=args.shapes_per_class,
                                             size=args.size, seed=0)
    shapes_test = demo_data.write_demo_data(str(work / "shapes_test"), per_class=args.test_per_class,
                                            size=args.size, seed=1)
    datasets["demo shapes"] = (shapes_train, shapes_test)

    rows = []
    for data_name, (train_dir, test_dir) in datasets.items():
        described = _describe_split(train_dir, test_dir, args.size)
        print(f"{data_name}: {described}", flush=True)
        for recipe_name, settings in RECIPES.items():
            runs_here = [_train_and_test(train_dir, test_dir, work / "runs" / f"{data_name}-{recipe_name}-{seed}",
                                         {"weights": weights, "image_size": args.size, "seed": seed, **settings})
                         for seed in args.seeds]
            rows.append({"data": data_name, "described": described, "recipe": recipe_name, "seeds": args.seeds,
                         "runs": runs_here})
            print(_row(rows[-1]), flush=True)
    load_end = machine.load_average()

    print(f"\nload average (1, 5, 15 min) at start / end: {facts['load_average_start']} / {load_end}\n")
    print("\n".join(table(rows)))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": {**facts, "load_average_end": load_end}, "weights": note,
                                              "rows": rows}, indent=2, default=str) + "\n")
    return 0


def _real_photos(dev: Path, size: int) -> tuple[str, str]:
    if not (dev / "train").is_dir() or not (dev / "test").is_dir():
        subprocess.run([sys.executable, str(DEVSET_TOOL), str(dev), "--size", str(size)], check=True)
    return str(dev / "train"), str(dev / "test")


def _describe_split(train_dir: str, test_dir: str, size: int) -> str:
    """The two folders in words, with how many test pictures equal a training picture pixel for pixel.

    The folders never share a picture by where it comes from (another half of the photograph, another seed);
    a crop of a flat region (the real set's retina has a black border) can still equal one in every pixel.
    """
    train, test = (ingest.load_labeled(folder, size) for folder in (train_dir, test_dir))
    seen = {_digest(image) for image in train.images}
    repeated = [path for path, image in zip(test.paths, test.images) if _digest(image) in seen]
    per_class = len(train.labels) // len(train.classes)
    same = (f"{len(repeated)} of them equal to a training picture pixel for pixel "
            f"({', '.join(sorted({path.split('/')[0] for path in repeated}))})" if repeated
            else "none of them equal to a training picture")
    return (f"{len(train.classes)} classes, {len(train.labels)} training pictures ({per_class} a class), "
            f"{len(test.labels)} test pictures, {same}")


def _digest(image) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


def _train_and_test(train_dir: str, test_dir: str, run_dir: Path, settings: dict) -> dict:
    import keras

    keras.backend.clear_session()
    config = TrainConfig.from_dict(settings)
    started = time.perf_counter()
    result = training.train(config, train_dir, run_dir)
    wall_seconds = round(time.perf_counter() - started, 2)
    if result.state != "done":
        raise SystemExit(f"{run_dir.name}: {result.state}: {result.error}")
    tested = evaluation.evaluate(run_dir, test_dir, feature_map=None)
    status = runs.read_status(run_dir) or {}
    candidates = runs.read_json(Path(run_dir) / "candidates.json")
    chosen = candidates["candidates"][candidates["chosen"]]["name"] if candidates else None
    return {"seed": config.seed, "test_accuracy": tested["accuracy"], "test_pictures": tested["n"],
            "reported_accuracy": result.val_accuracy,
            "reported_by": status.get("evaluation", "validation_split"), "train_seconds": result.train_seconds,
            "wall_seconds": wall_seconds, "chosen": chosen}


def _mean(values) -> float:
    return sum(values) / len(values)


def _row(row: dict) -> str:
    runs_here = row["runs"]
    return (f"  {row['recipe']:28s} test accuracy " + " / ".join(f"{run['test_accuracy']:.3f}" for run in runs_here)
            + f" (mean {_mean([run['test_accuracy'] for run in runs_here]):.3f}), reported "
            + " / ".join(f"{run['reported_accuracy']:.3f}" for run in runs_here)
            + f", {_mean([run['train_seconds'] for run in runs_here]):.1f} s training, "
            + f"{_mean([run['wall_seconds'] for run in runs_here]):.1f} s wall a run")


def table(rows: list[dict]) -> list[str]:
    """The Markdown table for results.md."""
    seeds = rows[0]["seeds"] if rows else []
    lines = ["| data | recipe | test accuracy, seed " + " / ".join(map(str, seeds)) + " | mean | the run's own "
             "estimate | training seconds | wall seconds | auto chose |", "|---|---|---|---|---|---|---|---|"]
    words = {"validation_split": "validation split", "cross_validation": "cross-validated",
             "held_out": "held-out training pictures"}
    for row in rows:
        runs_here = row["runs"]
        reported = [f"{100 * run['reported_accuracy']:.1f} %" for run in runs_here]
        measured_by = [words.get(run["reported_by"], run["reported_by"]) for run in runs_here]
        if len(set(measured_by)) == 1:
            reported = " / ".join(reported) + f" ({measured_by[0]})"
        else:
            reported = " / ".join(f"{value} ({how})" for value, how in zip(reported, measured_by))
        lines.append(" | ".join([
            f"| {row['data']}", row["recipe"],
            " / ".join(f"{100 * run['test_accuracy']:.1f} %" for run in runs_here),
            f"**{100 * _mean([run['test_accuracy'] for run in runs_here]):.1f} %**",
            reported,
            f"{_mean([run['train_seconds'] for run in runs_here]):.1f} s",
            f"{_mean([run['wall_seconds'] for run in runs_here]):.1f} s",
            " / ".join(run["chosen"] for run in runs_here) if runs_here[0]["chosen"] else "–"]) + " |")
    return lines + [""]


if __name__ == "__main__":
    raise SystemExit(main())
