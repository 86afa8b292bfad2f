"""One training function: validated config + labeled data in, a complete run directory out.

It reads top to bottom as a story: load the data, split it, build the model, cache the frozen
part's output once, train the rest while announcing every batch and epoch as an event, keep the
best epoch, then write the model, its labels and its metrics. The run directory is the only way
it talks to the outside (status, events, a stop request file), so it runs the same in the app's
job processes, the CLI, the tests and the benchmark.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import backend, ingest, models, runs
from core.config import TrainConfig
from core.metrics import classification_metrics

import keras


# The cache stores activations at half precision: half the memory, and the rounding (about 1e-3
# relative) is far below what training notices. Tests set float32 to show the paths are identical.
FEATURE_CACHE_DTYPE = "float16"


class RunFailed(RuntimeError):
    """Training cannot go on; the message is for the user, in plain words."""


class StopRequested(Exception):
    pass


@dataclass
class RunResult:
    run_dir: str
    state: str
    val_accuracy: float | None
    train_seconds: float | None
    error: str | None = None


# ---------------------------------------------------------------------- callbacks

class RunEvents(keras.callbacks.Callback):
    """Announces batches and epochs as run events, honours stop requests, catches NaN, keeps the best epoch.

    A stop request is a file in the run directory; checking it after every batch makes a stop
    land within one batch. The best weights (by validation accuracy, then loss) are kept in memory
    and restored at the end, so a stopped run still leaves a usable model.
    """

    def __init__(self, writer: runs.RunWriter, phase: str, epochs: int, steps: int,
                 epoch_offset: int = 0, batch_interval: float = 0.2, monitor_accuracy: bool = True,
                 weights_model=None):
        super().__init__()
        # The model whose weights are the best epoch's: the one being fit, unless phases fit different
        # models over the same layers (cached head, then the full network), when it is the full one.
        self.weights_model = weights_model
        self.writer, self.phase, self.epochs, self.steps = writer, phase, epochs, steps
        self.epoch_offset, self.batch_interval = epoch_offset, batch_interval
        self.monitor_accuracy = monitor_accuracy
        self.best_score = None
        self.best_weights = None
        self.best_epoch = None
        self.stopped = False
        self.nan = False
        self._last_batch_event = 0.0
        self._epoch_started = time.perf_counter()
        self._epoch = 0
        self.history: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = float(logs.get("loss", float("nan")))
        if not math.isfinite(loss):
            self.nan = True
            self.model.stop_training = True
            return
        now = time.perf_counter()
        last = batch + 1 == self.steps
        if last or now - self._last_batch_event >= self.batch_interval:
            self._last_batch_event = now
            self.writer.event("batch", phase=self.phase, epoch=self.epoch_offset + self._epoch + 1,
                              batch=batch + 1, steps=self.steps, loss=loss,
                              accuracy=_maybe_float(logs.get("accuracy")),
                              fraction=round((self._epoch + (batch + 1) / self.steps) / self.epochs, 4))
        if runs.stop_requested(self.writer.path):
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        record = {key: _maybe_float(logs.get(key)) for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
        if record["loss"] is not None and not math.isfinite(record["loss"]):
            self.nan = True
            self.model.stop_training = True
            return
        record = {key: value for key, value in record.items() if value is not None}
        self.history.append(record)
        self.writer.event("epoch", phase=self.phase, epoch=self.epoch_offset + epoch + 1,
                          epochs=self.epoch_offset + self.epochs, seconds=round(time.perf_counter() - self._epoch_started, 3),
                          **record)
        score = self._score(record)
        if score is not None and (self.best_score is None or score > self.best_score):
            self.best_score, self.best_epoch = score, self.epoch_offset + epoch + 1
            self.best_weights = [np.array(w) for w in (self.weights_model or self.model).get_weights()]

    def _score(self, record):
        if self.monitor_accuracy and "val_accuracy" in record:
            return (record["val_accuracy"], -record.get("val_loss", 0.0))
        if "val_loss" in record:
            return (-record["val_loss"],)
        return None

    def restore_best(self):
        if self.best_weights is not None:
            (self.weights_model or self.model).set_weights(self.best_weights)


def _maybe_float(value):
    return None if value is None else float(value)


# ---------------------------------------------------------------------- the run

def train(config: TrainConfig, data, run_dir: str | os.PathLike, *, dataset: ingest.Dataset | None = None,
          split: tuple | None = None, log=None) -> RunResult:
    """Train per ``config`` on labeled ``data`` (class folder or zip) and write the run directory.

    Args:
        config: a validated TrainConfig.
        data: path of a folder with one subfolder per class, or a zip of the same.
        run_dir: the run directory to write (created if missing).
        dataset: an already loaded Dataset at config.image_size (skips loading ``data``).
        split: (train indices, validation indices) into the dataset, instead of the seeded stratified
            split (experiments hold one validation set fixed across runs); it is recorded like any split.
        log: optional callable(str) for human progress lines (the CLI prints them to stderr).
    Returns:
        RunResult; never raises for a failed run: the failure is in status.json and the result.
    """
    writer = runs.RunWriter(run_dir)
    config.validate()
    writer.write_json("config.json", config.to_dict())
    say = log or (lambda message: None)
    clock = _Clock(writer, say)
    state = {"train_started": None}
    try:
        device = backend.configure_device(config.mixed_precision)
        writer.set_status("running", device=device, backend=backend.name(), pid=os.getpid(), error=None)
        say(f"training on {device}")
        keras.utils.set_random_seed(config.seed)
        _check_stop(writer)

        with clock.phase("load_data"):
            if dataset is None:
                dataset = ingest.load_labeled(data, config.image_size, policy=config.resize_policy,
                                              progress=lambda f, m: writer.progress("load_data", f, m))
            if split is None:
                train_idx, val_idx = ingest.split(dataset, config.validation_fraction, config.seed)
            else:
                train_idx, val_idx = _given_split(split, len(dataset.labels))
        writer.write_json("dataset.json", {
            **dataset.summary(),
            "source": str(Path(data).absolute()) if isinstance(data, (str, os.PathLike)) else None,
            "split": {"seed": config.seed, "validation_fraction": config.validation_fraction,
                      "train": [dataset.paths[i] for i in train_idx],
                      "validation": [dataset.paths[i] for i in val_idx]},
        })
        writer.write_json("labels.json", list(dataset.classes))
        say(f"{len(dataset.labels)} images, {len(dataset.classes)} classes; "
            f"{len(train_idx)} train / {len(val_idx)} validation; {len(dataset.skipped)} skipped")
        _check_stop(writer)

        x_train, x_val = dataset.images[train_idx], dataset.images[val_idx]
        y_train = keras.utils.to_categorical(dataset.labels[train_idx], len(dataset.classes))
        y_val = keras.utils.to_categorical(dataset.labels[val_idx], len(dataset.classes))

        with clock.phase("build_model"):
            network = _build(config, dataset, writer, clock, state, say, (train_idx, val_idx))
        _check_stop(writer)

        if config.classical:
            outcome = _fit_classical(config, network, writer, x_train, dataset.labels[train_idx],
                                     x_val, dataset.labels[val_idx], clock, state, say)
        else:
            outcome = _fit_keras(config, network, writer, x_train, y_train, x_val, y_val, clock, state, say)
        train_seconds = round(time.perf_counter() - state["train_started"], 3) if state["train_started"] else None

        with clock.phase("save"):
            val_probabilities = outcome["val_probabilities"]
            metrics = classification_metrics(dataset.labels[val_idx], val_probabilities, dataset.classes)
            metrics["best_epoch"] = outcome.get("best_epoch")
            writer.write_json("metrics.json", metrics)
            _save_model(network.full, Path(run_dir) / "model.keras")
        final_state = "stopped" if outcome["stopped"] else "done"
        writer.set_status(final_state, train_seconds=train_seconds, val_accuracy=metrics["accuracy"],
                          best_epoch=outcome.get("best_epoch"), feature_cache=outcome.get("feature_cache"))
        say(f"{final_state}: validation accuracy {metrics['accuracy']:.3f}, train_seconds {train_seconds}")
        return RunResult(str(run_dir), final_state, metrics["accuracy"], train_seconds)
    except StopRequested:
        writer.set_status("stopped", error=None)
        say("stopped before training started")
        return RunResult(str(run_dir), "stopped", None, None)
    except BaseException as error:  # every failure becomes plain words in the run, never a traceback
        message = plain_error(error)
        writer.event("error", message=message, kind=type(error).__name__)
        writer.set_status("failed", error=message)
        say(f"failed: {message}")
        if isinstance(error, KeyboardInterrupt):
            raise
        return RunResult(str(run_dir), "failed", None, None, message)


def _given_split(split, n_images: int):
    train_idx, val_idx = (np.asarray(part, dtype=np.int64).reshape(-1) for part in split)
    if not len(train_idx) or not len(val_idx):
        raise ValueError("the given split needs at least one training and one validation image")
    if min(train_idx.min(), val_idx.min()) < 0 or max(train_idx.max(), val_idx.max()) >= n_images:
        raise ValueError(f"the given split has indices outside the dataset's {n_images} images")
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("the given split uses the same image for training and validation")
    return train_idx, val_idx


def plain_error(error: BaseException) -> str:
    """Turn an exception into words a user can act on."""
    if type(error).__module__.startswith("core."):
        return str(error)  # core's own errors are written for the user already
    if backend.is_out_of_memory(error):
        return "out of memory: lower the batch size or the image size, or freeze more blocks"
    if isinstance(error, ValueError):
        return f"invalid input: {error}"
    return runs.workspace_error(error) if isinstance(error, OSError) else (
        f"training failed unexpectedly ({type(error).__name__}: {str(error)[:300]})")


class _Clock:
    """Times phases and announces them as events."""

    def __init__(self, writer, say):
        self.writer, self.say = writer, say

    def phase(self, name):
        clock = self

        class _Phase:
            def __enter__(self):
                self.started = time.perf_counter()
                clock.writer.event("phase_start", name=name)

            def __exit__(self, kind, value, tb):
                if kind is None:
                    seconds = round(time.perf_counter() - self.started, 3)
                    clock.writer.event("phase", name=name, seconds=seconds)
                    clock.say(f"{name}: {seconds:.1f} s")
                return False

        return _Phase()


def _check_stop(writer):
    if runs.stop_requested(writer.path):
        raise StopRequested()


def _save_model(model, path: Path):
    tmp = path.with_name(".tmp-" + path.name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        # A half-written file on a full disk would leave no room to record why the run failed.
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------- model building

def _build(config, dataset, writer, clock, state, say, indices):
    n_classes = len(dataset.classes)
    if config.model == "vgg16":
        say(f"building VGG16 (weights {config.weights}, freeze depth {config.freeze_depth}, head {config.head})")
        return models.build_vgg16_classifier(
            n_classes, image_size=config.image_size, weights=config.weights,
            freeze_depth=config.freeze_depth, head=config.head,
            dropout=config.dropout, augment=config.augment and not config.classical, seed=config.seed,
            progress=lambda f, m: writer.progress("weights", f, m))
    # The autoencoder path: pretrain on every image available, then transfer the encoder.
    from core import autoencoder

    encoder_layers = autoencoder.pretrain(config, dataset, writer, clock, state, say, split=indices)
    return models.build_encoder_classifier(encoder_layers, n_classes, image_size=config.image_size,
                                           head=config.head, dropout=config.dropout, seed=config.seed)


# ---------------------------------------------------------------------- Keras heads

def _fit_keras(config, split, writer, x_train, y_train, x_val, y_val, clock, state, say):
    """Train the Keras head (and the unfrozen blocks), on cached features when that is exact."""
    x_train_in, x_val_in, model, cache_note = _inputs_for(config, split, writer, x_train, x_val, clock, state, say)
    if state["train_started"] is None:
        state["train_started"] = time.perf_counter()

    phases = []
    if config.two_phase and config.model == "vgg16" and config.freeze_depth < 5:
        phases.append(("head", config.head_epochs, config.learning_rate, 5))
        phases.append(("fine_tune", config.epochs, config.learning_rate / 10, config.freeze_depth))
    else:
        phases.append(("train", config.epochs, config.learning_rate, None))
    if config.model == "autoencoder" and config.fine_tune_encoder:
        phases = [("head", config.epochs, config.learning_rate, None),
                  ("fine_tune_encoder", max(1, config.epochs // 2), config.learning_rate / 10, "encoder")]

    epoch_offset, best, stopped, events = 0, None, False, None
    for phase_name, epochs, learning_rate, depth in phases:
        if depth is not None:
            model = _refreeze(config, split, depth, writer, say)
            x_train_in, x_val_in = (x_train, x_val) if model is split.full else (x_train_in, x_val_in)
        models.compile_classifier(model, config.optimizer, learning_rate, config.momentum,
                                  jit_compile="auto" if model is split.full else False)
        steps = max(1, math.ceil(len(x_train_in) / config.batch_size))
        events = RunEvents(writer, phase_name, epochs, steps, epoch_offset=epoch_offset,
                           weights_model=split.full if len(phases) > 1 else None)
        if best is not None:  # carry the best-so-far across phases
            events.best_score, events.best_weights, events.best_epoch = best
        callbacks = [events]
        if config.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience))
        with clock.phase(phase_name):
            model.fit(x_train_in, y_train, validation_data=(x_val_in, y_val), epochs=epochs,
                      batch_size=config.batch_size, shuffle=True, verbose=0, callbacks=callbacks)
        if events.nan:
            raise RunFailed("loss became NaN: lower the learning rate")
        epoch_offset += len(events.history)
        best = (events.best_score, events.best_weights, events.best_epoch)
        if events.stopped:
            stopped = True
            break
    if events.best_weights is not None:
        events.restore_best()
    val_probabilities = np.asarray(model.predict(x_val_in, batch_size=config.batch_size, verbose=0))
    return {"val_probabilities": val_probabilities, "best_epoch": events.best_epoch, "stopped": stopped,
            "feature_cache": cache_note}


def _inputs_for(config, split, writer, x_train, x_val, clock, state, say):
    """Decide cached or uncached; return (train inputs, val inputs, the model to fit, a note)."""
    if split.lower is None or not config.uses_feature_cache:
        reason = ("augmentation is on, and random changes below the freeze boundary make cached features wrong"
                  if config.augment else "nothing is frozen" if split.lower is None else "the cache is switched off")
        writer.event("feature_cache", used=False, reason=reason)
        say(f"feature cache off: {reason}")
        return x_train, x_val, split.full, {"used": False, "reason": reason}
    shape = tuple(split.lower.output_shape[1:])
    needed = (len(x_train) + len(x_val)) * int(np.prod(shape)) * 2
    budget = config.cache_budget_mb * 1024 * 1024
    if needed > budget:
        reason = (f"the cache would need {needed / 2**20:.0f} MB, over the {config.cache_budget_mb} MB budget; "
                  "training on images instead (slower)")
        writer.event("feature_cache", used=False, reason=reason, bytes=needed)
        say(f"feature cache off: {reason}")
        return x_train, x_val, split.full, {"used": False, "reason": reason}
    state["train_started"] = time.perf_counter()
    total = len(x_train) + len(x_val)
    with clock.phase("feature_cache"):
        features = models.compute_features(
            split.lower, np.concatenate([x_train, x_val]), batch_size=max(config.batch_size, 16),
            dtype=FEATURE_CACHE_DTYPE, progress=lambda f, m: writer.progress("feature_cache", f, m),
            message="caching frozen features")
    writer.event("feature_cache", used=True, shape=list(shape), bytes=int(features.nbytes), images=total)
    say(f"feature cache: {total} images x {shape} {features.dtype} = {features.nbytes / 2**20:.1f} MB")
    return features[: len(x_train)], features[len(x_train):], split.upper, {
        "used": True, "shape": list(shape), "bytes": int(features.nbytes)}


def _refreeze(config, split, depth, writer, say):
    """Switch to a phase's freeze depth; returns the model to fit (full when the cache no longer applies)."""
    if depth == "encoder":
        for layer in split.full.layers:
            if layer.name.startswith("encoder_"):
                layer.trainable = True
        say("fine-tuning the encoder at a tenth of the learning rate")
        return split.full
    models.set_freeze_depth(split, depth)
    if depth == 5 and split.lower is not None:
        return split.upper
    say(f"unfreezing to freeze depth {depth} at a tenth of the learning rate")
    return split.full if depth < config.freeze_depth or split.lower is None else split.upper


