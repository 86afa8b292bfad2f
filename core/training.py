"""One training run: a validated config and labeled data in, a complete run directory out.

A ``Trainer`` owns the run (its config, run-directory writer, phase clock, log and the moment
training started) and its steps are methods, so ``run`` reads top to bottom as the story: load the
data and split it, build the model (pretraining the autoencoder first on that path), cache the
frozen part's output once, fit the rest while the callbacks of core.callbacks announce every batch
and epoch and keep the best epoch, then save the model, its labels and its metrics. The run
directory is the only way it talks to the outside (status, events, a stop request file), so it runs
the same in the app's job processes, the CLI, the tests and the benchmark. ``train`` is the one-call
form everything else uses.

Recipe ``auto`` (the default, core.auto) tells the same story with a choice in the middle: one forward
pass gives pooled features of several blocks (``auto_features``), candidates are scored on the training
pictures alone (``score_candidates``), and the winner is fitted on all of them (``fit_winner``).
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import auto, autoencoder, backend, ingest, measured, models, runs
from core.callbacks import (BestWeights, EventLogger, PhaseClock, RunFailed, StopOnNaN, StopOnRequest,
                            StopRequested, Validation)
from core.config import FINE_TUNE_LEARNING_RATE, TrainConfig
from core.metrics import classification_metrics

import keras

# RunFailed and StopRequested live in core.callbacks (the autoencoder raises them too, without
# importing this module); callers know them as training.RunFailed and training.StopRequested.
__all__ = ["FEATURE_CACHE_DTYPE", "FitInputs", "FitOutcome", "LoadedData", "Phase", "RunFailed", "RunResult",
           "StopRequested", "Trainer", "plain_error", "train"]

# The cache stores activations at half precision: half the memory, and the rounding (about 1e-3
# relative) is far below what training notices. Tests set float32 to show the paths are identical.
FEATURE_CACHE_DTYPE = "float16"
HELD_OUT_PREDICTIONS = "held_out_predictions.json"


@dataclass
class RunResult:
    run_dir: str
    state: str
    val_accuracy: float | None
    train_seconds: float | None
    error: str | None = None


@dataclass
class LoadedData:
    """The run's images and its split: indices into ``dataset`` for training and for validation."""

    dataset: ingest.Dataset
    train_idx: np.ndarray
    val_idx: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.dataset.classes)

    # Cached: each is a copy of part of the dataset, made once however many steps read it.
    @functools.cached_property
    def x_train(self) -> np.ndarray:
        return self.dataset.images[self.train_idx]

    @functools.cached_property
    def x_val(self) -> np.ndarray:
        return self.dataset.images[self.val_idx]

    @property
    def y_train(self) -> np.ndarray:
        """Class indices of the training images."""
        return self.dataset.labels[self.train_idx]

    @property
    def y_val(self) -> np.ndarray:
        return self.dataset.labels[self.val_idx]


@dataclass
class FitInputs:
    """What a Keras fit trains on: cached boundary features and the model above the boundary, or
    images and the full network. ``feature_cache`` is the note status.json records."""

    x_train: np.ndarray
    x_val: np.ndarray
    model: keras.Model
    feature_cache: dict

    @property
    def cached(self) -> bool:
        return bool(self.feature_cache["used"])


@dataclass
class Phase:
    """One ``model.fit`` of a recipe.

    ``unfreeze`` is what changes before it: None (the model as built), a VGG16 freeze depth 0..5, or
    "encoder" (the autoencoder's encoder becomes trainable).
    """

    name: str  # the phase in events: "train", "head", "fine_tune", "fine_tune_encoder"
    epochs: int
    learning_rate: float
    unfreeze: int | str | None = None


@dataclass
class FitOutcome:
    """What a fit hands to ``save``: validation probabilities of the kept (best) model and how it ended."""

    val_probabilities: np.ndarray
    best_epoch: int | None
    stopped: bool
    feature_cache: dict | None
    # Recipe auto without a validation split: the labels the probabilities belong to (every training
    # picture, predicted out of fold) and how they were measured; None means the validation split.
    metric_labels: np.ndarray | None = None
    evaluation: str = "validation_split"


@dataclass
class FineTuneCandidate:
    """Recipe auto's fine-tune candidate: its leaderboard row and its predictions on the held-out rows."""

    candidate: auto.Candidate
    holdout_rows: np.ndarray
    holdout_probabilities: np.ndarray


