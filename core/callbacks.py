"""What a training run listens with: one-job Keras callbacks, the phase clock, and the two early endings.

Training announces what happens (a phase starts and ends, a batch or an epoch is done); these
listeners turn that into run events, a stop, a NaN verdict or the best epoch's weights. Each one
can be read, tested and reused alone, by the classifier's training and the autoencoder's alike.
"""
from __future__ import annotations

import collections
import contextlib
import math
import os
import time

import numpy as np

from core import runs

import keras


class RunFailed(RuntimeError):
    """Training cannot go on; the message is for the user, in plain words."""


class StopRequested(Exception):
    """The run was asked to stop (a stop request file) at a point where there is no model to keep yet."""


# ---------------------------------------------------------------------- phases

class PhaseClock:
    """Times named phases of a run and announces each as a ``phase_start`` and a ``phase`` event."""

    def __init__(self, writer: runs.RunWriter, log=None):
        self.writer = writer
        self.log = log or (lambda message: None)

    @contextlib.contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        self.writer.event("phase_start", name=name)
        yield
        # Only a phase that finished is announced with its time: a failure is the run's error event.
        seconds = round(time.perf_counter() - started, 3)
        self.writer.event("phase", name=name, seconds=seconds)
        self.log(f"{name}: {seconds:.1f} s")


# ---------------------------------------------------------------------- Keras callbacks

class EventLogger(keras.callbacks.Callback):
    """Writes ``batch`` and ``epoch`` events of one training phase to the run.

    Args:
        writer: the run's RunWriter.
        phase: the phase's name in every event ("train", "head", "fine_tune", "autoencoder", ...).
        epochs: epochs this fit runs (an event's ``epochs`` is ``epoch_offset + epochs``).
        steps: batches an epoch (for ``fraction`` and to always announce an epoch's last batch).
        epoch_offset: epochs run by earlier phases, so epoch numbers continue across phases.
        batch_interval: seconds between batch events; a fast loop would otherwise write thousands.
    """

    def __init__(self, writer: runs.RunWriter, phase: str, epochs: int, steps: int, *,
                 epoch_offset: int = 0, batch_interval: float = 0.2):
        super().__init__()
        self.writer, self.phase, self.epochs, self.steps = writer, phase, epochs, steps
        self.epoch_offset, self.batch_interval = epoch_offset, batch_interval
        self.history: list[dict] = []  # the epoch records written, in order
        self._epoch = 0
        self._epoch_started = time.perf_counter()
        self._last_batch_event = -math.inf  # the first batch is always announced

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = _maybe_float(logs.get("loss"))
        if loss is None or not math.isfinite(loss):
            return  # NaN is StopOnNaN's to report, and it is not valid JSON
        now = time.perf_counter()
        if batch + 1 == self.steps or now - self._last_batch_event >= self.batch_interval:
            self._last_batch_event = now
            self.writer.event("batch", phase=self.phase, epoch=self.epoch_offset + self._epoch + 1,
                              batch=batch + 1, steps=self.steps, loss=loss,
                              accuracy=_maybe_float(logs.get("accuracy")),
                              fraction=round((self._epoch + (batch + 1) / self.steps) / self.epochs, 4))

    def on_epoch_end(self, epoch, logs=None):
        record = _epoch_record(logs)
        if "loss" in record and not math.isfinite(record["loss"]):
            return
        self.history.append(record)
        self.writer.event("epoch", phase=self.phase, epoch=self.epoch_offset + epoch + 1,
                          epochs=self.epoch_offset + self.epochs,
                          seconds=round(time.perf_counter() - self._epoch_started, 3), **record)


class Validation(keras.callbacks.Callback):
    """Scores the model on the validation set at the end of every epoch and puts ``val_loss`` and
    ``val_accuracy`` into the epoch's logs, for the callbacks after it (events, best weights, early stopping).

    What ``model.fit(validation_data=...)`` does, without its cost on small models: fit's validation traces a
    second graph and sets up a data pipeline every epoch, about 0.1 s an epoch for a head on 80 cached
    features, more than scoring them takes. Here the model is called directly, batch by batch: no graph to
    trace, the same numbers (Keras's categorical cross-entropy and accuracy, averaged over the pictures).
    ``probabilities`` are the last scored epoch's; ``predict`` scores any model the same way.

    Put it first in the callback list: the others read what it adds to the logs.
    """

    def __init__(self, x_val, y_val, batch_size: int):
        super().__init__()
        self.x_val, self.batch_size = x_val, batch_size
        self.labels = np.asarray(y_val).argmax(1) if np.ndim(y_val) == 2 else np.asarray(y_val)
        self.probabilities: np.ndarray | None = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not len(self.labels):
            return
        self.probabilities = self.predict(self.model)
        logs.update(scores(self.labels, self.probabilities, prefix="val_"))

    def predict(self, model: keras.Model) -> np.ndarray:
        """``model``'s probabilities on the validation set (inference mode: no dropout)."""
        return predict_in_batches(model, self.x_val, self.batch_size)