# ---------------------------------------------------------------------- classical heads

def _fit_classical(config, split, writer, x_train, y_train, x_val, y_val, clock, state, say):
    """Fit an SVM or random forest on pooled features of the frozen network."""
    import joblib
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    state["train_started"] = time.perf_counter()
    with clock.phase("feature_cache"):
        features = models.compute_features(
            split.full, np.concatenate([x_train, x_val]), batch_size=max(config.batch_size, 16),
            dtype="float32", progress=lambda f, m: writer.progress("feature_cache", f, m),
            message="computing frozen features")
    f_train, f_val = features[: len(x_train)], features[len(x_train):]
    _check_stop(writer)
    started = time.perf_counter()
    with clock.phase(config.head):
        if config.head == "svm":
            # Calibrated probabilities (SVC(probability=True) is deprecated in scikit-learn 1.9).
            folds = int(max(2, min(3, np.bincount(y_train).min())))
            estimator = make_pipeline(StandardScaler(), CalibratedClassifierCV(
                SVC(C=config.svm_c, kernel="linear", random_state=config.seed), cv=folds, ensemble=False))
        else:
            estimator = RandomForestClassifier(n_estimators=config.forest_trees, random_state=config.seed,
                                               n_jobs=1)
        estimator.fit(f_train, y_train)
    train_probabilities = _full_proba(estimator, f_train, len(np.unique(y_train)))
    val_probabilities = _full_proba(estimator, f_val, train_probabilities.shape[1])
    n_classes = train_probabilities.shape[1]
    writer.event("epoch", phase=config.head, epoch=1, epochs=1, seconds=round(time.perf_counter() - started, 3),
                 loss=_log_loss(y_train, train_probabilities), accuracy=float((train_probabilities.argmax(1) == y_train).mean()),
                 val_loss=_log_loss(y_val, val_probabilities, n_classes),
                 val_accuracy=float((val_probabilities.argmax(1) == y_val).mean()))
    joblib.dump(estimator, Path(writer.path) / "classifier.joblib")
    return {"val_probabilities": val_probabilities, "best_epoch": 1, "stopped": False,
            "feature_cache": {"used": True, "shape": list(features.shape[1:]), "bytes": int(features.nbytes)}}


def _full_proba(estimator, features, n_classes):
    """predict_proba with a column for every class, even one missing from the training split."""
    probabilities = estimator.predict_proba(features)
    full = np.zeros((len(features), max(n_classes, int(max(estimator.classes_)) + 1)))
    full[:, estimator.classes_] = probabilities
    return full


def _log_loss(y, probabilities, n_classes=None):
    picked = probabilities[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
