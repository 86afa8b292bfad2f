"""Recipe ``auto``: choose, from one forward pass, the model that cross-validation says generalises best.

With a few labeled pictures a class, a linear model on the right frozen VGG16 block beats fine-tuning
(and costs seconds); with many, fine-tuning the last block can win. This module scores the linear
candidates and builds the winner as an ordinary Keras model; ``core.training`` runs the recipe (the
forward pass, the optional fine-tune candidate, the final fit) and writes what it chose.

The linear candidates, each scored by stratified k-fold cross-validation on the training pictures only:

* features: the output of VGG16 block 3, 4 or 5, averaged over the picture (global average pooling),
  then square-rooted (power normalisation: the usual fix for pooled ReLU activations, whose few large
  values would otherwise dominate a linear model) and standardised;
* flipped copies: every training picture's mirror image adds a second feature row with the same label
  (augmentation in feature space: exact, since it costs a forward pass and changes nothing below);
* head: multinomial logistic regression at a few regularization strengths C;
* predictions: the mean of the picture's and its mirror image's class probabilities (test-time mirror
  averaging, as VGG's authors evaluated VGG16): a head trained on both orientations as equally good
  examples answers for both. Candidates are scored the same way, so cross-validation measures the model
  that is shipped.

Choosing by cross-validated accuracy, then by cross-validated log-loss where accuracies tie (with ten
pictures a class, folds of two per class tie often), uses only the training split. The final model is
VGG16 up to the chosen block, the pooling, the square root and one Dense softmax layer whose weights are
the logistic regression's with the standardisation folded in, called on the picture and on its mirror image
(a registered MirrorImage layer) and averaged: it loads with safe_mode, exports to SavedModel and TFLite
like any run's model, and Grad-CAM and the nearest pictures look at the chain inside (``mirror_chain``).

Measured on real photographs (two sets of crops from scikit-image's photographs, 10 training pictures a
class, test crops from the other half of each photograph; offline pretrained VGG16 at 64 px): the power
normalisation gave 0.88 against 0.86-0.88 without it on one set and 0.79-0.81 against 0.74-0.77 on the
other; flipped copies added 0-3 points; max pooling beside the average pooling added nothing and cost
three times the fitting time, so only the average is a candidate. Mirror averaging at test time, over six
cross-validation seeds: 0.880 against 0.876 on the first set, 0.807 against 0.808 on the second, and 0.892
against 0.858 on the demo shapes (30 a class, ``bench.auto_check``'s split).
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from core import models
# When a validation split is kept and when fine-tuning is a candidate live in core.config, which the
# experiments' time estimate reads without loading Keras; training reads them here.
from core.config import FEW_PER_CLASS, FINE_TUNE_MIN_PER_CLASS  # noqa: F401

import keras
from keras import layers

FEATURE_BLOCKS = (3, 4, 5)
POOLING = "avg"
STRENGTHS = (0.01, 0.1, 1.0)       # inverse regularization C of the logistic regression
MAX_FOLDS = 5
FINE_TUNE_HOLDOUT = 0.2


def power_normalise(features: np.ndarray) -> np.ndarray:
    """The same transform in NumPy, for the features the candidates are scored on."""
    features = np.asarray(features, dtype="float32")
    return np.sign(features) * np.sqrt(np.abs(features))


# ---------------------------------------------------------------------- the candidates

@dataclass
class Candidate:
    """One model the recipe considered, as candidates.json and the leaderboard show it."""

    name: str
    kind: str                         # "linear" or "fine_tune"
    block: int                        # the VGG16 block whose output is used (fine_tune: the block that trains)
    pooling: str
    head: str                         # "logistic" or "gap"
    regularization: float | None      # C of the logistic regression
    cv_accuracy: float                # mean over folds, or on the held-out part (fine_tune)
    cv_std: float | None
    folds: int | None
    held_out: int | None
    seconds: float
    cv_log_loss: float | None = None
    # fine_tune only: the best linear candidate, fitted on the same pictures, on the same held-out ones
    baseline_accuracy: float | None = None
    baseline_log_loss: float | None = None
    # out-of-fold class probabilities (one row per training picture); kept in memory, not written
    oof_probabilities: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        row = asdict(self)
        row.pop("oof_probabilities")
        for key in ("cv_accuracy", "cv_std", "cv_log_loss", "seconds", "baseline_accuracy", "baseline_log_loss"):
            if row[key] is not None:
                row[key] = round(float(row[key]), 4)
        return row

    @property
    def sort_key(self) -> tuple:
        return (self.cv_accuracy, -(self.cv_log_loss if self.cv_log_loss is not None else math.inf))


def linear_name(block: int, strength: float) -> str:
    return f"block {block} features, average pooling, linear head (C={strength:g})"


def fine_tune_name(block: int = 5) -> str:
    return f"fine-tune block {block} on frozen blocks 1-{block - 1}, GAP head"


def n_folds(labels: np.ndarray) -> int:
    """As many folds as MAX_FOLDS allows while every class appears in every fold (at least 2)."""
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    return max(2, min(MAX_FOLDS, smallest))


def score_linear(features: dict[int, np.ndarray], flipped: dict[int, np.ndarray] | None, labels: np.ndarray,
                 *, n_classes: int, seed: int = 0, strengths=STRENGTHS,
                 on_candidate: Callable[[Candidate], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> list[Candidate]:
    """Cross-validate a logistic regression for every (block, C); return the candidates in the order scored.

    Args:
        features: block -> (N, channels) power-normalised pooled features of the training pictures.
        flipped: the same for the mirrored pictures (rows in the same order), or None.
        labels: (N,) class indices.
        on_candidate: called with each candidate as soon as it is scored (events, the live leaderboard).
        should_stop: polled between candidates; when it returns True, scoring ends early.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=int)
    folds = n_folds(labels)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels))
    candidates = []
    with _quiet_single_thread():
        for block in sorted(features):
            for strength in strengths:
                if should_stop and should_stop():
                    return candidates
                started = time.perf_counter()
                oof = np.zeros((len(labels), n_classes))
                accuracies = []
                for train_rows, test_rows in splits:
                    fit = fit_linear(features[block][train_rows],
                                     None if flipped is None else flipped[block][train_rows],
                                     labels[train_rows], strength, n_classes=n_classes)
                    oof[test_rows] = fit.predict_proba(features[block][test_rows],
                                                       None if flipped is None else flipped[block][test_rows])
                    accuracies.append(float((oof[test_rows].argmax(1) == labels[test_rows]).mean()))
                candidate = Candidate(
                    name=linear_name(block, strength), kind="linear", block=block, pooling=POOLING,
                    head="logistic", regularization=float(strength), cv_accuracy=float(np.mean(accuracies)),
                    cv_std=float(np.std(accuracies)), folds=folds, held_out=None,
                    seconds=time.perf_counter() - started, cv_log_loss=log_loss(labels, oof),
                    oof_probabilities=oof)
                candidates.append(candidate)
                if on_candidate:
                    on_candidate(candidate)
    return candidates