def predict_in_batches(model: keras.Model, inputs, batch_size: int) -> np.ndarray:
    """``model(inputs)`` batch by batch as float32 NumPy, calling the model directly (nothing to trace)."""
    outputs = [keras.ops.convert_to_numpy(model(np.asarray(inputs[start:start + batch_size], dtype="float32"),
                                                training=False))
               for start in range(0, len(inputs), batch_size)]
    if not outputs:
        return np.zeros((0,) + tuple(model.output_shape[1:]), dtype="float32")
    return np.concatenate(outputs).astype("float32", copy=False)


def scores(labels: np.ndarray, probabilities: np.ndarray, *, prefix: str = "") -> dict:
    """Keras's categorical cross-entropy (probabilities renormalised and clipped to [1e-7, 1 - 1e-7]) and
    accuracy, averaged over the pictures, as fit's logs name them (``prefix`` "val_": val_loss, val_accuracy)."""
    probabilities = np.asarray(probabilities, dtype="float64")
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    return {f"{prefix}loss": float(-np.log(picked).mean()),
            f"{prefix}accuracy": float((probabilities.argmax(1) == labels).mean())}


class StopOnRequest(keras.callbacks.Callback):
    """Stops training after the batch in which a stop request file appears in the run directory.

    Checking after every batch (one file-system stat) makes a stop land within one batch; the
    epoch still ends normally, so its event is written and the best weights stay usable.
    """

    def __init__(self, run_dir: str | os.PathLike):
        super().__init__()
        self.run_dir = run_dir
        self.stopped = False
        self.batches_after_request: int | None = None  # batches that ended after the request was made
        self._batch_ends: collections.deque = collections.deque(maxlen=16)

    def on_train_batch_end(self, batch, logs=None):
        self._batch_ends.append(time.time())
        if runs.stop_requested(self.run_dir):
            self.stopped = True
            self.model.stop_training = True
            made = runs.stop_request_time(self.run_dir)
            if made is not None:
                self.batches_after_request = sum(1 for ended in self._batch_ends if ended >= made)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN that remembers it fired (``nan``), so the trainer can fail the run with advice.

    It stops the same way (``model.stop_training``) but without Keras's message on stdout, where
    ``python -m core train`` writes its result as one JSON line.
    """

    def __init__(self):
        super().__init__(raise_error=False)
        self.nan = False

    def on_batch_end(self, batch, logs=None):
        loss = _maybe_float((logs or {}).get("loss"))
        if loss is not None and not math.isfinite(loss):
            self.nan = True
            self.model.stop_training = True


class BestWeights(keras.callbacks.Callback):
    """Keeps the best epoch's weights in memory; ``restore()`` puts them back.

    The best epoch has the highest validation accuracy, then the lowest validation loss (only the
    lowest loss with ``monitor_accuracy=False``, as for the autoencoder). One instance can watch
    several fits in turn (the phases of a run): epochs are counted across them, and the best of an
    earlier phase stays the best until a later epoch beats it. Restoring is left to the caller at
    the end of the last phase, because a later phase should go on from where the earlier one ended,
    not from its best epoch.

    Args:
        monitor_accuracy: score by val_accuracy first (classifiers); False scores by val_loss alone.
        weights_model: the model whose weights are snapshotted and restored; default the model being
            fit. Phases that fit different models over shared layers (a head on cached features, then
            the full network) pass the full network, so a snapshot from either phase restores whole.
    """

    def __init__(self, *, monitor_accuracy: bool = True, weights_model: keras.Model | None = None):
        super().__init__()
        self.monitor_accuracy = monitor_accuracy
        self.weights_model = weights_model
        self.epochs_seen = 0  # across every fit this instance watched: the run's epoch number
        self.best_score: tuple | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_seen += 1
        record = _epoch_record(logs)
        if not all(math.isfinite(value) for value in record.values()):
            return  # a diverged epoch is never the best one
        score = self._score(record)
        if score is not None and (self.best_score is None or score > self.best_score):
            self.best_score, self.best_epoch = score, self.epochs_seen
            self.best_weights = [np.array(w) for w in self._target().get_weights()]

    def _score(self, record: dict) -> tuple | None:
        if self.monitor_accuracy and "val_accuracy" in record:
            return (record["val_accuracy"], -record.get("val_loss", 0.0))
        if "val_loss" in record:
            return (-record["val_loss"],)
        return None

    def restore(self) -> bool:
        """Put the best epoch's weights back; False when no epoch was scored (nothing to restore)."""
        if self.best_weights is None:
            return False
        self._target().set_weights(self.best_weights)
        return True

    def _target(self) -> keras.Model:
        return self.weights_model if self.weights_model is not None else self.model


def _epoch_record(logs) -> dict:
    """The epoch's numbers that the run records, as plain floats; absent ones are left out."""
    logs = logs or {}
    return {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")
            if logs.get(key) is not None}


def _maybe_float(value):
    return None if value is None else float(value)
