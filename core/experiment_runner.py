"""Running an experiment: train its plan's runs one after another and write ``OUT/results.json`` row by row.

Every trained model is an ordinary run directory under ``OUT/runs/``; a linear probe is a row only (its
model is a logistic regression fitted in seconds). ``OUT/results.json`` is rewritten atomically after
each row, so a page polling it sees the rows fill in, and ``OUT/charts.html`` holds the charts (Plotly
with its JavaScript inlined, so the file works offline). ``OUT/status.json`` says the experiment's state as a
training run's does (running, then done, stopped or failed with the error in words), so the job manager
(core.jobs), which queues, starts, stops and watches experiments as jobs of their own kind, treats both alike.
A stop request on OUT (``runs.request_stop``, what the manager's stop writes) is passed on to the run in
progress, which stops within a batch, and no further run starts.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from core import runs
from core.experiment_charts import CHARTS_FILE, summarize, write_charts
from core.experiment_plan import (DEFAULT_EPOCHS, KIND_TITLES, QUICK_EPOCHS, SPLIT_SEED, VALIDATION_FRACTION,
                                  PlannedRun, check_kind, equal_step_epochs, estimate_seconds, plan_runs)

RESULTS_FILE = "results.json"
LOG_FILE = "log.txt"  # the command's output, where the job manager's executor writes it
STOP_FORWARD_SECONDS = 0.1  # how often a stop request on the experiment is looked for, to pass it on
PARENT_CHECK_SECONDS = 0.5  # how often a training worker looks whether the experiment's process still lives

LogFn = Callable[[str], None]


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
        results.json and status.json then say "failed" with the same words. status.json ends as
        results.json does: done, stopped or failed.
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
    if (out / RESULTS_FILE).exists():  # an earlier experiment in this folder may have left its stop request
        _clear_stale_stop(out)
    results = {
        "kind": kind, "title": KIND_TITLES[kind], "state": "running", "error": None,
        "data": str(Path(data).absolute()) if isinstance(data, (str, os.PathLike)) else None,
        "settings": {"weights": weights, "image_size": image_size, "epochs": epochs, "quick": quick},
        "started": round(time.time(), 3), "finished": None, "planned": None, "current": None,
        "rows": [], "summary": [], "charts": CHARTS_FILE,
    }
    _write(out, results)
    runs.RunWriter(out).set_status("running", pid=os.getpid(), error=None)
    worker = TrainingWorker()
    forwarder = _StopForwarder(out, lambda: results["current"]).start()
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
        forwarder.close()
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

    threading.Thread(target=_end_with_parent, args=(os.getppid(),), name="end-with-parent", daemon=True).start()
    # a SIGTERM to the experiment's process group (the job manager ending a stop that took too long) reaches
    # this run as the stop request the experiment's process makes of it, within a batch, not as its death
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
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


def _end_with_parent(parent_pid: int) -> None:
    """End this worker when the experiment's process is gone (killed: nobody sends it the last message, and
    a run it trains on would use the CPU for nobody until its end)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


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
    # last: the job manager takes a process that ended without a final state for one that died
    runs.RunWriter(out).set_status(results["state"], error=results["error"])


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


# ---------------------------------------------------------------------- reading and stopping

def read_results(out_dir) -> dict | None:
    """results.json of an experiment folder, with the state and error its status.json says.

    status.json is the experiment's state as a job: its process writes it, and the job manager does when the
    process ends without saying how (killed, crashed, the server restarted), so an experiment whose process
    died reads "failed" with why although its results.json still says "running". Before the process has
    written results.json (queued, or still importing), a document without rows made from the job's
    settings; None for a folder that holds no experiment.
    """
    out = Path(out_dir)
    results = runs.read_json(out / RESULTS_FILE)
    if results is None:
        settings = (runs.read_json(out / "job.json") or {}).get("experiment")
        if not settings:
            return None
        kind = settings.get("kind")
        results = {"kind": kind, "title": KIND_TITLES.get(kind, "Experiment"), "state": "queued", "error": None,
                   "settings": {name: settings.get(name) for name in ("weights", "image_size", "epochs", "quick")},
                   "planned": None, "current": None, "rows": [], "summary": []}
    status = runs.read_status(out) or {}
    if status.get("state"):
        results = {**results, "state": status["state"], "error": status.get("error") or results.get("error")}
    return results


def charts_path(out_dir) -> Path | None:
    """OUT/charts.html when it has been written."""
    path = Path(out_dir) / CHARTS_FILE
    return path if path.is_file() else None


def stop_experiment(out_dir) -> None:
    """Ask an experiment to stop (what the job manager's stop does): the run in progress stops within a
    batch, and no further run starts."""
    runs.request_stop(out_dir)


class _StopForwarder:
    """While an experiment runs, passes a stop request on the experiment's folder on to the run in progress
    (``current()``, a run folder or None), whose training loop looks for one in its own folder between batches."""

    def __init__(self, out: Path, current: Callable[[], str | None]):
        self.out, self.current = out, current
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="experiment-stop", daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(STOP_FORWARD_SECONDS):
            if runs.stop_requested(self.out):
                current = self.current()
                if current:
                    runs.request_stop(current)

    def start(self) -> "_StopForwarder":
        self._thread.start()
        return self

    def close(self) -> None:
        self._done.set()
        self._thread.join()