def best(candidates: list[Candidate]) -> int:
    """Index of the candidate to train.

    Linear candidates compete on cross-validated accuracy, then log-loss (the first wins a full tie). A
    fine-tune candidate is scored on one held-out part of the training pictures, a noisier measure than
    cross-validation over all of them, so it is compared paired: it wins only when it beats the best linear
    candidate fitted on the same pictures and scored on the same held-out ones (``baseline_*``).
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    linear = [index for index, candidate in enumerate(candidates) if candidate.kind == "linear"]
    pool = linear or list(range(len(candidates)))
    top = max(candidates[index].sort_key for index in pool)
    chosen = next(index for index in pool if candidates[index].sort_key == top)
    for index, candidate in enumerate(candidates):
        if candidate.kind == "fine_tune" and candidate.baseline_accuracy is not None and \
                candidate.sort_key > (candidate.baseline_accuracy, -candidate.baseline_log_loss):
            return index
    return chosen


def reason(candidates: list[Candidate], chosen: int) -> str:
    """One plain sentence: which candidate won, at what score, and against what."""
    winner = candidates[chosen]
    tuned = next((c for c in candidates if c.kind == "fine_tune" and c.baseline_accuracy is not None), None)
    if winner.kind == "fine_tune":
        sentence = f"fine-tuning block {winner.block}: {winner.cv_accuracy:.0%} on {winner.held_out} held-out training pictures"
        if winner.baseline_accuracy is not None:
            sentence += f", where the best linear head scored {winner.baseline_accuracy:.0%} on the same pictures"
        return sentence
    sentence = f"features from block {winner.block} + a linear head: {winner.cv_accuracy:.0%} in cross-validation"
    others = [c for i, c in enumerate(candidates) if i != chosen and c.kind == "linear" and c.block != winner.block]
    if others:
        runner_up = max(others, key=lambda c: c.sort_key)
        sentence += f", ahead of block {runner_up.block} features at {runner_up.cv_accuracy:.0%}"
        if winner.cv_accuracy == runner_up.cv_accuracy:
            sentence += " (same accuracy, more confident predictions)"
    if tuned is not None:
        sentence += (f"; fine-tuning block {tuned.block} scored {tuned.cv_accuracy:.0%} on {tuned.held_out} "
                     f"held-out training pictures, against {tuned.baseline_accuracy:.0%} for the linear head")
    return sentence


# ---------------------------------------------------------------------- the linear head

@dataclass
class LinearFit:
    """A standardised multinomial logistic regression, kept as the numbers a Dense layer needs."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray          # (n_classes, features), on standardised features
    intercept: np.ndarray     # (n_classes,)
    train_accuracy: float = 0.0
    train_log_loss: float = 0.0

    def logits(self, features: np.ndarray) -> np.ndarray:
        standardised = (np.asarray(features, dtype="float64") - self.mean) / self.scale
        return standardised @ self.coef.T + self.intercept

    def predict_proba(self, features: np.ndarray, flipped: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities; with ``flipped`` (the mirror images' features, same rows), the mean of the
        picture's and its mirror image's, as the saved model computes them (``mirror_averaged``)."""
        logits = self.logits(features)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probabilities = exp / exp.sum(axis=1, keepdims=True)
        if flipped is None:
            return probabilities
        return (probabilities + self.predict_proba(flipped)) / 2

    def dense_weights(self) -> list[np.ndarray]:
        """[kernel (features, classes), bias (classes,)] computing the same logits from raw features."""
        kernel = (self.coef / self.scale).T
        bias = self.intercept - (self.coef * (self.mean / self.scale)).sum(axis=1)
        return [kernel.astype("float32"), bias.astype("float32")]


def fit_linear(features: np.ndarray, flipped: np.ndarray | None, labels: np.ndarray, strength: float, *,
               n_classes: int) -> LinearFit:
    """Fit the logistic regression on ``features`` (+ their flipped copies, same labels)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype="float64")
    y = np.asarray(labels, dtype=int)
    if flipped is not None:
        x = np.concatenate([x, np.asarray(flipped, dtype="float64")])
        y = np.concatenate([y, y])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a feature constant over the training pictures carries nothing
    with _quiet_single_thread():
        model = LogisticRegression(C=strength, max_iter=300, tol=1e-3).fit((x - mean) / scale, y)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.zeros(n_classes)
    if len(model.classes_) == 2 and model.coef_.shape[0] == 1:
        # binary: one weight vector for the second class; split it symmetrically over a 2-way softmax
        rows = [int(c) for c in model.classes_]
        coef[rows[0]], coef[rows[1]] = -model.coef_[0] / 2, model.coef_[0] / 2
        intercept[rows[0]], intercept[rows[1]] = -model.intercept_[0] / 2, model.intercept_[0] / 2
    else:
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
        # a class missing from this fit must never win
        missing = np.setdiff1d(np.arange(n_classes), model.classes_)
        intercept[missing] = -1e4
    fit = LinearFit(mean, scale, coef, intercept)
    probabilities = fit.predict_proba(x)
    fit.train_accuracy = float((probabilities.argmax(1) == y).mean())
    fit.train_log_loss = log_loss(y, probabilities)
    return fit


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    picked = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))