@dataclass
class AutoFeatures:
    """Recipe auto's one forward pass: pooled features per block of the training pictures, of the validation
    pictures and of both's mirror images, and block 4's maps for the fine-tune candidate (else None)."""

    base: keras.Model
    train: dict[int, np.ndarray]
    flipped: dict[int, np.ndarray]
    val: dict[int, np.ndarray]
    val_flipped: dict[int, np.ndarray]
    train_maps: np.ndarray | None
    val_maps: np.ndarray | None
    note: dict


@dataclass
class AutoBoard:
    """The scored candidates, the one chosen, how its metrics are measured, and whether a stop came."""

    candidates: list[auto.Candidate]
    chosen: int
    evaluation: str
    fine_tune: "FineTuneCandidate | None"
    stopped: bool


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
    return Trainer(config, run_dir, log=log).run(data, dataset=dataset, split=split)


class Trainer:
    """One training run and everything it shares between its steps.

    Args:
        config: the run's settings; validated here, once (ValueError naming every bad field).
        run_dir: the run directory to write (created if missing).
        log: optional callable(str) for human progress lines.

    ``run`` does the whole run and turns every failure into the run's status; the steps (``load``,
    ``build``, ``pretrain``, ``cache``, ``fit_keras``, ``fit_classical``, ``fit_auto``, ``save``) can also be
    called one by one, and then raise. Recipe auto replaces ``build`` and the fit with ``fit_auto``.
    """

    def __init__(self, config: TrainConfig, run_dir: str | os.PathLike, *, log=None):
        config.validate()
        self.config = config
        self.run_dir = run_dir
        self.writer = runs.RunWriter(run_dir)
        self.log = log or (lambda message: None)
        self.clock = PhaseClock(self.writer, self.log)
        self.train_started: float | None = None  # perf_counter() when training proper began

    def run(self, data, *, dataset: ingest.Dataset | None = None, split: tuple | None = None) -> RunResult:
        """Load, build, fit and save; see ``train`` for the arguments. Never raises for a failed run."""
        config = self.config
        self.writer.write_json("config.json", config.to_dict())
        # VGG16 built by an earlier run of this process (a warm worker's) is reused, its weights as loaded
        with models.reusing_bases():
            return self._run(data, dataset=dataset, split=split)

    def _run(self, data, *, dataset: ingest.Dataset | None, split: tuple | None) -> RunResult:
        config = self.config
        try:
            self._start()
            self.check_stop()
            loaded = self.load(data, dataset=dataset, split=split)
            self.check_stop()
            if config.auto:
                network, outcome = self.fit_auto(loaded)
            else:
                network = self.build(loaded)
                self.check_stop()
                outcome = self.fit_classical(network, loaded) if config.classical else self.fit_keras(network, loaded)
            return self.save(network, loaded, outcome)
        except StopRequested:
            self.writer.set_status("stopped", error=None)
            self.log("stopped before training started")
            return RunResult(str(self.run_dir), "stopped", None, None)
        except BaseException as error:  # every failure becomes plain words in the run, never a traceback
            message = plain_error(error)
            self.writer.event("error", message=message, kind=type(error).__name__)
            self.writer.set_status("failed", error=message)
            self.log(f"failed: {message}")
            if isinstance(error, KeyboardInterrupt):
                raise
            return RunResult(str(self.run_dir), "failed", None, None, message)

    def _start(self) -> None:
        device = backend.configure_device(self.config.mixed_precision)
        self.writer.set_status("running", device=device, backend=backend.name(), pid=os.getpid(), error=None)
        self.log(f"training on {device}")
        keras.utils.set_random_seed(self.config.seed)

    def check_stop(self) -> None:
        """Raise StopRequested if the run was asked to stop (between steps, before there is a model to keep)."""
        if runs.stop_requested(self.writer.path):
            raise StopRequested()

    def mark_training_start(self, *, restart: bool = False) -> None:
        """Start the clock of ``train_seconds`` (the first one counts), or start it afresh with ``restart``.

        A computation of features restarts it, as it always has: a cached run's train_seconds
        counts from its feature cache (after an autoencoder's pretraining, too).
        """
        if restart or self.train_started is None:
            self.train_started = time.perf_counter()

    def train_seconds(self) -> float | None:
        return None if self.train_started is None else round(time.perf_counter() - self.train_started, 3)

    # ------------------------------------------------------------------ steps

    def load(self, data, *, dataset: ingest.Dataset | None = None, split: tuple | None = None) -> LoadedData:
        """Load ``data`` (unless ``dataset`` is given), split it, and write dataset.json and labels.json."""
        config, writer = self.config, self.writer
        with self.clock.phase("load_data"):
            if dataset is None:
                dataset = ingest.load_labeled(data, config.image_size, policy=config.resize_policy,
                                              progress=lambda f, m: writer.progress("load_data", f, m))
            if split is None and config.auto:
                train_idx, val_idx = self.split_for_auto(dataset)
            elif split is None:
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
        self.log(f"{len(dataset.labels)} images, {len(dataset.classes)} classes; "
                 f"{len(train_idx)} train / {len(val_idx)} validation; {len(dataset.skipped)} skipped")
        return LoadedData(dataset, train_idx, val_idx)

    def build(self, loaded: LoadedData) -> models.SplitModel:
        """Build the classifier: VGG16 per the config, or an autoencoder pretrained here and its encoder."""
        config = self.config
        with self.clock.phase("build_model"):
            if config.model == "vgg16":
                self.log(f"building VGG16 (weights {config.weights}, freeze depth {config.freeze_depth}, "
                         f"head {config.head})")
                return models.build_vgg16_classifier(
                    loaded.n_classes, image_size=config.image_size, weights=config.weights,
                    freeze_depth=config.freeze_depth, head=config.head, dropout=config.dropout,
                    augment=config.augment and not config.classical, seed=config.seed,
                    progress=lambda f, m: self.writer.progress("weights", f, m))
            # The autoencoder path: pretrain on every image available, then transfer the encoder.
            encoder_layers = self.pretrain(loaded)
            return models.build_encoder_classifier(encoder_layers, loaded.n_classes, image_size=config.image_size,
                                                   head=config.head, dropout=config.dropout, seed=config.seed)

    def pretrain(self, loaded: LoadedData) -> list:
        """Pretrain the autoencoder on the training images (and config.unlabeled); its encoder layers."""
        return autoencoder.pretrain(self, loaded.dataset, split=(loaded.train_idx, loaded.val_idx))

    def cache(self, network: models.SplitModel, loaded: LoadedData) -> FitInputs:
        """Compute the frozen part's output once when that is exact and within the budget, else keep images.

        The choice and its reason are announced as a ``feature_cache`` event.
        """
        config = self.config
        x_train, x_val = loaded.x_train, loaded.x_val
        if network.lower is None or not config.uses_feature_cache:
            reason = ("augmentation is on, and random changes below the freeze boundary make cached features wrong"
                      if config.augment else "nothing is frozen" if network.lower is None
                      else "the cache is switched off")
            self.writer.event("feature_cache", used=False, reason=reason)
            self.log(f"feature cache off: {reason}")
            return FitInputs(x_train, x_val, network.full, {"used": False, "reason": reason})
        shape = tuple(network.lower.output_shape[1:])
        needed = (len(x_train) + len(x_val)) * int(np.prod(shape)) * 2
        if needed > config.cache_budget_mb * 1024 * 1024:
            reason = (f"the cache would need {needed / 2**20:.0f} MB, over the {config.cache_budget_mb} MB "
                      "budget; training on images instead (slower)")
            self.writer.event("feature_cache", used=False, reason=reason, bytes=needed)
            self.log(f"feature cache off: {reason}")
            return FitInputs(x_train, x_val, network.full, {"used": False, "reason": reason})
        self.mark_training_start(restart=True)
        total = len(x_train) + len(x_val)
        # float32 unless bfloat16 is asked for (core.backend.forward_precision); a float32 cache (tests of
        # exactness) is always computed in float32.
        precision = backend.forward_precision() if FEATURE_CACHE_DTYPE == "float16" else "float32"
        with self.clock.phase("feature_cache"):
            started = time.perf_counter()
            lower = network.lower if precision == "float32" else models.reduced_precision_copy(network.lower, precision)
            copy_seconds = round(time.perf_counter() - started, 3)
            features = models.compute_features(
                lower, np.concatenate([x_train, x_val]), batch_size=max(config.batch_size, 16),
                dtype=FEATURE_CACHE_DTYPE, progress=self._cache_progress, message="caching frozen features")
        note = {"used": True, "shape": list(shape), "bytes": int(features.nbytes), "precision": precision}
        self.writer.event("feature_cache", **note, images=total, copy_seconds=copy_seconds)
        self.log(f"feature cache: {total} images x {shape} {features.dtype} (computed in {precision}) = "
                 f"{features.nbytes / 2**20:.1f} MB")
        return FitInputs(features[: len(x_train)], features[len(x_train):], network.upper, note)

    def _cache_progress(self, fraction: float, message: str) -> None:
        """The feature cache's progress event after each batch, then a stop check: a stop lands within one
        batch of the forward pass (the longest step before the first epoch) rather than after it."""
        self.writer.progress("feature_cache", fraction, message)
        self.check_stop()

    def phases(self) -> list[Phase]:
        """The recipe as a list of fits: one, or the head first and then fine-tuning at a tenth of the rate."""
        config = self.config
        if config.model == "autoencoder" and config.fine_tune_encoder:
            return [Phase("head", config.epochs, config.learning_rate),
                    Phase("fine_tune_encoder", max(1, config.epochs // 2), config.learning_rate / 10, "encoder")]
        if config.two_phase and config.model == "vgg16" and config.freeze_depth < 5:
            return [Phase("head", config.head_epochs, config.learning_rate, 5),
                    Phase("fine_tune", config.epochs, config.learning_rate / 10, config.freeze_depth)]
        return [Phase("train", config.epochs, config.learning_rate)]

    def fit_keras(self, network: models.SplitModel, loaded: LoadedData) -> FitOutcome:
        """Train the Keras head (and the unfrozen blocks) phase by phase, on cached features when that is exact.

        Raises RunFailed when the loss becomes NaN. A stop request ends the current epoch and the run
        keeps the best epoch so far.
        """
        config = self.config
        inputs = self.cache(network, loaded)
        self.mark_training_start()
        y_train = keras.utils.to_categorical(loaded.y_train, loaded.n_classes)
        y_val = keras.utils.to_categorical(loaded.y_val, loaded.n_classes)
        phases = self.phases()
        # With several phases the fitted model changes (a head on cached features, then the full
        # network), so the best weights are always those of the full network.
        best = BestWeights(weights_model=network.full if len(phases) > 1 else None)
        model, x_train, x_val = inputs.model, inputs.x_train, inputs.x_val
        epoch_offset, stopped = 0, False
        for phase in phases:
            if phase.unfreeze is not None:
                model, x_train, x_val = self._unfreeze(network, phase.unfreeze, inputs, loaded)
            models.compile_classifier(model, config.optimizer, phase.learning_rate, config.momentum,
                                      jit_compile="auto" if model is network.full else False)
            steps = max(1, math.ceil(len(x_train) / config.batch_size))
            logger = EventLogger(self.writer, phase.name, phase.epochs, steps, epoch_offset=epoch_offset)
            stop, nan = StopOnRequest(self.writer.path), StopOnNaN()
            validation = Validation(x_val, y_val, scoring_batch(x_val, config.batch_size))
            callbacks = [validation, nan, logger, stop, best]
            if config.early_stopping:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience))
            with self.clock.phase(phase.name):
                model.fit(x_train, y_train, epochs=phase.epochs, batch_size=config.batch_size, shuffle=True,
                          verbose=0, callbacks=callbacks)
            if nan.nan:
                raise RunFailed("loss became NaN: lower the learning rate")
            epoch_offset += len(logger.history)
            if stop.stopped:
                # how many batches ended after the request was made: 1 when it landed within the batch under way
                self.writer.event("stop", phase=phase.name, batches_after_request=stop.batches_after_request)
                stopped = True
                break
        best.restore()
        return FitOutcome(validation.predict(model), best.best_epoch, stopped, inputs.feature_cache)

    def _unfreeze(self, network: models.SplitModel, unfreeze, inputs: FitInputs, loaded: LoadedData):
        """Set a phase's trainable layers; (the model to fit, its training inputs, its validation inputs)."""
        images = (network.full, loaded.x_train, loaded.x_val)
        if unfreeze == "encoder":
            for layer in network.full.layers:
                if layer.name.startswith("encoder_"):
                    layer.trainable = True
            self.log("fine-tuning the encoder at a tenth of the learning rate")
            return images
        models.set_freeze_depth(network, unfreeze)
        if unfreeze < 5:
            self.log(f"unfreezing to freeze depth {unfreeze} at a tenth of the learning rate")
        # Cached features stay exact while every block below the boundary is still frozen.
        if inputs.cached and unfreeze >= self.config.freeze_depth:
            return network.upper, inputs.x_train, inputs.x_val
        return images

    def fit_classical(self, network: models.SplitModel, loaded: LoadedData) -> FitOutcome:
        """Fit an SVM or random forest on pooled features of the frozen network; writes classifier.skops."""
        from core.classifier_files import save_classifier
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        config = self.config
        x_train, x_val, y_train, y_val = loaded.x_train, loaded.x_val, loaded.y_train, loaded.y_val
        self.mark_training_start(restart=True)
        with self.clock.phase("feature_cache"):
            features = models.compute_features(
                network.full, np.concatenate([x_train, x_val]), batch_size=max(config.batch_size, 16),
                dtype="float32", progress=lambda f, m: self.writer.progress("feature_cache", f, m),
                message="computing frozen features")
        f_train, f_val = features[: len(x_train)], features[len(x_train):]
        self.check_stop()
        started = time.perf_counter()
        with self.clock.phase(config.head):
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
        self.writer.event("epoch", phase=config.head, epoch=1, epochs=1,
                          seconds=round(time.perf_counter() - started, 3),
                          loss=_log_loss(y_train, train_probabilities),
                          accuracy=float((train_probabilities.argmax(1) == y_train).mean()),
                          val_loss=_log_loss(y_val, val_probabilities),
                          val_accuracy=float((val_probabilities.argmax(1) == y_val).mean()))
        save_classifier(estimator, self.writer.path)
        return FitOutcome(val_probabilities, 1, False,
                          {"used": True, "shape": list(features.shape[1:]), "bytes": int(features.nbytes)})

    # ------------------------------------------------------------------ recipe auto

    def split_for_auto(self, dataset: ingest.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Recipe auto's split: with few pictures a class every picture trains (metrics come from
        cross-validated predictions); with enough, the usual seeded validation split."""
        counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
        if counts.min() < auto.FEW_PER_CLASS:
            return np.arange(len(dataset.labels)), np.zeros(0, dtype=np.int64)
        return ingest.split(dataset, self.config.validation_fraction, self.config.seed)

    def fit_auto(self, loaded: LoadedData) -> tuple[models.SplitModel, FitOutcome]:
        """Recipe auto: features once, candidates scored on the training pictures, the winner fitted on all."""
        features = self.auto_features(loaded)
        self.check_stop()
        board = self.score_candidates(loaded, features)
        return self.fit_winner(loaded, features, board)

    def auto_features(self, loaded: LoadedData) -> AutoFeatures:
        """Build the frozen VGG16 and run it once over the training and validation pictures and their mirror
        images: pooled block 3/4/5 features, and block 4's maps when fine-tuning is a candidate."""
        config, writer = self.config, self.writer
        counts = np.bincount(loaded.y_train, minlength=loaded.n_classes)
        keep_maps = 4 if counts.min() >= auto.FINE_TUNE_MIN_PER_CLASS else None
        with self.clock.phase("build_model"):
            self.log(f"building VGG16 (weights {config.weights}) for recipe auto")
            base = models.load_vgg16_base(config.image_size, config.weights,
                                          progress=lambda f, m: writer.progress("weights", f, m))
            extractor = auto.feature_extractor(base, config.image_size, keep_maps=keep_maps)
        self.check_stop()
        self.mark_training_start(restart=True)
        parts = [("train", loaded.x_train, False), ("flipped", loaded.x_train, True), ("val", loaded.x_val, False),
                 ("val_flipped", loaded.x_val, True)]
        total = sum(len(images) for _, images, _ in parts)
        outputs, done = {}, 0
        with self.clock.phase("feature_cache"):
            for name, images, flip in parts:
                def report(fraction, message, offset=done, size=len(images)):
                    writer.progress("feature_cache", (offset + fraction * size) / total,
                                    f"computing features: {message.split(': ', 1)[-1]}")
                    self.check_stop()  # a stop lands within one batch of the forward pass

                outputs[name] = auto.extract(extractor, images, keep_maps=None if flip else keep_maps,
                                             batch_size=max(config.batch_size, 16), flip=flip,
                                             maps_dtype=FEATURE_CACHE_DTYPE, progress=report)
                done += len(images)
        train, train_maps = outputs["train"]
        val, val_maps = outputs["val"]
        note = {"used": True, "blocks": list(auto.FEATURE_BLOCKS), "images": int(total),
                "shape": [int(train[block].shape[1]) for block in auto.FEATURE_BLOCKS],
                "bytes": int(sum(part.nbytes for part in train.values()))}
        writer.event("feature_cache", **note)
        self.log(f"features of {total} pictures (with mirror images) from blocks "
                 f"{', '.join(map(str, auto.FEATURE_BLOCKS))}")
        return AutoFeatures(base, train, outputs["flipped"][0], val, outputs["val_flipped"][0], train_maps, val_maps,
                            note)

    def score_candidates(self, loaded: LoadedData, features: AutoFeatures) -> AutoBoard:
        """Score the linear candidates by cross-validation and, with enough pictures, the fine-tune candidate;
        write candidates.json. A stop after the first candidate still leaves the best so far to fit."""
        config, writer, y_train = self.config, self.writer, loaded.y_train
        folds = auto.n_folds(y_train)
        n_linear = len(auto.FEATURE_BLOCKS) * len(auto.STRENGTHS)
        total = n_linear + (1 if features.train_maps is not None else 0)
        scored: list[auto.Candidate] = []

        def announce(candidate: auto.Candidate):
            scored.append(candidate)
            writer.event("candidate", **candidate.to_dict(), index=len(scored) - 1, total=total)
            writer.progress("candidates", len(scored) / total, f"scored {candidate.name}")

        self.log(f"scoring {n_linear} linear candidates by {folds}-fold cross-validation on "
                 f"{len(y_train)} training pictures")
        with self.clock.phase("candidates"):
            auto.score_linear(features.train, features.flipped, y_train, n_classes=loaded.n_classes,
                              seed=config.seed, on_candidate=announce,
                              should_stop=lambda: runs.stop_requested(writer.path))
        if not scored:
            self.check_stop()
        stopped = runs.stop_requested(writer.path)
        fine_tune = None
        if features.train_maps is not None and not stopped:
            fine_tune = self._fine_tune_candidate(loaded, features, scored[auto.best(scored)], announce)
            stopped = fine_tune is None
        chosen = auto.best(scored)
        winner = scored[chosen]
        reason = auto.reason(scored, chosen)
        evaluation = "validation_split" if len(loaded.val_idx) else (
            "cross_validation" if winner.kind == "linear" else "held_out")
        scoring = f"{folds}-fold cross-validation on the {len(y_train)} training pictures"
        if fine_tune is not None:
            scoring += (f"; fine-tuning trained on the other {len(y_train) - fine_tune.candidate.held_out} and "
                        f"scored on {fine_tune.candidate.held_out} held-out training pictures")
        writer.write_json("candidates.json", {
            "recipe": "auto", "scoring": scoring, "evaluation": evaluation,
            "candidates": [candidate.to_dict() for candidate in scored], "chosen": chosen, "reason": reason})
        writer.event("recipe", chosen=chosen, name=winner.name, reason=reason)
        self.log(f"chosen: {reason}")
        return AutoBoard(scored, chosen, evaluation, fine_tune, stopped)

    def fit_winner(self, loaded: LoadedData, features: AutoFeatures, board: AutoBoard
                   ) -> tuple[models.SplitModel, FitOutcome]:
        """Fit the chosen candidate on every training picture; its metrics come from the validation split,
        or without one from the predictions it was scored on (each by a model that did not see the picture)."""
        config, y_train, n_classes = self.config, loaded.y_train, loaded.n_classes
        winner, evaluation = board.candidates[board.chosen], board.evaluation
        if winner.kind == "linear":
            with self.clock.phase("final_fit"):
                started = time.perf_counter()
                fit = auto.fit_linear(features.train[winner.block], features.flipped[winner.block], y_train,
                                      winner.regularization, n_classes=n_classes)
                model = auto.build_linear_classifier(features.base, winner.block, fit,
                                                     image_size=config.image_size, n_classes=n_classes)
                if len(loaded.val_idx):
                    probabilities = fit.predict_proba(features.val[winner.block], features.val_flipped[winner.block])
                    labels = loaded.y_val
                else:
                    probabilities, labels = winner.oof_probabilities, y_train
                self.writer.event("epoch", phase="final_fit", epoch=1, epochs=1,
                                  seconds=round(time.perf_counter() - started, 3),
                                  loss=fit.train_log_loss, accuracy=fit.train_accuracy,
                                  val_loss=auto.log_loss(labels, probabilities),
                                  val_accuracy=float((probabilities.argmax(1) == labels).mean()),
                                  evaluation=evaluation)
            if not len(loaded.val_idx):
                self._write_held_out_predictions(loaded, np.arange(len(y_train)), probabilities, evaluation)
            network = models.SplitModel(full=model, lower=None, upper=model,
                                        feature_layer=f"block{winner.block}_conv3")
            return network, FitOutcome(probabilities, 1, board.stopped, features.note, metric_labels=labels,
                                       evaluation=evaluation)
        # fine-tuning won: train it afresh on every training picture (best epoch by the validation split, if any)
        network = self._fine_tune_network(n_classes, features.base)
        val_maps = features.val_maps if features.val_maps is not None else features.train_maps[:0]
        outcome = self._fit_fine_tune(network, features.train_maps, y_train, val_maps, loaded.y_val,
                                      n_classes=n_classes, phase="final_fit")
        if len(loaded.val_idx):
            return network, FitOutcome(outcome.val_probabilities, outcome.best_epoch, outcome.stopped,
                                       features.note, evaluation=evaluation)
        fine_tune = board.fine_tune
        self._write_held_out_predictions(loaded, fine_tune.holdout_rows, fine_tune.holdout_probabilities, evaluation)
        return network, FitOutcome(fine_tune.holdout_probabilities, outcome.best_epoch, outcome.stopped,
                                   features.note, metric_labels=y_train[fine_tune.holdout_rows],
                                   evaluation=evaluation)

    def _write_held_out_predictions(self, loaded: LoadedData, rows: np.ndarray, probabilities: np.ndarray,
                                    evaluation: str) -> None:
        """Without a validation split, the predictions the metrics come from, one per picture, each by a
        model that did not see it: the Evaluate page shows them (and their pictures) like a validation split."""
        self.writer.write_json(HELD_OUT_PREDICTIONS, {
            "evaluation": evaluation,
            "paths": [loaded.dataset.paths[loaded.train_idx[row]] for row in rows],
            "probabilities": np.round(np.asarray(probabilities, dtype="float64"), 6).tolist()})

    def _fine_tune_network(self, n_classes: int, cache_base: keras.Model) -> models.SplitModel:
        """The fine-tune candidate's network: pretrained blocks 1-4 frozen (their output is the cache), block 5
        and a GAP head trained, as the manual recipe's defaults do. Built afresh, so the linear candidates'
        frozen layers never change; blocks 1-4 get the weights of ``cache_base``, the VGG16 that computed the
        cached maps (the same numbers with ImageNet weights, and with random ones the only way the saved model
        is the one trained on those maps)."""
        config = self.config
        network = models.build_vgg16_classifier(n_classes, image_size=config.image_size, weights=config.weights,
                                                freeze_depth=4, head="gap", dropout=config.dropout,
                                                seed=config.seed)
        frozen = {layer.name: layer for layer in cache_base.layers
                  if (models.vgg16_layer_block(layer.name) or 5) <= 4}
        for layer in network.full.layers:
            if layer.name in frozen and layer.weights:
                layer.set_weights(frozen[layer.name].get_weights())
        return network

    def _fine_tune_candidate(self, loaded: LoadedData, features: AutoFeatures, best_linear: auto.Candidate,
                             announce) -> FineTuneCandidate | None:
        """Train the fine-tune candidate on most of the training pictures and score it on the rest (last
        epoch), beside the best linear candidate fitted on the same pictures (the paired baseline)."""
        y_train, maps = loaded.y_train, features.train_maps
        # the same share of every class held out (at least one picture each), drawn with the run's seed
        rng = np.random.default_rng(self.config.seed)
        holdout_rows = np.sort(np.concatenate([
            rng.permutation(np.flatnonzero(y_train == label))[:max(1, round(auto.FINE_TUNE_HOLDOUT * count))]
            for label, count in enumerate(np.bincount(y_train, minlength=loaded.n_classes))]))
        fit_rows = np.setdiff1d(np.arange(len(y_train)), holdout_rows)
        labels = y_train[holdout_rows]
        block = best_linear.block
        baseline = auto.fit_linear(features.train[block][fit_rows], features.flipped[block][fit_rows],
                                   y_train[fit_rows], best_linear.regularization, n_classes=loaded.n_classes
                                   ).predict_proba(features.train[block][holdout_rows],
                                                   features.flipped[block][holdout_rows])
        started = time.perf_counter()
        network = self._fine_tune_network(loaded.n_classes, features.base)
        outcome = self._fit_fine_tune(network, maps[fit_rows], y_train[fit_rows], maps[holdout_rows], labels,
                                      n_classes=loaded.n_classes, phase="fine_tune_candidate", keep_best=False)
        if outcome.stopped:
            return None
        probabilities = outcome.val_probabilities
        candidate = auto.Candidate(
            name=auto.fine_tune_name(5), kind="fine_tune", block=5, pooling=auto.POOLING, head="gap",
            regularization=None, cv_accuracy=float((probabilities.argmax(1) == labels).mean()), cv_std=None,
            folds=None, held_out=int(len(holdout_rows)), seconds=time.perf_counter() - started,
            cv_log_loss=auto.log_loss(labels, probabilities),
            baseline_accuracy=float((baseline.argmax(1) == labels).mean()),
            baseline_log_loss=auto.log_loss(labels, baseline))
        announce(candidate)
        return FineTuneCandidate(candidate, holdout_rows, probabilities)

    def _fit_fine_tune(self, network: models.SplitModel, x_train, y_train, x_val, y_val, *, n_classes: int,
                       phase: str, keep_best: bool = True) -> FitOutcome:
        """Fit block 5 and the head on cached block-4 output at the fine-tuning rate; x_val may be empty."""
        config = self.config
        model = network.upper
        models.compile_classifier(model, "adam", FINE_TUNE_LEARNING_RATE, config.momentum, jit_compile=False)
        steps = max(1, math.ceil(len(x_train) / config.batch_size))
        logger = EventLogger(self.writer, phase, config.epochs, steps)
        stop, nan = StopOnRequest(self.writer.path), StopOnNaN()
        best = BestWeights(weights_model=network.full)
        scoring = Validation(x_val, y_val, scoring_batch(x_val, config.batch_size))
        validation = len(x_val) > 0
        callbacks = [scoring, nan, logger, stop] + ([best] if keep_best and validation else [])
        targets = keras.utils.to_categorical(y_train, n_classes)
        with self.clock.phase(phase):
            model.fit(x_train, targets, epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
                      verbose=0, callbacks=callbacks)
        if nan.nan:
            raise RunFailed("loss became NaN while fine-tuning block 5")
        if keep_best and validation:
            best.restore()
        probabilities = scoring.predict(model) if validation else np.zeros((0, n_classes))
        return FitOutcome(probabilities, best.best_epoch if keep_best and validation else len(logger.history),
                          stop.stopped, None)

    def save(self, network: models.SplitModel, loaded: LoadedData, outcome: FitOutcome) -> RunResult:
        """Write metrics.json and model.keras, and the final status (done, or stopped with the best epoch kept)."""
        train_seconds = self.train_seconds()
        with self.clock.phase("save"):
            labels = loaded.y_val if outcome.metric_labels is None else outcome.metric_labels
            metrics = classification_metrics(labels, outcome.val_probabilities, loaded.dataset.classes)
            metrics["best_epoch"] = outcome.best_epoch
            metrics["evaluation"] = outcome.evaluation
            self.writer.write_json("metrics.json", metrics)
            _save_model(network.full, self.writer.path / "model.keras")
        final_state = "stopped" if outcome.stopped else "done"
        self.writer.set_status(final_state, train_seconds=train_seconds, val_accuracy=metrics["accuracy"],
                               evaluation=outcome.evaluation, best_epoch=outcome.best_epoch,
                               feature_cache=outcome.feature_cache)
        self.log(f"{final_state}: {measured.measure(outcome.evaluation).accuracy} {metrics['accuracy']:.3f}, "
                 f"train_seconds {train_seconds}")
        return RunResult(str(self.run_dir), final_state, metrics["accuracy"], train_seconds)


# ---------------------------------------------------------------------- helpers

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


# Scoring calls the model once a batch, and each call costs a few milliseconds whatever its size: small inputs
# (cached features) are scored in batches of up to this many values (4 MB of float32), large ones (images)
# at the training batch size, so the activations of a large batch never fill the memory.
SCORING_BATCH_VALUES = 2**20


def scoring_batch(inputs: np.ndarray, batch_size: int) -> int:
    """The batch size to score ``inputs`` at: the training batch size, or more pictures a call when each is small."""
    per_picture = int(np.prod(inputs.shape[1:])) or 1
    return max(batch_size, SCORING_BATCH_VALUES // per_picture)


def _given_split(split, n_images: int):
    train_idx, val_idx = (np.asarray(part, dtype=np.int64).reshape(-1) for part in split)
    if not len(train_idx) or not len(val_idx):
        raise ValueError("the given split needs at least one training and one validation image")
    if min(train_idx.min(), val_idx.min()) < 0 or max(train_idx.max(), val_idx.max()) >= n_images:
        raise ValueError(f"the given split has indices outside the dataset's {n_images} images")
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("the given split uses the same image for training and validation")
    return train_idx, val_idx


def _save_model(model, path: Path):
    tmp = path.with_name(".tmp-" + path.name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        # A half-written file on a full disk would leave no room to record why the run failed.
        if tmp.exists():
            tmp.unlink()


def _full_proba(estimator, features, n_classes):
    """predict_proba with a column for every class, even one missing from the training split."""
    probabilities = estimator.predict_proba(features)
    full = np.zeros((len(features), max(n_classes, int(max(estimator.classes_)) + 1)))
    full[:, estimator.classes_] = probabilities
    return full


def _log_loss(y, probabilities):
    picked = probabilities[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
