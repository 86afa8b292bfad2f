"""The measurements, each a function that returns plain figures (no formatting, no assertions).

Every core run goes through core.training.train and is read back from its run directory
(status.json, events.jsonl, metrics.json), exactly as the app reads it. The seed recipe runs in
plain Keras (bench/seed_recipe.py). All runs of one comparison share one dataset and one split.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.machine import REPO, load_average
from core.config import FINE_TUNE_LEARNING_RATE


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says which and why."""


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run; FULL is what results.md reports, QUICK only checks the code runs."""

    name: str
    image_size: int
    per_class: int               # images per class of the main dataset
    freeze_epochs: int           # epochs of each partial-freeze run
    memory_epochs: int           # epochs of each training measured for peak RSS
    memory_processes: tuple      # which processes get their peak RSS measured: "import", "cached", "uncached"
    scaling_totals: tuple        # total images (all classes) of each scaling point
    scaling_epochs: int
    latency_repeats: int         # single-image predictions timed
    throughput_batch: int        # images per batch for batch throughput
    timing_per_class: int = 50   # pictures a class of recipe auto's timing check (issue 10: 200 at 64 px)
    defaults_epochs: int | None = None  # epochs of the manual defaults beside recipe auto (None: TrainConfig's)
    spread_seeds: int = 5        # seeds of the cached seed preset, for the accuracy spread
    paired_seeds: int = 3        # seeds at which plain and cached both train (same split, same start)
    seed_epochs: int = 10        # the seed recipe's (and the seed preset's) 10 epochs
    batch_size: int = 32
    seed: int = 0


FULL = Plan("full", image_size=64, per_class=150, freeze_epochs=5, memory_epochs=3,
            memory_processes=("import", "cached", "uncached"),
            scaling_totals=(100, 200, 400, 800), scaling_epochs=10, latency_repeats=100, throughput_batch=64)
QUICK = Plan("quick", image_size=32, per_class=5, freeze_epochs=2, memory_epochs=1, memory_processes=("cached",),
             timing_per_class=5, defaults_epochs=2, spread_seeds=1, paired_seeds=1,
             scaling_totals=(12, 24), scaling_epochs=1, latency_repeats=10, throughput_batch=16)


@dataclass
class Context:
    plan: Plan
    weights: str                 # what core and the seed recipe load: "none", "imagenet" or a file
    work: Path                   # scratch folder for datasets and run directories
    data_dir: Path               # the main dataset on disk
    dataset: object              # core.ingest.Dataset of data_dir at plan.image_size
    train_idx: np.ndarray
    val_idx: np.ndarray
    log: Callable[[str], None] = print
    runs: dict = field(default_factory=dict)  # name -> summary of every core run, for reuse


# ---------------------------------------------------------------------- helpers

def core_run(ctx: Context, name: str, *, data_dir: Path | None = None, split: tuple | None = None,
             **settings) -> dict:
    """Train through core.training.train and summarise its run directory.

    ``split`` (train indices, validation indices) is handed to core as is; without it core draws its
    own (recipe auto with few pictures a class keeps none). Returns train_seconds, wall_seconds (the
    whole train call), val_accuracy (the best epoch, what core keeps), final_val_accuracy (the last
    epoch), epoch_seconds, cache_seconds (the feature_cache phase), phase_seconds, the cache note and,
    for recipe auto, what it chose (candidates.json).
    """
    import keras

    from core import runs, training
    from core.config import TrainConfig

    keras.backend.clear_session()  # each run builds fresh models; drop the previous run's graphs
    values = {"weights": ctx.weights, "image_size": ctx.plan.image_size, "batch_size": ctx.plan.batch_size,
              "seed": ctx.plan.seed, **settings}
    config = TrainConfig.from_dict(values)
    run_dir = ctx.work / "runs" / name
    dataset = None  # another folder than the main dataset: core loads it, as the app would
    if data_dir is None:
        data_dir, dataset = ctx.data_dir, ctx.dataset
    ctx.log(f"  core run {name}: {_describe(settings)}")
    started = time.perf_counter()
    result = training.train(config, str(data_dir), run_dir, dataset=dataset, split=split)
    wall_seconds = round(time.perf_counter() - started, 3)
    if result.state != "done":
        raise BenchError(f"core run {name} ended {result.state}: {result.error}")
    events = runs.read_all_events(run_dir)
    epochs = [event for event in events if event["type"] == "epoch"]
    phases = {event["name"]: event["seconds"] for event in events if event["type"] == "phase"}
    status = runs.read_status(run_dir) or {}
    chosen = runs.read_json(run_dir / "candidates.json")
    summary = {
        "run_dir": str(run_dir),
        "settings": settings,
        "recipe": config.recipe,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall_seconds,
        "val_accuracy": result.val_accuracy,
        "final_val_accuracy": epochs[-1].get("val_accuracy") if epochs else None,
        "val_accuracy_per_epoch": [event.get("val_accuracy") for event in epochs],
        "epochs": len(epochs),
        "epoch_seconds": [event["seconds"] for event in epochs],
        "cache_seconds": phases.get("feature_cache"),
        "phase_seconds": phases,
        "feature_cache": status.get("feature_cache"),
        "evaluation": status.get("evaluation"),
        "device": status.get("device"),
        "chosen": _chosen(chosen),
    }
    ctx.log(f"    train_seconds {summary['train_seconds']}, val_accuracy {summary['val_accuracy']:.3f}")
    ctx.runs[name] = summary
    return summary


def _chosen(candidates: dict | None) -> dict | None:
    """Recipe auto's choice from candidates.json: the winner's name and kind, the reason, the scores."""
    if not candidates or not candidates.get("candidates"):
        return None
    winner = candidates["candidates"][candidates["chosen"]]
    return {"name": winner["name"], "kind": winner["kind"], "block": winner["block"],
            "cv_accuracy": winner["cv_accuracy"], "reason": candidates.get("reason"),
            "candidates": len(candidates["candidates"]), "scoring": candidates.get("scoring")}


def _describe(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items()) or "defaults"


def steady_epoch_seconds(epoch_seconds: list[float]) -> float | None:
    """Median epoch time leaving out the first epoch (it also pays for tracing the graph)."""
    if not epoch_seconds:
        return None
    rest = epoch_seconds[1:] or epoch_seconds
    return round(statistics.median(rest), 4)


def _ratio(numerator, denominator) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


# ---------------------------------------------------------------------- 1. seed recipe

def seed_recipe(ctx: Context) -> dict:
    """The seed recipe in plain Keras against core's preset seed with the cache, paired at a few seeds.

    At each paired seed both train on the split core draws for that seed from the same random start;
    the speedup is their summed seconds' ratio and the accuracy comparison is on the mean final
    accuracy. Two more measurements say what a difference means: core's preset seed without the
    cache (seed 0) isolates the cache, and the cached preset at a few more seeds shows how far the
    recipe's accuracy moves with the random start alone.
    """
    from bench.seed_recipe import train_seed_recipe

    from core import ingest
    from core.config import TrainConfig

    dataset, plan = ctx.dataset, ctx.plan
    labels = np.asarray(dataset.labels)
    images = np.asarray(dataset.images, dtype="float32")
    import keras

    def plain_run(seed, train_idx, val_idx):
        ctx.log(f"  plain Keras seed recipe, seed {seed}: {plan.seed_epochs} epochs of model.fit on images")
        keras.backend.clear_session()
        run = train_seed_recipe(images[train_idx], labels[train_idx], images[val_idx], labels[val_idx],
                                n_classes=len(dataset.classes), weights=ctx.weights, epochs=plan.seed_epochs,
                                batch_size=plan.batch_size, seed=seed)
        run.pop("model")
        ctx.log(f"    fit_seconds {run['fit_seconds']}, final val_accuracy {run['final_val_accuracy']:.3f}")
        return run

    # Paired seeds: at each, plain and cached train on the split core draws for that seed, from the same
    # random start (the plain model's layers draw the same initial weights as core's; seed 0's per-epoch
    # curves of plain and core uncached coincide). Accuracy is compared on the mean over the pairs, since
    # the float16 cache's rounding moves single runs of this barely-trained head by a few points either way.
    pairs, plain, cached = [], None, None
    for seed in range(plan.seed, plan.seed + plan.paired_seeds):
        if seed == plan.seed:
            train_idx, val_idx = ctx.train_idx, ctx.val_idx
        else:
            train_idx, val_idx = ingest.split(dataset, TrainConfig().validation_fraction, seed)
        plain_seed = plain_run(seed, train_idx, val_idx)
        cached_seed = core_run(ctx, "seed_preset_cached" if seed == plan.seed else f"seed_preset_cached_seed{seed}",
                               preset="seed", seed=seed)
        recorded = json.loads((Path(cached_seed["run_dir"]) / "dataset.json").read_text())["split"]
        if (recorded["train"] != [dataset.paths[i] for i in train_idx]
                or recorded["validation"] != [dataset.paths[i] for i in val_idx]):
            raise BenchError(f"core's recorded split at seed {seed} differs from the one the plain seed recipe used")
        pairs.append({"seed": seed, "plain_seconds": plain_seed["fit_seconds"],
                      "cached_seconds": cached_seed["train_seconds"],
                      "plain_final_val_accuracy": plain_seed["final_val_accuracy"],
                      "cached_final_val_accuracy": cached_seed["final_val_accuracy"]})
        if seed == plan.seed:
            plain, cached = plain_seed, cached_seed
    plain_epoch_seconds = [record["seconds"] for record in plain["epochs"]]
    plain_summary = {
        "seconds": plain["fit_seconds"],
        "cache_seconds": None,
        "epoch_seconds": plain_epoch_seconds,
        "steady_epoch_seconds": steady_epoch_seconds(plain_epoch_seconds),
        "final_val_accuracy": plain["final_val_accuracy"],
        "best_val_accuracy": plain["best_val_accuracy"],
        "val_accuracy_per_epoch": [record["val_accuracy"] for record in plain["epochs"]],
    }
    uncached = core_run(ctx, "seed_preset_uncached", preset="seed", cache_features=False)

    spread = [pair["cached_final_val_accuracy"] for pair in pairs]
    for seed in range(plan.seed + plan.paired_seeds, plan.seed + plan.spread_seeds):
        spread.append(core_run(ctx, f"seed_preset_cached_seed{seed}", preset="seed", seed=seed)["final_val_accuracy"])

    plain_mean = float(np.mean([pair["plain_final_val_accuracy"] for pair in pairs]))
    cached_mean = float(np.mean([pair["cached_final_val_accuracy"] for pair in pairs]))
    difference = abs(plain_mean - cached_mean)
    cache_effect = abs(uncached["final_val_accuracy"] - cached["final_val_accuracy"])
    plain_total = sum(pair["plain_seconds"] for pair in pairs)
    cached_total = sum(pair["cached_seconds"] for pair in pairs)
    return {
        "train_images": len(ctx.train_idx),
        "validation_images": len(ctx.val_idx),
        "same_split": True,  # checked at every pair above (a mismatch raises)
        "plain": plain_summary,
        "cached": _core_summary(cached),
        "core_uncached": _core_summary(uncached),
        "pairs": pairs,
        "plain_mean_final_val_accuracy": round(plain_mean, 4),
        "cached_mean_final_val_accuracy": round(cached_mean, 4),
        "speedup": _ratio(plain_total, cached_total),
        "speedup_seed0": _ratio(plain["fit_seconds"], cached["train_seconds"]),
        "core_uncached_speedup": _ratio(uncached["train_seconds"], cached["train_seconds"]),
        "accuracy_difference_points": round(100 * difference, 2),
        "accuracy_agrees": difference <= 0.02 + 1e-9,
        "cache_effect_points": round(100 * cache_effect, 2),
        "cache_effect_within_2_points": cache_effect <= 0.02 + 1e-9,
        "one_validation_image_points": round(100 / max(1, len(ctx.val_idx)), 2),
        "seed_spread": {
            "seeds": list(range(plan.seed, plan.seed + max(plan.spread_seeds, plan.paired_seeds))),
            "final_val_accuracies": spread,
            "range_points": round(100 * (max(spread) - min(spread)), 2),
            "note": "core preset seed, cached; each seed changes the random start and the split",
        },
    }


def _core_summary(run: dict) -> dict:
    return {
        "seconds": run["train_seconds"],
        "cache_seconds": run["cache_seconds"],
        "epoch_seconds": run["epoch_seconds"],
        "steady_epoch_seconds": steady_epoch_seconds(run["epoch_seconds"]),
        "final_val_accuracy": run["final_val_accuracy"],
        "best_val_accuracy": run["val_accuracy"],
        "val_accuracy_per_epoch": run["val_accuracy_per_epoch"],
    }


# ---------------------------------------------------------------------- 2. partial freeze

def partial_freeze(ctx: Context, depths=(3, 4)) -> dict:
    """Seconds per epoch cached against uncached at freeze depths 3 and 4 (core defaults otherwise)."""
    rows = []
    for depth in depths:
        # pretrained blocks that train take the fine-tuning step (at 1e-3 they are wrecked: chance accuracy)
        cached = core_run(ctx, f"k{depth}_cached", freeze_depth=depth, epochs=ctx.plan.freeze_epochs,
                          learning_rate=FINE_TUNE_LEARNING_RATE, cache_features=True)
        uncached = core_run(ctx, f"k{depth}_uncached", freeze_depth=depth, epochs=ctx.plan.freeze_epochs,
                            learning_rate=FINE_TUNE_LEARNING_RATE, cache_features=False)
        cached_epoch = steady_epoch_seconds(cached["epoch_seconds"])
        uncached_epoch = steady_epoch_seconds(uncached["epoch_seconds"])
        saved_per_epoch = (uncached_epoch or 0) - (cached_epoch or 0)
        rows.append({
            "freeze_depth": depth,
            "epochs": ctx.plan.freeze_epochs,
            "cached_epoch_seconds": cached_epoch,
            "uncached_epoch_seconds": uncached_epoch,
            "per_epoch_speedup": _ratio(uncached_epoch, cached_epoch),
            "cache_seconds": cached["cache_seconds"],
            "cached_train_seconds": cached["train_seconds"],
            "uncached_train_seconds": uncached["train_seconds"],
            "total_speedup": _ratio(uncached["train_seconds"], cached["train_seconds"]),
            # after this many epochs the one-off cache has paid for itself
            "break_even_epochs": (round(cached["cache_seconds"] / saved_per_epoch, 2)
                                  if cached["cache_seconds"] is not None and saved_per_epoch > 0 else None),
            "cached_val_accuracy": cached["val_accuracy"],
            "uncached_val_accuracy": uncached["val_accuracy"],
            "cached_first_epoch_seconds": cached["epoch_seconds"][0] if cached["epoch_seconds"] else None,
            "uncached_first_epoch_seconds": uncached["epoch_seconds"][0] if uncached["epoch_seconds"] else None,
        })
    return {"rows": rows}


# ---------------------------------------------------------------------- 3. defaults against the seed recipe

def manual_defaults(epochs: int | None = None) -> str:
    """The manual recipe's defaults in words, read from TrainConfig so they follow the code."""
    from core.config import TrainConfig

    config = TrainConfig()
    return (f"VGG16 freeze depth {config.freeze_depth}, head {config.head}, {config.optimizer} lr "
            f"{config.learning_rate:g}, {epochs or config.epochs} epochs")