@contextlib.contextmanager
def _quiet_single_thread():
    """One BLAS thread and no convergence chatter: these small fits run many times faster without
    threads competing for 2 cores (measured: 45 fits in about 1 s instead of over a minute)."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ---------------------------------------------------------------------- the forward pass

def feature_extractor(base: keras.Model, image_size: int, blocks=FEATURE_BLOCKS, keep_maps: int | None = None):
    """A model from raw images to the pooled output of each block in ``blocks`` (and, with ``keep_maps``,
    that block's whole activation map too, for the fine-tune candidate's cache). Shares ``base``'s layers."""
    image_input = keras.Input((image_size, image_size, 3), name="image")
    x = models.caffe_preprocess_layer()(image_input)
    outputs = []
    for layer in base.layers[1:]:
        x = layer(x)
        block = models.vgg16_layer_block(layer.name)
        if layer.name.endswith("_pool") and block in blocks:
            outputs.append(layers.GlobalAveragePooling2D(name=f"block{block}_gap")(x))
            if keep_maps == block:
                outputs.append(x)
        if block == max(blocks) and layer.name.endswith("_pool"):
            break
    return keras.Model(image_input, outputs, name="auto_features")


def extract(extractor: keras.Model, images: np.ndarray, *, blocks=FEATURE_BLOCKS, keep_maps: int | None = None,
            batch_size: int = 32, flip: bool = False, maps_dtype: str = "float16", progress=None,
            message: str = "features"):
    """Run the extractor over ``images`` (mirrored when ``flip``); return (block -> pooled features, maps).

    ``maps`` is the activation map the extractor keeps (see ``feature_extractor``) when ``keep_maps`` is
    given, else None.
    """
    pooled: dict[int, list] = {block: [] for block in blocks}
    maps: list = []
    total = len(images)
    started = time.perf_counter()
    for start in range(0, total, batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype="float32")
        if flip:
            batch = batch[:, :, ::-1]
        outputs = extractor.predict_on_batch(batch)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        pooled_outputs = [o for o in outputs if len(o.shape) == 2]  # in block order
        for block, output in zip(sorted(blocks), pooled_outputs):
            pooled[block].append(np.asarray(output, dtype="float32"))
        if keep_maps is not None:
            maps.append(np.asarray(next(o for o in outputs if len(o.shape) == 4)).astype(maps_dtype))
        if progress:
            done = min(start + batch_size, total)
            left = (time.perf_counter() - started) / done * (total - done)
            progress(done / total, f"{message}: {done}/{total} images, about {left:.0f} s left")
    features = {block: power_normalise(np.concatenate(parts)) if parts else np.zeros((0, 0), "float32")
                for block, parts in pooled.items()}
    return features, (np.concatenate(maps) if maps else None)


