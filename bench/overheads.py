"""Where a run's seconds go: the forward pass, the optimizer's math, and everything else (issue 15).

``python -m bench.overheads [--weights FILE] [--pictures 400] [--sizes 64 32]``

For each recipe (the seed preset, recipe auto, a partial freeze: blocks 1-3 frozen, 4-5 trained) at each size
(64 px, and 32 px as a stand-in for a fast device, where the forward pass shrinks), one real run through
``core.training.train`` in this process on the demo shapes (``--pictures`` in all, 80/20 split), and from the
run's own phase events:

- **forward pass**: the feature-cache phase (the frozen blocks over every picture once) less the making of its
  reduced-precision copy (the event's ``copy_seconds``, counted as overhead), beside a bare ``model.predict`` of the
  same frozen network in the same precision (bfloat16 where core.backend.forward_precision chooses it) and in
  float32, at batch 32, 64 and 128 (pictures a second: how close the cache comes to the network's own throughput);
- **optimizer math**: the fitting phases' epochs as a compiled loop runs them at its steadiest, measured apart:
  the same head (or upper blocks) fitted on the same inputs with one call per epoch (``steps_per_execution``
  = the epoch's steps), no validation and no callbacks, after a first epoch that traces; times the run's epochs.
  Recipe auto fits linear heads with scikit-learn and may fine-tune block 5 as a candidate: those phases
  count as its math (the candidate's own forward passes through block 5 included);
- **everything else**: loading, building, the first epoch's graph building, per-step Python, validation,
  callbacks and event writes, saving: the run's seconds less the two above.

Each recipe runs ``--runs`` times in this process (default 2): the first is cold (VGG16 built from the weights
file, every graph traced afresh), the last is what a warm worker (core.workers) runs, and its figures are the row's.

Prints a table and writes JSON (``--out``); asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RECIPES = {  # name: TrainConfig settings on top of the weights and the size
    "seed preset": {"preset": "seed"},
    "recipe auto (default)": {"recipe": "auto"},
    "partial freeze (k=3)": {"recipe": "manual", "freeze_depth": 3, "epochs": 5},
}
FORWARD_PHASES = ("feature_cache",)
AUTO_FIT_PHASES = ("candidates", "fine_tune_candidate", "final_fit")


def bare_predict(network, images: np.ndarray, batch_sizes=(32, 64, 128)) -> dict:
    """Pictures a second of ``network.predict`` at each batch size (after one call that traces)."""
    rates = {}
    network.predict(images[:min(len(images), 32)], batch_size=32, verbose=0)
    for batch in batch_sizes:
        network.predict(images[:batch], batch_size=batch, verbose=0)  # trace this batch shape
        started = time.perf_counter()
        network.predict(images, batch_size=batch, verbose=0)
        rates[batch] = round(len(images) / (time.perf_counter() - started), 1)
    return rates


def steady_math(config, run_dir: Path, dataset, split) -> float | None:
    """Seconds the run's epochs take as pure math: the same trainable part fitted on the same inputs, one call
    per epoch, after a tracing epoch; None for recipe auto (its math is the scikit-learn phases)."""
    import keras

    from core import models
    from core.training import FEATURE_CACHE_DTYPE

    if config.recipe == "auto":
        return None
    train_idx = np.asarray(split[0])
    network = models.build_vgg16_classifier(len(dataset.classes), image_size=config.image_size,
                                            weights=config.weights, freeze_depth=config.freeze_depth,
                                            head=config.head, dropout=config.dropout, seed=config.seed)
    images = np.asarray(dataset.images[train_idx], dtype="float32")
    if network.lower is not None:
        inputs = models.compute_features(network.lower, images, batch_size=64, dtype=FEATURE_CACHE_DTYPE)
        model = network.upper
    else:
        inputs, model = images, network.full
    targets = keras.utils.to_categorical(dataset.labels[train_idx], len(dataset.classes))
    steps = max(1, math.ceil(len(inputs) / config.batch_size))
    models.compile_classifier(model, config.optimizer, config.learning_rate, config.momentum, jit_compile=False)
    model.compile(optimizer=model.optimizer, loss=model.loss, steps_per_execution=steps)
    model.fit(inputs, targets, batch_size=config.batch_size, epochs=1, verbose=0)  # traces
    started = time.perf_counter()
    model.fit(inputs, targets, batch_size=config.batch_size, epochs=3, verbose=0)
    per_epoch = (time.perf_counter() - started) / 3
    epochs = len([e for e in _events(run_dir) if e["type"] == "epoch"])
    keras.backend.clear_session()
    return round(per_epoch * epochs, 3)


def _events(run_dir: Path) -> list[dict]:
    from core import runs

    return runs.read_all_events(run_dir)


def _phases(run_dir: Path) -> dict:
    return {event["name"]: event["seconds"] for event in _events(run_dir) if event["type"] == "phase"}


def measure(recipe: str, settings: dict, size: int, data: Path, weights: str, work: Path, runs: int = 1) -> dict:
    """One recipe at one size: ``runs`` runs in this process, the first cold, the others as in a warm worker
    (VGG16 already built, graphs of earlier runs' kind traced once); the figures are the last run's."""
    import keras

    from core import ingest, models, training
    from core.config import TrainConfig

    keras.backend.clear_session()
    config = TrainConfig.from_dict({"weights": weights, "image_size": size, "seed": 0, **settings})
    dataset = ingest.load_labeled(str(data), size)
    split = ingest.split(dataset, config.validation_fraction, config.seed)
    cold_phases = None
    for attempt in range(runs):
        run_dir = work / f"{recipe.split()[0]}-{size}-{attempt + 1}"
        started = time.perf_counter()
        result = training.train(config, str(data), run_dir, dataset=dataset, split=split)
        wall = time.perf_counter() - started
        if result.state != "done":
            raise RuntimeError(f"{recipe} at {size} px ended {result.state}: {result.error}")
        if cold_phases is None:
            cold_phases = _phases(run_dir)
    events = _events(run_dir)  # the last run: in a warm process when runs > 1
    phases = _phases(run_dir)
    epochs = [event for event in events if event["type"] == "epoch"]
    cache_events = [event for event in events if event["type"] == "feature_cache" and event.get("used")]
    # making the reduced-precision copy of the frozen part is inside the feature-cache phase but is not the pass
    copy_seconds = sum(event.get("copy_seconds") or 0.0 for event in cache_events)
    precision = cache_events[0].get("precision", "float32") if cache_events else "float32"
    forward = sum(phases.get(name, 0.0) for name in FORWARD_PHASES) - copy_seconds
    math_seconds = steady_math(config, run_dir, dataset, split)
    if math_seconds is None:  # recipe auto: its fits are its math (scikit-learn's linear heads, and the
        # fine-tune candidate, whose block-5 forward passes count here too)
        math_seconds = sum(phases.get(name, 0.0) for name in AUTO_FIT_PHASES)
    total = sum(phases.values())
    keras.backend.clear_session()
    base = models.build_vgg16_classifier(len(dataset.classes), image_size=size, weights=weights,
                                         freeze_depth=config.freeze_depth if config.recipe != "auto" else 5,
                                         head="gap")
    cached_images = len(dataset.images)
    frozen = base.lower or base.full
    pictures = np.asarray(dataset.images, dtype="float32")
    rates = bare_predict(frozen if precision == "float32" else models.reduced_precision_copy(frozen, precision),
                         pictures)
    rates_float32 = rates if precision == "float32" else bare_predict(frozen, pictures)
    keras.backend.clear_session()
    return {
        "recipe": recipe, "image_size": size, "pictures": cached_images, "wall_seconds": round(wall, 3),
        "phase_seconds": phases, "phases_total": round(total, 3), "forward_seconds": round(forward, 3),
        "math_seconds": round(math_seconds, 3),
        "other_seconds": round(total - forward - math_seconds, 3),
        "first_epoch_seconds": epochs[0]["seconds"] if epochs else None,
        "later_epoch_seconds": (round(float(np.median([e["seconds"] for e in epochs[1:]])), 3)
                                if len(epochs) > 1 else None),
        "epochs": len(epochs),
        "cache_pictures_per_second": round(cached_images / forward, 1) if forward else None,
        "bare_predict_pictures_per_second": rates, "forward_precision": precision, "copy_seconds": copy_seconds,
        "bare_predict_float32_pictures_per_second": rates_float32,
        "val_accuracy": result.val_accuracy,
        "runs": runs, "warm": runs > 1, "train_seconds": result.train_seconds,
        "cold_phase_seconds": cold_phases, "cold_phases_total": round(sum(cold_phases.values()), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a VGG16 (no top) weights file (default: the offline one, else none)")
    parser.add_argument("--pictures", type=int, default=400, help="demo pictures in all (4 classes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--runs", type=int, default=2,
                        help="runs of each recipe in this process: the first is cold, the last (reported) warm, "
                             "as a warm worker's (default 2; 1: cold only)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    from bench import machine
    from bench.run import resolve_weights

    weights = args.weights or resolve_weights("auto")[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="overheads-") as scratch:
        work = Path(scratch)
        os.environ["TRANSFER_STUDIO_HOME"] = str(work / "workspace")
        from core import demo_data

        for size in args.sizes:
            data = work / f"demo-{size}"
            demo_data.write_demo_data(str(data), per_class=args.pictures // 4, size=size, seed=0)
            for recipe in args.recipes:
                print(f"[overheads] {recipe} at {size} px ...", file=sys.stderr, flush=True)
                rows.append(measure(recipe, RECIPES[recipe], size, data, weights, work, runs=args.runs))
    print(f"{args.pictures} demo pictures, weights {Path(weights).name}; {machine.cpu_model()}, "
          f"{machine.usable_cores()} cores, load average {[round(x, 2) for x in os.getloadavg()]}")
    print("| recipe | px | run (phases; cold) | forward pass | optimizer math | everything else | first epoch / later "
          "| cache pictures/s | bare predict pictures/s, same precision (batch 32 / 64 / 128) | float32 predict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        rates = row["bare_predict_pictures_per_second"]
        later = row["later_epoch_seconds"]
        cold = f" ({row['cold_phases_total']:.2f} s cold)" if row["warm"] else ""
        print(f"| {row['recipe']} | {row['image_size']} | {row['phases_total']:.2f} s{cold} | {row['forward_seconds']:.2f} s "
              f"| {row['math_seconds']:.2f} s | **{row['other_seconds']:.2f} s** | "
              f"{row['first_epoch_seconds'] or 0:.2f} / {later if later is not None else '-'} s "
              f"| {row['cache_pictures_per_second']} ({row['forward_precision']}) "
              f"| {' / '.join(str(rates[b]) for b in (32, 64, 128))} "
              f"| {' / '.join(str(row['bare_predict_float32_pictures_per_second'][b]) for b in (32, 64, 128))} |")
    for row in rows:
        print(f"{row['recipe']} {row['image_size']} px phases: {row['phase_seconds']}"
              + (f"; cold: {row['cold_phase_seconds']}" if row["warm"] else ""))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