def defaults_vs_seed(ctx: Context, seed_result: dict) -> dict:
    """Core's manual defaults (cached) beside the seed recipe, plain and through core's preset.

    The manual recipe is asked for by name: the default recipe is auto, which section 7 compares.
    """
    defaults = core_run(ctx, "defaults_cached", recipe="manual")
    described = manual_defaults()
    rows = [
        {"name": "seed recipe, plain Keras (images every epoch)", "seconds": seed_result["plain"]["seconds"],
         "final_val_accuracy": seed_result["plain"]["final_val_accuracy"],
         "best_val_accuracy": seed_result["plain"]["best_val_accuracy"]},
        {"name": "core preset seed, cached", "seconds": seed_result["cached"]["seconds"],
         "final_val_accuracy": seed_result["cached"]["final_val_accuracy"],
         "best_val_accuracy": seed_result["cached"]["best_val_accuracy"]},
        {"name": f"core manual defaults, cached ({described})", "seconds": defaults["train_seconds"],
         "final_val_accuracy": defaults["final_val_accuracy"], "best_val_accuracy": defaults["val_accuracy"]},
    ]
    return {"rows": rows, "defaults_run_dir": defaults["run_dir"]}


# ---------------------------------------------------------------------- 4. prediction

def prediction(ctx: Context, run_dir: str) -> dict:
    """Single-image latency (p50, p95) and batch throughput of a trained model, already loaded."""
    images = np.asarray(ctx.dataset.images, dtype="float32")
    plan = ctx.plan
    predict, path = _load_predict(run_dir)
    for image in images[:3]:  # warm up: the first calls trace the graph
        predict(image[None])
    latencies = []
    for index in range(plan.latency_repeats):
        image = images[index % len(images)][None]
        started = time.perf_counter()
        predict(image)
        latencies.append(time.perf_counter() - started)
    batch = images[np.arange(plan.throughput_batch) % len(images)]
    predict(batch)
    batch_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        probabilities = np.asarray(predict(batch))
        batch_seconds.append(time.perf_counter() - started)
    if probabilities.shape != (len(batch), len(ctx.dataset.classes)):
        raise BenchError(f"prediction returned shape {probabilities.shape}")
    milliseconds = np.asarray(latencies) * 1000
    best_batch = min(batch_seconds)
    return {
        "path": path,
        "image_size": plan.image_size,
        "single_image_ms_p50": round(float(np.percentile(milliseconds, 50)), 2),
        "single_image_ms_p95": round(float(np.percentile(milliseconds, 95)), 2),
        "single_image_repeats": plan.latency_repeats,
        "batch_size": plan.throughput_batch,
        "batch_seconds": round(best_batch, 4),
        "batch_images_per_second": round(plan.throughput_batch / best_batch, 1),
    }