def build_linear_classifier(base: keras.Model, block: int, fit: LinearFit, *, image_size: int,
                            n_classes: int) -> keras.Model:
    """Raw image -> caffe preprocessing -> VGG16 blocks 1..block -> GAP -> sqrt -> Dense softmax (the fit)."""
    image_input = keras.Input((image_size, image_size, 3), name="image")
    x = models.caffe_preprocess_layer()(image_input)
    for layer in base.layers[1:]:
        layer_block = models.vgg16_layer_block(layer.name)
        if layer_block is None or layer_block > block:
            break
        layer.trainable = False
        x = layer(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = models.SignedSquareRoot(name="head_power_norm")(x)
    dense = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")
    output = dense(x)
    dense.set_weights(fit.dense_weights())
    return mirror_averaged(keras.Model(image_input, output, name=f"vgg16_block{block}_linear"))


MIRROR_AVERAGED = "mirror_averaged"


def mirror_averaged(chain: keras.Model) -> keras.Model:
    """Raw image -> the mean of ``chain``'s probabilities for the picture and for its mirror image.

    ``chain`` sits inside as one nested layer (named after it): ``mirror_chain`` finds it again after
    loading, for the feature maps and Grad-CAM, which need a plain chain of layers.
    """
    size = chain.input_shape[1]
    image_input = keras.Input((size, size, 3), name="image")
    mirrored = models.MirrorImage(name="mirror_image")(image_input)
    output = layers.Average(name="mean_with_mirror")([chain(image_input), chain(mirrored)])
    return keras.Model(image_input, output, name=f"{chain.name}_{MIRROR_AVERAGED}")


def mirror_chain(model: keras.Model) -> keras.Model | None:
    """The chain inside a ``mirror_averaged`` model, or None for any other model."""
    if not model.name.endswith(MIRROR_AVERAGED):
        return None
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    has_mirror = any(isinstance(layer, models.MirrorImage) for layer in model.layers)
    return nested[0] if len(nested) == 1 and has_mirror else None
