"""Experiments: sets of ordinary training runs whose results, side by side, show why transfer learning works.

Three kinds, each a plan of runs on one labeled dataset, all on the same validation split:

* ``freeze-depth``: a linear probe on the frozen features of each VGG16 block (1-5: how far up the
  pretrained network the useful features are), then pretrained VGG16 with k = 5, 4, 3, 2, 1, 0 blocks
  frozen and the rest trained (what training more of it buys); validation accuracy and time of each.
* ``transfer-vs-scratch``: the automatic recipe on pretrained VGG16 (what transfer gives in practice),
  the same pretrained network with every block trained, that network from random weights trained the
  same way, and the autoencoder's encoder; validation accuracy per epoch and at the end.
* ``data-efficiency``: ``transfer`` (the automatic recipe on pretrained VGG16) against ``scratch`` (the
  same network from random weights, trained fully) as the labeled images per class grow, a few seeds per
  point, the validation set fixed and every training subset drawn from the training split.

Every trained model is an ordinary run directory under ``OUT/runs/``; a linear probe is a row only (its
model is a logistic regression fitted in seconds). ``OUT/results.json`` is rewritten atomically after
each row, so a page polling it sees the rows fill in, and ``OUT/charts.html`` holds the charts (Plotly
with its JavaScript inlined, so the file works offline). A stop request (``stop_experiment``) is seen
between batches of the run in progress and between runs.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core import runs
from core.config import AUTOENCODER_HEAD, FINE_TUNE_MIN_PER_CLASS, frozen_words

KINDS = ("freeze-depth", "transfer-vs-scratch", "data-efficiency")
KIND_TITLES = {
    "freeze-depth": "How many blocks to freeze",
    "transfer-vs-scratch": "Transfer against training from scratch",
    "data-efficiency": "How many labeled images you need",
}
RESULTS_FILE = "results.json"
CHARTS_FILE = "charts.html"
LOG_FILE = "experiment.log"
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a path component, never '..' or a separator

DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 5
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
FREEZE_DEPTHS = (5, 4, 3, 2, 1, 0)
QUICK_FREEZE_DEPTHS = (5, 3, 0)            # both ends and the middle: the lesson with half the runs
# freeze-depth's linear probes, quick or not: each costs one forward pass up to its block and a second of
# fitting, so even blocks 1 and 2 (64 and 128 features) are cheap enough to show where along the network
# the transferable features are. On the demo data at 64 px (offline pretrained weights, 24 per class
# training): blocks 1-5 gave 0.42, 0.42, 0.58, 0.88, 0.50 in 1-5 s each; k = 5, 3, 0 gave 0.50, 0.50, 0.58
# in 5-45 s.
PROBE_BLOCKS = (1, 2, 3, 4, 5)
PER_CLASS_SIZES = (2, 5, 10, 20)           # plus "all" of the training split
QUICK_PER_CLASS_SIZES = (2, 5)
SEEDS = (0, 1, 2)
QUICK_SEEDS = (0, 1)

# transfer-vs-scratch and data-efficiency's "transfer" is the automatic recipe (core.auto): what a user
# of the app gets from pretrained weights by default, not one hand-picked setting (blocks 1-4 frozen, the
# earlier choice here) that may be the wrong one for their data. Quick data-efficiency on real photographs
# (8 classes of crops, 10 a class, offline pretrained weights, 64 px): transfer 0.84 and 0.94 at 2 and 5 a
# class (a second or two of training), scratch 0.125 (chance) at both.
TRANSFER = {"recipe": "auto"}
# "scratch" is manual: random weights, every block trained, at the fine-tuning step below.
SCRATCH = {"recipe": "manual", "weights": "none", "freeze_depth": 0}
# transfer-vs-scratch keeps one fine-tuning arm, the exact twin of scratch: the same network, every block
# trained, the same optimizer, rate and epochs, only the starting weights differ. Its per-epoch curve
# beside scratch's is the lesson of the experiment in one picture; the automatic recipe, which has no
# epochs (or fine-tunes block 5 only), cannot show it. The old sweep over k = 4, 3, 2 with a "best k"
# is freeze-depth's lesson and stays there. On the demo data (quick, 64 px) the twin rose 0.25 -> 0.58 in
# 5 epochs while scratch stayed at 0.25, and the automatic recipe's level line was at 0.88.
TWIN_FREEZE_DEPTH = 0

# Learning rates per kind of training. A head on frozen features takes the default step; unfrozen
# pretrained blocks take a tenth of it, since a large step wrecks the features they carry; a network
# from random weights takes the same small step, so scratch and fine-tuning differ only in where they start.
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-4
SCRATCH_LEARNING_RATE = 1e-4

PROBE = "linear probe"

# The time estimate: VGG16's multiply-adds at the run's image size over a measured CPU rate, plus a
# fixed cost per run (building, saving and evaluating the model). Measured on 2 shared CPU cores.
CPU_MACS_PER_SECOND = 30e9
SECONDS_PER_RUN = 8.0
SECONDS_PER_PROBE = 3.0     # loading the weights and the cross-validated logistic regressions

LogFn = Callable[[str], None]


# ---------------------------------------------------------------------- the plan

@dataclass
class PlannedRun:
    """One step of an experiment: a training run (or a linear probe), how a chart names it, its config changes."""

    name: str                       # run id under OUT/runs/
    method: str                     # transfer, fine-tune, scratch, autoencoder, linear probe
    label: str                      # how charts and tables name it
    settings: dict                  # TrainConfig fields on top of the experiment's base config
    fields: dict = field(default_factory=dict)  # the varied settings, copied into the row
    per_class: int | None = None    # data-efficiency: labeled training images per class; None = all
    seed: int = 0                   # data-efficiency: which draw of the training subset
    block: int | None = None        # linear probe: the VGG16 block whose pooled output the probe reads

    @property
    def is_probe(self) -> bool:
        return self.method == PROBE

    @property
    def recipe(self) -> str:
        return self.settings["recipe"]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown experiment kind {kind!r}; allowed: {', '.join(KINDS)}")
    return kind


def plan_runs(kind: str, *, quick: bool = False, train_per_class: int = 24) -> list[PlannedRun]:
    """The runs an experiment trains, in order (freeze-depth: its linear probes first).

    Args:
        kind: one of KINDS.
        quick: fewer settings (and seeds) for a first look on a CPU.
        train_per_class: the fewest training-split images of any class; data-efficiency sizes above
            it are left out, and "all" is the whole training split.
    """
    check_kind(kind)
    if kind == "freeze-depth":
        # the probes first: they take seconds, so the first rows appear before the first model trains
        planned = [PlannedRun(f"{index:02d}-probe-b{block}", PROBE, f"block {block} + linear head", {**TRANSFER},
                              {"block": block}, block=block) for index, block in enumerate(PROBE_BLOCKS)]
        return planned + [_fine_tune_run(len(planned) + index, k) for index, k in
                          enumerate(QUICK_FREEZE_DEPTHS if quick else FREEZE_DEPTHS)]
    if kind == "transfer-vs-scratch":
        return [
            PlannedRun("00-transfer-auto", "transfer", "pretrained, automatic recipe", {**TRANSFER}),
            _fine_tune_run(1, TWIN_FREEZE_DEPTH, method="fine-tune",
                           label="pretrained, every block trained"),
            PlannedRun("02-scratch", "scratch", "random weights, every block trained",
                       {**SCRATCH, "learning_rate": SCRATCH_LEARNING_RATE}, {"freeze_depth": 0}),
            PlannedRun("03-autoencoder", "autoencoder", "autoencoder's encoder",
                       {"recipe": "manual", "model": "autoencoder", "head": AUTOENCODER_HEAD,
                        "learning_rate": HEAD_LEARNING_RATE}, {"freeze_depth": None}),
        ]
    sizes = [n for n in (QUICK_PER_CLASS_SIZES if quick else PER_CLASS_SIZES) if n < train_per_class]
    planned = []
    for per_class in sizes + [None]:
        for seed in (QUICK_SEEDS if quick else SEEDS):
            if per_class is None and seed != 0:
                continue  # the whole split is the same draw for every seed; one model init is enough
            size_name = "all" if per_class is None else str(per_class)
            for method in ("transfer", "scratch"):
                if method == "transfer":
                    settings, fields = {**TRANSFER}, {}
                else:
                    settings, fields = {**SCRATCH, "learning_rate": SCRATCH_LEARNING_RATE}, {"freeze_depth": 0}
                planned.append(PlannedRun(
                    f"{len(planned):02d}-{method}-n{size_name}-s{seed}", method, method, {**settings, "seed": seed},
                    fields, per_class=per_class, seed=seed))
    return planned


def _fine_tune_run(index: int, k: int, method: str = "transfer", label: str | None = None) -> PlannedRun:
    """Pretrained VGG16 with its first k blocks frozen and the rest trained (the manual recipe, said explicitly:
    the base config's recipe is auto)."""
    return PlannedRun(f"{index:02d}-k{k}", method, label or frozen_words(k),
                      {"recipe": "manual", "freeze_depth": k, "learning_rate": _learning_rate(k)},
                      {"freeze_depth": k})


def _learning_rate(freeze_depth: int) -> float:
    return HEAD_LEARNING_RATE if freeze_depth == 5 else FINE_TUNE_LEARNING_RATE


# ---------------------------------------------------------------------- the time estimate

def _vgg16_block_macs(image_size: int) -> list[float]:
    """Multiply-adds of each VGG16 conv block for one image of the given size."""
    from core.models import VGG16_BLOCKS

    macs, in_channels, side = [], 3, float(image_size)
    for _, (filters, convs) in VGG16_BLOCKS.items():
        block = 0.0
        for _ in range(convs):
            block += side * side * 9 * in_channels * filters
            in_channels = filters
        macs.append(block)
        side /= 2
    return macs


def _autoencoder_macs(image_size: int) -> float:
    from core.models import AUTOENCODER_FILTERS

    total, in_channels, side = 0.0, 3, float(image_size)
    for filters in AUTOENCODER_FILTERS:  # encoder; the decoder mirrors it
        total += side * side * 9 * in_channels * filters
        in_channels, side = filters, side / 2
    return 2 * total


def _run_seconds(planned: PlannedRun, n_train: int, n_val: int, image_size: int, epochs: int,
                 macs_per_second: float, n_classes: int = 4) -> float:
    """Cost of one step of the plan.

    A manual run: its frozen part once (the feature cache), its trainable part per epoch x 3 for backprop.
    The automatic recipe and a probe: one forward pass over the training pictures, their mirror images
    and the validation pictures (up to the probe's block), plus fitting the linear heads; the automatic
    recipe also fine-tunes block 5 twice (candidate, then final fit) when every class has enough pictures.
    """
    if planned.settings.get("model") == "autoencoder":
        autoencoder = _autoencoder_macs(image_size)
        return SECONDS_PER_RUN + (epochs * (n_train + n_val) * 3 * autoencoder
                                  + (n_train + n_val) * autoencoder / 2) / macs_per_second
    blocks = _vgg16_block_macs(image_size)
    if planned.is_probe:
        return SECONDS_PER_PROBE + (2 * n_train + n_val) * sum(blocks[:planned.block]) / macs_per_second
    if planned.recipe == "auto":
        macs = (2 * n_train + n_val) * sum(blocks)
        if n_train // max(1, n_classes) >= FINE_TUNE_MIN_PER_CLASS:
            macs += 2 * epochs * (3 * n_train + n_val) * blocks[4]
        return SECONDS_PER_RUN + SECONDS_PER_PROBE + macs / macs_per_second
    k = planned.settings["freeze_depth"]
    frozen, trainable = sum(blocks[:k]), sum(blocks[k:])
    macs = (n_train + n_val) * frozen + epochs * (3 * n_train + n_val) * trainable + n_val * trainable
    return SECONDS_PER_RUN + macs / macs_per_second


def estimate_seconds(kind: str, n_images: int, image_size: int = 64, quick: bool = False, *,
                     epochs: int | None = None, n_classes: int = 4,
                     macs_per_second: float = CPU_MACS_PER_SECOND) -> float:
    """Rough wall time of an experiment on the CPU, for the page to show before it starts.

    Args:
        kind: one of KINDS.
        n_images: labeled images in the dataset (all classes).
        image_size: the square input size of every run.
        quick: the quick plan.
        epochs: epochs per run (default: the experiment's default).
        n_classes: classes in the dataset (data-efficiency sizes are per class).
        macs_per_second: the machine's training speed; the default was measured on 2 shared CPU cores.
    """
    return plan_summary(kind, n_images, image_size, quick, epochs=epochs, n_classes=n_classes,
                        macs_per_second=macs_per_second)["seconds"]


def plan_summary(kind: str, n_images: int, image_size: int = 64, quick: bool = False, *,
                 epochs: int | None = None, n_classes: int = 4,
                 macs_per_second: float = CPU_MACS_PER_SECOND) -> dict:
    """{"runs": how many models the experiment trains, "probes": how many linear probes it scores besides,
    "seconds": the estimate of both} (see estimate_seconds)."""
    check_kind(kind)
    if n_images < 2 or n_classes < 2:
        return {"runs": 0, "probes": 0, "seconds": 0.0}
    epochs = epochs or (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    n_val = max(n_classes, round(n_images * VALIDATION_FRACTION))
    n_train = max(n_classes, n_images - n_val)
    planned = plan_runs(kind, quick=quick, train_per_class=max(1, n_train // n_classes))
    total = 0.0
    for run in planned:
        train_images = n_train if run.per_class is None else run.per_class * n_classes
        run_epochs = equal_step_epochs(epochs, n_train, train_images) if kind == "data-efficiency" else epochs
        total += _run_seconds(run, train_images, n_val, image_size, run_epochs, macs_per_second, n_classes)
    probes = sum(run.is_probe for run in planned)
    return {"runs": len(planned) - probes, "probes": probes, "seconds": total}


def equal_step_epochs(epochs: int, n_train_all: int, n_train: int, batch_size: int = 32) -> int:
    """Epochs that give a run on ``n_train`` images the optimizer steps of ``epochs`` on all of them.

    Data-efficiency compares models by how many labels they saw, not by how many updates: with a
    fixed epoch count, 2 images per class would get one step an epoch and stop before learning.
    """
    steps = epochs * math.ceil(n_train_all / batch_size)
    return max(1, math.ceil(steps / math.ceil(max(1, n_train) / batch_size)))


# ---------------------------------------------------------------------- running

def run_experiment(kind: str, data, out_dir, *, weights: str = "imagenet", image_size: int = 64,
                   epochs: int | None = None, quick: bool = False, keep_models: bool = False,
                   log: LogFn | None = None, on_row: Callable[[dict, dict], None] | None = None) -> dict:
    """Train every run of an experiment on ``data`` and write ``out_dir/results.json`` and the charts.

    Args:
        kind: "freeze-depth", "transfer-vs-scratch" or "data-efficiency".
        data: a folder with one subfolder per class, or a zip of the same.
        out_dir: the experiment folder (created); runs go to ``out_dir/runs/``.
        weights: the pretrained VGG16 weights: "imagenet", or the path of a VGG16 (no top) weights
            file; "none" makes every "pretrained" run random too (for tests). Scratch runs always
            start from random weights.
        image_size: square input size of every run, in pixels.
        epochs: epochs of every run (and of the autoencoder's pretraining); default 10, 5 when quick.
        quick: fewer settings and seeds, for a first look on a CPU.
        keep_models: keep each run's model.keras. Off by default: the charts need only the events
            and metrics, and a VGG16 saved with its optimizer state is 57-170 MB per run.
        log: optional callable(str) for progress lines.
        on_row: optional callable(row, results) after each run.
    Returns:
        The results document, as written to results.json. A run that fails becomes a row with its
        error. Raises ValueError (bad kind or settings) before anything is written, and
        training.RunFailed in plain words when the experiment itself cannot go on (weights, data);
        results.json then says "failed" with the same words.
    """
    from core import ingest, models, training
    from core.config import TrainConfig

    check_kind(kind)
    say = log or (lambda message: None)
    epochs = epochs or (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    base = TrainConfig.from_dict({"weights": weights, "image_size": image_size, "epochs": epochs,
                                  "autoencoder_epochs": epochs, "validation_fraction": VALIDATION_FRACTION,
                                  "seed": SPLIT_SEED})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear_stale_stop(out)
    results = {
        "kind": kind, "title": KIND_TITLES[kind], "state": "running", "error": None, "pid": os.getpid(),
        "data": str(Path(data).absolute()) if isinstance(data, (str, os.PathLike)) else None,
        "settings": {"weights": weights, "image_size": image_size, "epochs": epochs, "quick": quick},
        "started": round(time.time(), 3), "finished": None, "planned": None, "current": None,
        "rows": [], "summary": [], "charts": CHARTS_FILE,
    }
    _write(out, results)
    worker = TrainingWorker()
    try:
        worker.start()  # TensorFlow's import in the worker overlaps the weights check and the loading
        if weights != "none":  # a missing weights file or download fails here once, not in every run
            say(f"checking the pretrained weights ({weights})")
            models.load_vgg16_base(image_size, weights)
        say(f"loading {data}")
        dataset = ingest.load_labeled(data, image_size)
        train_idx, val_idx = ingest.split(dataset, VALIDATION_FRACTION, SPLIT_SEED)
        train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
        per_class_train = np.bincount(dataset.labels[train_idx], minlength=len(dataset.classes))
        planned = plan_runs(kind, quick=quick, train_per_class=int(per_class_train.min()))
        results.update(classes=list(dataset.classes), planned=len(planned),
                       split={"train": int(len(train_idx)), "validation": int(len(val_idx))},
                       estimated_seconds=round(estimate_seconds(kind, len(dataset.labels), image_size, quick,
                                                                epochs=epochs, n_classes=len(dataset.classes))))
        _write(out, results)
        say(f"{kind}: {len(planned)} runs on {len(dataset.labels)} images, {len(dataset.classes)} classes")

        for number, run in enumerate(planned, start=1):
            if runs.stop_requested(out):
                results["state"] = "stopped"
                break
            run_dir = out / "runs" / run.name
            results["current"] = None if run.is_probe else str(run_dir)
            _write(out, results)
            say(f"[{number}/{len(planned)}] {run.label}" + (f", {run.per_class} per class" if run.per_class else ""))
            config = base.replace(**run.settings)
            training_subset = train_idx
            if kind == "data-efficiency":
                training_subset = _draw_per_class(dataset.labels, train_idx, run.per_class, run.seed)
                config = config.replace(epochs=equal_step_epochs(epochs, len(train_idx), len(training_subset),
                                                                 config.batch_size))
            # every run gets the split: the same validation images for all, and the automatic recipe
            # (which under 50 pictures a class would otherwise keep none) is measured on them too
            split = (training_subset, val_idx)
            if run.is_probe:
                result = worker.probe(config, dataset, split, run.block)
                row = _probe_row(run, result, config)
            else:
                result = worker.train(config, data, run_dir, dataset, split)
                row = _row(run, result, config, run_dir)
                if not keep_models:
                    for name in ("model.keras", "autoencoder.keras"):
                        (run_dir / name).unlink(missing_ok=True)
                row["model_kept"] = (run_dir / "model.keras").exists()
            if kind == "data-efficiency":
                counts = np.bincount(dataset.labels[training_subset], minlength=len(dataset.classes))
                row.update(per_class=int(counts.max()), all=run.per_class is None, seed=run.seed,
                           train_images=int(len(training_subset)))
            results["rows"].append(row)
            results["current"] = None
            results["summary"] = summarize(results)
            _write(out, results)
            write_charts(results, out / CHARTS_FILE)
            accuracy = "failed: " + str(row["error"]) if row["val_accuracy"] is None else f"{row['val_accuracy']:.3f}"
            say(f"    validation accuracy {accuracy}, {row['train_seconds']} s")
            if on_row:
                on_row(row, results)
            if row["state"] == "stopped":
                results["state"] = "stopped"
                break
        if results["state"] == "running":
            results["state"] = "done"
    except BaseException as error:
        results["state"], results["error"] = "failed", training.plain_error(error)
        say(f"failed: {results['error']}")
        if not isinstance(error, Exception):
            _finish(out, results)
            raise
    finally:
        worker.close()
    _finish(out, results)
    if results["state"] == "failed":
        raise training.RunFailed(results["error"])
    return results


RUNS_PER_PROCESS = 6   # a training process trains this many runs, then a fresh one takes over


class TrainingWorker:
    """Trains an experiment's runs in a child process, several runs per process.

    TensorFlow keeps native memory of every model a process has trained (about 200 MB per full
    VGG16 run, untouched by clear_session or gc), so an experiment of 26 runs in one process grows
    past 5 GB; a process per run gives it all back but pays TensorFlow's import (5-7 s on 2 CPU
    cores) every run, which was half of a quick run. A worker trains up to ``runs_per_process``
    runs, then is replaced; one that dies (killed, out of memory) fails only its run, with a reason,
    and the next run gets a fresh process. Start it early: the import overlaps the caller's loading.
    """

    def __init__(self, runs_per_process: int = RUNS_PER_PROCESS):
        self.runs_per_process = max(1, int(runs_per_process))
        self._child = None
        self._connection = None
        self._trained = 0
        self.processes_started = 0

    def start(self) -> "TrainingWorker":
        import multiprocessing

        self.close()
        context = multiprocessing.get_context("spawn")  # never fork a process that has TensorFlow loaded
        self._connection, child_end = context.Pipe()
        self._child = context.Process(target=_training_worker_loop, args=(child_end,), name="experiment-runs",
                                      daemon=True)
        self._child.start()
        child_end.close()
        self._trained = 0
        self.processes_started += 1
        return self

    def train(self, config, data, run_dir, dataset, split=None):
        """training.train in the worker; returns its RunResult. ``split`` (train indices, validation
        indices) replaces the config's random split."""
        result = self._call("train", (config.to_dict(), data, str(run_dir), dataset, split))
        if result is None:
            result = _failed_run(run_dir, self._death_message())
        return result

    def probe(self, config, dataset, split, block: int) -> dict:
        """``linear_probe`` in the worker; a dict with the error when the worker died."""
        result = self._call("probe", (config.to_dict(), dataset, split, block))
        return {"error": self._death_message()} if result is None else result

    def _call(self, task: str, arguments: tuple):
        """Send one task to the worker (a fresh one when due) and return its answer, or None if it died."""
        if self._child is None or self._trained >= self.runs_per_process or not self._child.is_alive():
            self.start()
        self._trained += 1
        try:
            self._connection.send((task, arguments))
            return self._connection.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):  # it died without an answer
            return None

    def _death_message(self) -> str:
        self._child.join(timeout=10)
        message = (f"the training process ended unexpectedly (exit code {self._child.exitcode}); "
                   "try a smaller image size")
        self._discard()
        return message

    def close(self) -> None:
        """Let the worker finish and end (it is also a daemon: it never outlives the caller)."""
        if self._child is None:
            return
        try:
            self._connection.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._child.join(timeout=30)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
        self._discard()

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._child = self._connection = None

    def __enter__(self) -> "TrainingWorker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _training_worker_loop(connection) -> None:
    from core import training
    from core.config import TrainConfig

    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        task, arguments = message
        try:
            if task == "probe":
                config_values, dataset, split, block = arguments
                result = linear_probe(TrainConfig.from_dict(config_values), dataset, split, block)
            else:
                config_values, data, run_dir, dataset, split = arguments
                result = training.train(TrainConfig.from_dict(config_values), data, run_dir, dataset=dataset,
                                        split=split)
        except Exception as error:  # noqa: BLE001 - reported as this task's failure, the worker goes on
            reason = training.plain_error(error)
            result = {"error": reason} if task == "probe" else _failed_run(arguments[2], reason)
        connection.send(result)


def linear_probe(config, dataset, split, block: int) -> dict:
    """How good the frozen features of one VGG16 block are: the automatic recipe's linear head on them alone.

    The pooled, power-normalised output of ``block`` for the training pictures and their mirror images, a
    logistic regression whose strength C is chosen by cross-validation on the training split (as
    core.auto does), fitted on the whole training split and scored on the validation split.

    Args:
        config: the experiment's settings (weights, image size, seed, batch size).
        dataset: the loaded dataset (core.ingest.Dataset) at config.image_size.
        split: (training indices, validation indices) into the dataset.
        block: 1..5.
    Returns:
        {"val_accuracy", "train_seconds" (features, cross-validation and the fit, not loading the weights),
        "regularization": the C chosen, "cv_accuracy": its cross-validated accuracy}.
    """
    from core import auto, models

    import keras

    if block not in (1, 2, 3, 4, 5):
        raise ValueError(f"block: got {block!r}; allowed: 1, 2, 3, 4, 5")
    keras.utils.set_random_seed(config.seed)
    train_idx, val_idx = (np.asarray(part, dtype=np.int64) for part in split)
    n_classes = len(dataset.classes)
    base = models.load_vgg16_base(config.image_size, config.weights)
    started = time.perf_counter()
    extractor = auto.feature_extractor(base, config.image_size, blocks=(block,))
    batch = max(config.batch_size, 16)
    x_train = dataset.images[train_idx]
    train_features, _ = auto.extract(extractor, x_train, blocks=(block,), batch_size=batch)
    flipped, _ = auto.extract(extractor, x_train, blocks=(block,), batch_size=batch, flip=True)
    x_val = dataset.images[val_idx]
    val_features, _ = auto.extract(extractor, x_val, blocks=(block,), batch_size=batch)
    val_flipped, _ = auto.extract(extractor, x_val, blocks=(block,), batch_size=batch, flip=True)
    y_train, y_val = dataset.labels[train_idx], dataset.labels[val_idx]
    candidates = auto.score_linear(train_features, flipped, y_train, n_classes=n_classes, seed=config.seed)
    winner = candidates[auto.best(candidates)]
    fit = auto.fit_linear(train_features[block], flipped[block], y_train, winner.regularization,
                          n_classes=n_classes)
    accuracy = float((fit.predict_proba(val_features[block], val_flipped[block]).argmax(1) == y_val).mean())
    return {"val_accuracy": round(accuracy, 4), "train_seconds": round(time.perf_counter() - started, 3),
            "regularization": winner.regularization, "cv_accuracy": round(winner.cv_accuracy, 4)}


def _failed_run(run_dir, message: str):
    """Mark a run that ended without training.train's own answer as failed; its RunResult."""
    from core.training import RunResult

    runs.RunWriter(run_dir).set_status("failed", error=message)
    return RunResult(str(run_dir), "failed", None, None, message)


def _clear_stale_stop(out: Path) -> None:
    """Forget a stop request left from an earlier experiment in the same folder.

    One made after this process started (a page's Stop while the process was still importing
    TensorFlow) is kept.
    """
    stop_file = out / runs.STOP_FILE
    try:
        import psutil

        if stop_file.stat().st_mtime < psutil.Process().create_time():
            stop_file.unlink()
    except (FileNotFoundError, ImportError):
        pass


def _finish(out: Path, results: dict) -> None:
    results["finished"] = round(time.time(), 3)
    results["current"] = None
    results["summary"] = summarize(results)
    _write(out, results)
    write_charts(results, out / CHARTS_FILE)


def _write(out: Path, results: dict) -> None:
    runs.write_json_atomic(out / RESULTS_FILE, results)


def _draw_per_class(labels: np.ndarray, train_idx: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """``per_class`` training images of every class, drawn from the training split only.

    One shuffle per class and seed, cut at each size, so the smaller subsets of a seed lie inside
    the larger ones and a curve moves because of the count, not a new draw.
    """
    if per_class is None:
        return np.sort(train_idx)
    rng = np.random.default_rng(1000 + seed)
    chosen = []
    for label in np.unique(labels[train_idx]):
        members = np.sort(train_idx[labels[train_idx] == label])
        chosen.extend(rng.permutation(members)[:per_class])
    return np.sort(np.asarray(chosen))


def _row(run: PlannedRun, result, config, run_dir: Path) -> dict:
    """One trained model as a results row: the varied settings, the outcome, the curve from its events.

    A run of the automatic recipe has no epochs unless fine-tuning won (then the epochs of its final fit):
    its curve is that, or the one validation accuracy of its final fit, and ``epochs`` is None for a
    linear winner. Which candidate won is in ``chosen``.
    """
    auto = config.recipe == "auto"
    events = [event for event in runs.read_all_events(run_dir) if event.get("type") == "epoch"
              and "val_accuracy" in event]
    # the fine-tune candidate's epochs are scored on held-out training pictures, not the validation split
    curve = [event["val_accuracy"] for event in events
             if (event.get("phase") == "final_fit" if auto else event.get("phase") != "autoencoder")]
    row = {
        "method": run.method, "label": run.label, **run.fields, "recipe": config.recipe,
        "val_accuracy": result.val_accuracy, "train_seconds": result.train_seconds,
        "state": result.state, "error": result.error, "run_dir": str(run_dir),
        "weights": config.weights if config.model == "vgg16" else None,
        "learning_rate": None if auto else config.learning_rate, "epochs": None if auto else config.epochs,
        "curve": curve,
    }
    if auto:
        candidates = runs.read_json(Path(run_dir) / "candidates.json") or {}
        try:
            winner = candidates["candidates"][candidates["chosen"]]
        except (KeyError, IndexError, TypeError):
            winner = {}
        row.update(chosen=winner.get("name"), chosen_kind=winner.get("kind"), chosen_block=winner.get("block"))
        if winner.get("kind") == "fine_tune":
            row["epochs"] = len(curve)
    return row


def _probe_row(run: PlannedRun, result: dict, config) -> dict:
    """A linear probe as a results row, in the same columns as a trained model's (no run directory)."""
    accuracy = result.get("val_accuracy")
    return {
        "method": run.method, "label": run.label, **run.fields, "recipe": "linear probe",
        "val_accuracy": accuracy, "train_seconds": result.get("train_seconds"),
        "state": "failed" if result.get("error") else "done", "error": result.get("error"), "run_dir": None,
        "weights": config.weights, "learning_rate": None, "epochs": None,
        "curve": [] if accuracy is None else [accuracy],
        "regularization": result.get("regularization"), "cv_accuracy": result.get("cv_accuracy"),
    }


def summarize(results: dict) -> list[dict]:
    """Per point (method, and per_class for data-efficiency): mean and spread of validation accuracy."""
    groups: dict[tuple, list[dict]] = {}
    for row in results.get("rows", []):
        if row.get("val_accuracy") is None:
            continue
        key = (row["method"], row.get("label"), row.get("per_class"))
        groups.setdefault(key, []).append(row)
    summary = []
    for (method, label, per_class), rows in groups.items():
        accuracies = np.array([row["val_accuracy"] for row in rows], dtype=float)
        item = {"method": method, "label": label, "mean": round(float(accuracies.mean()), 4),
                "std": round(float(accuracies.std()), 4), "n": len(rows),
                "train_seconds": round(float(np.mean([row["train_seconds"] or 0 for row in rows])), 3)}
        if per_class is not None:
            item.update(per_class=per_class, all=bool(rows[0].get("all")))
        for name in ("freeze_depth", "block"):
            if name in rows[0]:
                item[name] = rows[0][name]
        summary.append(item)
    if results.get("kind") == "data-efficiency":
        summary.sort(key=lambda item: (item["method"], item.get("per_class", 0)))
    return summary


COLUMN_WORDS = {  # a row's keys (results.json keeps them) as a table on screen or in a report says them
    "method": "method", "label": "run", "block": "block", "freeze_depth": "frozen blocks",
    "per_class": "pictures per class", "seed": "seed", "chosen": "chosen by the automatic recipe",
    "val_accuracy": "validation accuracy", "train_seconds": "seconds to train", "epochs": "epochs",
    "state": "state", "error": "error", "run": "run id", "mean": "mean validation accuracy",
    "std": "spread (standard deviation)", "n": "runs", "all": "every picture"}
# the varied settings of each kind; "chosen" is what the automatic recipe picked (empty for other rows)
SETTING_COLUMNS = {"freeze-depth": ["block", "freeze_depth"], "transfer-vs-scratch": ["freeze_depth", "chosen"],
                   "data-efficiency": ["per_class", "seed", "chosen"]}
STATE_WORDS = {"done": "finished", "failed": "failed", "stopped": "stopped", "running": "training"}
_OLDER_LABEL = re.compile(r"^k ?= ?(\d)$")  # experiments saved before labels were words: "k=5"


def column_words(column: str) -> str:
    """A results row's key as a table heading says it ("val_accuracy" -> "validation accuracy")."""
    return COLUMN_WORDS.get(column, column.replace("_", " "))


def table(results: dict, *, error_words: Callable[[str], str] = str) -> list[dict]:
    """An experiment's rows as a table says them: the varied settings, accuracy, seconds, state, with column
    names and values in words ("frozen blocks": "4 of 5 blocks frozen"), and the run folder by its name
    only. ``error_words`` rewrites an error message (the app hides workspace paths with it)."""
    columns = ["method", "label"] + SETTING_COLUMNS.get(results.get("kind"), []) + [
        "val_accuracy", "train_seconds", "epochs", "state", "error"]
    lines = []
    for row in results.get("rows") or []:
        if not isinstance(row, dict):
            continue
        line = {column: row.get(column) for column in columns}
        line["run"] = str(row.get("run_dir") or "").replace("\\", "/").rsplit("/", 1)[-1]  # a probe has none
        if line["error"]:
            line["error"] = error_words(str(line["error"]))
        if line.get("freeze_depth") is not None:
            line["freeze_depth"] = frozen_words(line["freeze_depth"])
        line["state"] = STATE_WORDS.get(line["state"], line["state"])
        older = _OLDER_LABEL.match(str(line["label"] or ""))
        if older:
            line["label"] = frozen_words(older.group(1))
        lines.append({column_words(column): value for column, value in line.items()})
    return lines


def headline(results: dict) -> str | None:
    """The experiment's lesson in one sentence, from its rows so far (None before there is one)."""
    summary = results.get("summary") or summarize(results)
    kind = results.get("kind")
    if kind == "data-efficiency":
        def mean_at_most(method, limit=10):
            points = [item for item in summary if item["method"] == method and not item.get("all")
                      and item["per_class"] <= limit]
            return np.mean([item["mean"] for item in points]) if points else None

        transfer, scratch = mean_at_most("transfer"), mean_at_most("scratch")
        if transfer is None or scratch is None:
            return None
        return (f"With 10 or fewer labeled images per class, transfer reached {transfer:.0%} validation accuracy "
                f"on average and training from scratch {scratch:.0%}.")
    rows = [row for row in results.get("rows", []) if row.get("val_accuracy") is not None]
    if kind == "freeze-depth" and rows:
        probes = [row for row in rows if row["method"] == PROBE]
        tuned = [row for row in rows if row["method"] != PROBE]
        lesson = None
        if tuned:  # ties: more frozen, the cheaper run
            best = max(tuned, key=lambda row: (row["val_accuracy"], row["freeze_depth"]))
            fastest = min(tuned, key=lambda row: row["train_seconds"] or 0)
            lesson = (f"{frozen_words(best['freeze_depth'])} at {best['val_accuracy']:.0%}; fastest: "
                      f"{frozen_words(fastest['freeze_depth'])} in {fastest['train_seconds'] or 0:.0f} s")
        if probes:  # ties: the shallower block, the cheaper probe
            best = max(probes, key=lambda row: (row["val_accuracy"], -row["block"]))
            probe = (f"a linear probe on block {best['block']} at {best['val_accuracy']:.0%} "
                     f"({best['train_seconds'] or 0:.0f} s)")
            lesson = probe + (f"; with blocks frozen and the rest trained, {lesson}" if lesson else "")
        return f"Best so far: {lesson}."
    if kind == "transfer-vs-scratch" and rows:
        by_method = {row["method"]: row for row in rows}
        if "transfer" in by_method and "scratch" in by_method:
            transfer, scratch = by_method["transfer"], by_method["scratch"]
            return (f"Transfer (the automatic recipe) reached {transfer['val_accuracy']:.0%} validation accuracy "
                    f"in {transfer['train_seconds'] or 0:.0f} s; the same network from random weights "
                    f"{scratch['val_accuracy']:.0%} in {scratch['train_seconds'] or 0:.0f} s.")
        best = max(rows, key=lambda row: row["val_accuracy"])
        return f"Best so far: {best['label']} at {best['val_accuracy']:.0%}."
    return None


# ---------------------------------------------------------------------- reading, starting, stopping

def read_results(out_dir) -> dict | None:
    """results.json of an experiment folder; a dead process's "running" becomes "failed" with why."""
    results = runs.read_json(Path(out_dir) / RESULTS_FILE)
    if results and results.get("state") == "running" and not _process_alive(results.get("pid")):
        results = {**results, "state": "failed",
                   "error": "the experiment process ended without finishing (stopped from outside, or the "
                            "server restarted); start it again"}
    return results


def _process_alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        import psutil

        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def start_experiment(kind: str, data, out_dir, *, weights: str = "imagenet", image_size: int = 64,
                     epochs: int | None = None, quick: bool = False) -> subprocess.Popen:
    """Launch ``python -m core experiment ...`` as its own process (never in a page's script thread).

    Writes a first results.json (state running, with the process id) before returning, so a page
    polling right away sees the experiment; the process's output goes to ``out_dir/experiment.log``.
    """
    check_kind(kind)
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "core", "experiment", kind, str(Path(data).absolute()), "--out", str(out),
               "--weights", str(weights), "--image-size", str(image_size)]
    if epochs:
        command += ["--epochs", str(epochs)]
    if quick:
        command.append("--quick")
    repo_root = Path(__file__).resolve().parent.parent  # the folder holding core/
    with open(out / LOG_FILE, "ab") as log_file:
        process = subprocess.Popen(command, cwd=repo_root, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    if not (out / RESULTS_FILE).exists():  # the process rewrites it as soon as it starts
        _write(out, {"kind": kind, "title": KIND_TITLES[kind], "state": "running", "error": None,
                     "pid": process.pid, "settings": {"weights": weights, "image_size": image_size,
                                                      "epochs": epochs, "quick": quick},
                     "started": round(time.time(), 3), "finished": None, "planned": None, "current": None,
                     "rows": [], "summary": []})
    return process


def charts_path(out_dir) -> Path | None:
    """OUT/charts.html when it has been written."""
    path = Path(out_dir) / CHARTS_FILE
    return path if path.is_file() else None


def stop_experiment(out_dir) -> None:
    """Ask an experiment to stop: the run in progress stops between batches, and no further run starts."""
    runs.request_stop(out_dir)
    current = (runs.read_json(Path(out_dir) / RESULTS_FILE) or {}).get("current")
    if current:
        runs.request_stop(current)


def experiments_root(owner: str | None = None) -> Path:
    """workspace/experiments/, or one owner's folder in it (owner: the app session's opaque token)."""
    root = runs.workspace() / "experiments"
    if owner is None:
        return root
    if not isinstance(owner, str) or not OWNER_PATTERN.match(owner):
        raise ValueError(f"not a valid owner token: {str(owner)[:80]!r} (letters, digits, '-' and '_' only)")
    return root / owner


def new_experiment_dir(owner: str, kind: str) -> Path:
    return experiments_root(owner) / f"{runs.new_run_id()}-{check_kind(kind)}"


def list_experiments(owner: str) -> list[dict]:
    """One owner's experiments, newest first: id, path and results (as ``read_results`` gives them)."""
    root = experiments_root(owner)
    if not root.is_dir():
        return []
    return [{"id": child.name, "path": str(child), "results": read_results(child) or {}}
            for child in sorted(root.iterdir(), reverse=True) if (child / RESULTS_FILE).is_file()]


def running_experiments() -> int:
    """Experiments running on this server, every owner counted (a page limits how many start at once)."""
    root = experiments_root()
    if not root.is_dir():
        return 0
    return sum(1 for path in root.glob(f"*/*/{RESULTS_FILE}")
               if (read_results(path.parent) or {}).get("state") == "running")


# ---------------------------------------------------------------------- charts

def figures(results: dict) -> list:
    """The experiment's charts as Plotly figures (for the page, the report and charts.html)."""
    rows = [row for row in results.get("rows", []) if row.get("val_accuracy") is not None]
    if not rows:
        return []
    kind = results.get("kind")
    if kind == "freeze-depth":
        return [_freeze_depth_figure(rows)]
    if kind == "transfer-vs-scratch":
        return _transfer_vs_scratch_figures(rows)
    if kind == "data-efficiency":
        return [_data_efficiency_figure(results)]
    return []


def _freeze_depth_figure(rows):
    """Left to right, the pretrained network used more and more: a linear head on the frozen features of
    block 1, ..., block 5, then k = 5, ..., 0 frozen blocks with the rest trained."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    probes = sorted((row for row in rows if row["method"] == PROBE), key=lambda row: row["block"])
    tuned = sorted((row for row in rows if row["method"] != PROBE), key=lambda row: -row["freeze_depth"])
    probe_x = [f"block {row['block']} + linear" for row in probes]
    tuned_x = [frozen_words(row["freeze_depth"]) for row in tuned]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=probe_x + tuned_x, y=[row["train_seconds"] for row in probes + tuned],
                            name="training time (s)", marker_color="rgba(150, 150, 150, 0.45)"), secondary_y=True)
    if probes:
        figure.add_trace(go.Scatter(x=probe_x, y=[row["val_accuracy"] for row in probes],
                                    name="linear probe on a frozen block's features", mode="lines+markers",
                                    line={"width": 3, "dash": "dot"}, marker={"symbol": "diamond", "size": 10}),
                         secondary_y=False)
    if tuned:
        figure.add_trace(go.Scatter(x=tuned_x, y=[row["val_accuracy"] for row in tuned],
                                    name="some blocks frozen, the rest trained", mode="lines+markers",
                                    line={"width": 3}), secondary_y=False)
    figure.update_layout(title="Validation accuracy and training time by frozen blocks, after a linear probe on "
                               "each block", legend={"orientation": "h", "y": -0.25})
    figure.update_xaxes(title_text="left: a linear head on the frozen output of one block; right: blocks frozen, "
                                   "the rest trained (5 of 5: only the head trains; none: everything trains)",
                        categoryorder="array", categoryarray=probe_x + tuned_x)
    figure.update_yaxes(title_text="validation accuracy", range=[0, 1.05], secondary_y=False)
    figure.update_yaxes(title_text="training time (s)", secondary_y=True, showgrid=False)
    return figure


def _transfer_vs_scratch_figures(rows):
    import plotly.graph_objects as go

    longest = max(len(row["curve"]) for row in rows)
    curves = go.Figure()
    for row in rows:
        curves.add_trace(_curve_trace(row, longest))
    curves.update_layout(title="Validation accuracy per epoch, same split", xaxis_title="epoch",
                         yaxis_title="validation accuracy", yaxis_range=[0, 1.05])
    bars = go.Figure(go.Bar(x=[row["label"] for row in rows], y=[row["val_accuracy"] for row in rows],
                            text=[f"{row['val_accuracy']:.2f}" for row in rows], textposition="outside"))
    bars.update_layout(title="Final validation accuracy (best epoch)", yaxis_title="validation accuracy",
                       yaxis_range=[0, 1.1])
    return [curves, bars]


def _curve_trace(row: dict, longest: int):
    """A row's validation accuracy per epoch. A model without epochs (the automatic recipe's linear head,
    fitted in one go) is a dotted level line across the chart, so it reads as the bar the curves must reach."""
    import plotly.graph_objects as go

    curve = row.get("curve") or [row["val_accuracy"]]
    if len(curve) > 1 or longest <= 1:
        return go.Scatter(x=list(range(1, len(curve) + 1)), y=curve, mode="lines+markers", name=row["label"])
    return go.Scatter(x=[1, longest], y=[curve[-1]] * 2, mode="lines", line={"dash": "dot", "width": 3},
                      name=f"{row['label']} (no epochs: fitted in one go)",
                      hovertemplate=f"{row['label']}: %{{y:.2f}}<extra></extra>")


def _data_efficiency_figure(results):
    import plotly.graph_objects as go

    figure = go.Figure()
    for method, name in (("transfer", "transfer (pretrained VGG16, automatic recipe)"),
                         ("scratch", "scratch (same network, random weights, trained fully)")):
        points = sorted((item for item in results.get("summary") or summarize(results) if item["method"] == method),
                        key=lambda item: item["per_class"])
        if not points:
            continue
        figure.add_trace(go.Scatter(
            x=[item["per_class"] for item in points], y=[item["mean"] for item in points], name=name,
            mode="lines+markers", error_y={"type": "data", "array": [item["std"] for item in points], "visible": True},
            customdata=[[item["n"], "all" if item.get("all") else item["per_class"]] for item in points],
            hovertemplate="%{customdata[1]} per class: %{y:.2f} (mean of %{customdata[0]}, bar = std)"))
    figure.update_layout(title="Validation accuracy by labeled images per class (mean of seeds, bars = std)",
                         xaxis_title="labeled training images per class", yaxis_title="validation accuracy",
                         yaxis_range=[0, 1.05], xaxis_type="log")
    return figure


def write_charts(results: dict, path) -> Path | None:
    """All of the experiment's charts in one HTML file, Plotly's JavaScript inlined once (works offline)."""
    charts = figures(results)
    if not charts:
        return None
    parts = [chart.to_html(full_html=False, include_plotlyjs=(index == 0)) for index, chart in enumerate(charts)]
    title = KIND_TITLES.get(results.get("kind"), "Experiment")
    html = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            + "".join(parts) + "</body></html>")
    path = Path(path)
    runs.write_bytes_atomic(path, html.encode("utf-8"))
    return path