def _load_predict(run_dir: str):
    """core.predict's predictor when it exists; otherwise the saved model through plain Keras."""
    try:
        from core.predict import load_predictor
    except ImportError:
        load_predictor = None
    if load_predictor is not None:
        predictor = load_predictor(run_dir)
        return predictor.predict_proba, "core.predict.load_predictor(run_dir).predict_proba"
    import keras

    model = keras.saving.load_model(str(Path(run_dir) / "model.keras"))
    # predict_on_batch: model.predict builds a data pipeline per call, which would dominate one image
    return model.predict_on_batch, "keras.saving.load_model + predict_on_batch (core.predict not available)"


# ---------------------------------------------------------------------- 5. memory

def memory(ctx: Context) -> dict:
    """Peak RSS of `python -m core train` processes, and feature-cache bytes per image per boundary."""
    from core import models

    plan = ctx.plan
    n_classes = len(ctx.dataset.classes)
    processes = []
    if "import" in plan.memory_processes:
        processes.append({"name": "python with keras and core imported, nothing trained",
                          "command": [sys.executable, "-c", "import core.training, core.models"]})
    for cache in (True, False):
        if ("cached" if cache else "uncached") not in plan.memory_processes:
            continue
        run_dir = ctx.work / "runs" / f"memory_{'cached' if cache else 'uncached'}"
        processes.append({
            "name": f"python -m core train, manual defaults, {'cached' if cache else 'uncached'}, "
                    f"{plan.memory_epochs} epoch(s)",
            # recipe manual by name: recipe auto (the default) has no uncached path to compare
            "command": [sys.executable, "-m", "core", "train", str(ctx.data_dir), "--out", str(run_dir),
                        "--recipe", "manual", "--weights", ctx.weights, "--image-size", str(plan.image_size),
                        "--epochs", str(plan.memory_epochs), "--seed", str(plan.seed),
                        "--cache-features", "true" if cache else "false"],
        })
    rows = []
    for process in processes:
        ctx.log(f"  peak RSS: {process['name']}")
        completed = subprocess.run([sys.executable, "-m", "bench.peak_rss", "--", *process["command"]],
                                   cwd=REPO, capture_output=True, text=True, timeout=1800)
        try:
            measured = json.loads(completed.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise BenchError(f"peak RSS wrapper failed: {completed.stderr[-500:]}")
        if measured["returncode"] != 0:
            raise BenchError(f"{process['name']} failed: {measured['stderr_tail'][-500:]}")
        rows.append({"name": process["name"], "peak_rss_mib": round(measured["peak_rss_bytes"] / 2**20, 1),
                     "wall_seconds": measured["wall_seconds"]})
        ctx.log(f"    {rows[-1]['peak_rss_mib']} MiB")

    n_images = len(ctx.dataset.labels)
    boundaries = []
    for depth in range(1, 6):
        here = models.freeze_summary(depth, plan.image_size, n_classes)
        at_224 = models.freeze_summary(depth, 224, n_classes)
        boundaries.append({
            "freeze_depth": depth,
            "cut": here["cache_cut"],
            "shape": here["cache_shape"],
            "bytes_per_image": here["cache_bytes_per_image"],
            "dataset_mib": round(here["cache_bytes_per_image"] * n_images / 2**20, 2),
            "shape_224": at_224["cache_shape"],
            "bytes_per_image_224": at_224["cache_bytes_per_image"],
        })
    return {"processes": rows, "cache_boundaries": boundaries, "dataset_images": n_images,
            "image_size": plan.image_size}


# ---------------------------------------------------------------------- 6. scaling

def scaling(ctx: Context) -> dict:
    """Training seconds against dataset size, cached and uncached (core defaults, fixed epochs)."""
    from core import demo_data

    plan = ctx.plan
    n_classes = len(demo_data.CLASSES)
    rows = []
    for total in plan.scaling_totals:
        per_class = max(2, round(total / n_classes))
        data_dir = ctx.work / "data" / f"scaling_{per_class}"
        demo_data.write_demo_data(str(data_dir), per_class=per_class, size=plan.image_size, seed=plan.seed)
        row = {"images": per_class * n_classes, "per_class": per_class, "epochs": plan.scaling_epochs}
        for cache in (True, False):
            label = "cached" if cache else "uncached"
            summary = core_run(ctx, f"scaling_{per_class}_{label}", data_dir=data_dir, freeze_depth=5,
                               learning_rate=1e-3, epochs=plan.scaling_epochs, cache_features=cache)
            row[f"{label}_seconds"] = summary["train_seconds"]
            row[f"{label}_val_accuracy"] = summary["val_accuracy"]
        row["speedup"] = _ratio(row["uncached_seconds"], row["cached_seconds"])
        rows.append(row)
    growth = {}
    for label in ("cached", "uncached"):
        # seconds per extra image, from the least-squares line through the points
        x = np.asarray([row["images"] for row in rows], dtype=float)
        y = np.asarray([row[f"{label}_seconds"] for row in rows], dtype=float)
        if len(rows) >= 2:
            slope, intercept = np.polyfit(x, y, 1)
            growth[label] = {"seconds_per_image": round(float(slope), 5), "fixed_seconds": round(float(intercept), 3)}
    return {"rows": rows, "growth": growth, "image_size": plan.image_size}


# ---------------------------------------------------------------------- 7. recipe auto against the defaults

def auto_vs_defaults(ctx: Context) -> dict:
    """Recipe auto (the default) against the manual defaults and the seed preset, on one explicit split.

    All three are handed the main split, so auto keeps a validation split (below FEW_PER_CLASS pictures
    a class it would otherwise train on every picture) and all three are scored on the same held-out
    pictures; each run's recorded split is checked against it.
    """
    split = (ctx.train_idx, ctx.val_idx)
    epochs = {} if ctx.plan.defaults_epochs is None else {"epochs": ctx.plan.defaults_epochs}
    candidates = [
        ("auto", "recipe auto (the default)", {"recipe": "auto", **epochs}),
        ("manual_defaults", f"manual defaults, cached ({manual_defaults(ctx.plan.defaults_epochs)})",
         {"recipe": "manual", **epochs}),
        ("seed_preset", "preset seed, cached (the seed recipe: all 5 frozen, Flatten-Dense(1024), SGD 1e-4, "
                        f"{ctx.plan.seed_epochs} epochs)", {"preset": "seed"}),
    ]
    validation_paths = [ctx.dataset.paths[i] for i in ctx.val_idx]
    rows = []
    for key, name, settings in candidates:
        run = core_run(ctx, f"{key}_same_split", split=split, **settings)
        recorded = json.loads((Path(run["run_dir"]) / "dataset.json").read_text())["split"]
        if recorded["validation"] != validation_paths:
            raise BenchError(f"{key} was not scored on the split it was given")
        rows.append({"key": key, "name": name, "recipe": run["recipe"], "train_seconds": run["train_seconds"],
                     "wall_seconds": run["wall_seconds"], "val_accuracy": run["val_accuracy"],
                     "final_val_accuracy": run["final_val_accuracy"], "evaluation": run["evaluation"],
                     "phase_seconds": run["phase_seconds"], "chosen": run["chosen"]})
    by_key = {row["key"]: row for row in rows}
    auto_row = by_key["auto"]
    return {
        "rows": rows,
        "train_images": len(ctx.train_idx),
        "validation_images": len(ctx.val_idx),
        "same_split": True,  # checked above for every run (a mismatch raises)
        "one_validation_image_points": round(100 / max(1, len(ctx.val_idx)), 2),
        "auto_minus_manual_points": _points(auto_row["val_accuracy"], by_key["manual_defaults"]["val_accuracy"]),
        "auto_minus_seed_points": _points(auto_row["val_accuracy"], by_key["seed_preset"]["val_accuracy"]),
        "manual_over_auto_seconds": _ratio(by_key["manual_defaults"]["train_seconds"], auto_row["train_seconds"]),
    }


def _points(first, second) -> float | None:
    return None if first is None or second is None else round(100 * (first - second), 2)


# ---------------------------------------------------------------------- 8. recipe auto's timing check

def auto_timing(ctx: Context) -> dict:
    """Issue 10: the linear candidates' cross-validation and the final linear fit together take at most as
    long as the forward pass, on 4 x timing_per_class demo pictures (200 at 64 px in the full plan).

    Read from one auto run's phase events: ``candidates`` + ``final_fit`` against ``feature_cache``, the
    one forward pass over the training and validation pictures and their mirror images (its
    first batch also builds the graph). Recipe auto draws its own split here, as a user's run would. When
    fine-tuning wins, ``final_fit`` is fine-tuning and not a linear fit: the ratio is then the
    cross-validation's alone, and ``final_fit_linear`` says so.
    """
    from core import demo_data

    plan = ctx.plan
    data_dir = ctx.work / "data" / f"timing_{plan.timing_per_class}"
    demo_data.write_demo_data(str(data_dir), per_class=plan.timing_per_class, size=plan.image_size, seed=plan.seed)
    load_before = load_average()
    run = core_run(ctx, "auto_timing", data_dir=data_dir, recipe="auto")
    load_after = load_average()
    phases = run["phase_seconds"]
    split = json.loads((Path(run["run_dir"]) / "dataset.json").read_text())["split"]
    forward_seconds = phases["feature_cache"]
    forward_images = (run["feature_cache"] or {}).get("images") or 2 * len(split["train"]) + len(split["validation"])
    final_fit_linear = bool(run["chosen"]) and run["chosen"]["kind"] == "linear"
    fitting_seconds = phases["candidates"] + (phases.get("final_fit", 0.0) if final_fit_linear else 0.0)
    ratio = round(fitting_seconds / forward_seconds, 3) if forward_seconds else None
    return {
        "pictures": len(split["train"]) + len(split["validation"]),
        "per_class": plan.timing_per_class,
        "image_size": plan.image_size,
        "train_pictures": len(split["train"]),
        "validation_pictures": len(split["validation"]),
        "forward_images": forward_images,
        "forward_seconds": forward_seconds,
        "forward_ms_per_image": round(1000 * forward_seconds / forward_images, 2) if forward_images else None,
        "candidates_seconds": phases["candidates"],
        "final_fit_seconds": phases.get("final_fit"),
        "final_fit_linear": final_fit_linear,
        "fitting_seconds": round(fitting_seconds, 3),
        "fitting_over_forward": ratio,
        "within_forward_pass": ratio is not None and ratio <= 1.0,
        "fine_tune_candidate_seconds": phases.get("fine_tune_candidate"),
        "train_seconds": run["train_seconds"],
        "wall_seconds": run["wall_seconds"],
        "val_accuracy": run["val_accuracy"],
        "evaluation": run["evaluation"],
        "chosen": run["chosen"],
        "phase_seconds": phases,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
