"""Load a trained model once and answer "what is in this picture?" for raw image files.

A Predictor pairs a Keras model with what it needs to read raw files the way training did: the class
names, the image size and the resize policy. Every image goes through ``images.load_image``, so a file
predicts the same here, in the CLI, in the app and after a fresh ``keras.saving.load_model``.
"""
from __future__ import annotations

import csv
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from core import backend  # noqa: F401  (sets TensorFlow's log level before keras loads it)
import keras

from core import images as image_files
from core import models  # noqa: F401  (registers the app's own layers, e.g. SignedSquareRoot, for loading)
from core.auto import mirror_chain
from core.runs import read_json

BATCH_SIZE = 32
CACHED_PREDICTORS = 4  # a VGG16 is 60 MB of weights: keep a few recent runs, not every run ever opened
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RunFilesError(RuntimeError):
    """A run directory lacks what is needed (e.g. it has no trained model yet); the message says what."""


class ModelFileError(ValueError):
    """A model file cannot be read as a Keras model."""


class UntrustedModelError(ValueError):
    """A model file holds Python code (a Lambda layer) and is refused rather than run."""


# ---------------------------------------------------------------------- loading model files

def load_user_model(path: str | os.PathLike) -> keras.Model:
    """Load a .keras file someone else made, in Keras's safe mode.

    A Lambda layer carries Python bytecode that would run on this server, so such a model is refused
    with UntrustedModelError; a file that is not a Keras model raises ModelFileError.
    """
    return _load_keras(Path(path), shown_name=Path(path).name)


def _load_keras(path: Path, shown_name: str) -> keras.Model:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {shown_name}")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise UntrustedModelError(
                f"{shown_name} contains a Lambda layer (Python code that would run on this server), so it is "
                "refused. Rebuild the model from built-in Keras layers and save it again.") from None
        raise ModelFileError(f"{shown_name} is not a usable Keras model: {str(error)[:300]}") from None
    except Exception as error:  # a zip that is no model, a truncated file, an unknown layer ...
        raise ModelFileError(f"{shown_name} is not a usable Keras model ({type(error).__name__}: "
                             f"{str(error)[:300]}). Save it with model.save('name.keras').") from None


# ---------------------------------------------------------------------- the predictor

class Predictor:
    """A trained model plus its class names, image size and resize policy.

    ``model`` maps raw RGB images (float 0..255) to class probabilities, or, for the classical heads
    (SVM, random forest), to pooled features that ``classifier`` (scikit-learn) turns into
    probabilities. ``feature_layer`` is the last convolutional layer: ``features`` are its activations
    averaged over the picture, and Grad-CAM looks at its activation maps.
    """

    def __init__(self, model: keras.Model, classes: list[str], image_size: int | None = None,
                 policy: str = "center_crop", classifier=None, feature_layer: str | None = None,
                 run_dir: str | None = None):
        self.model = model
        self.classes = [str(name) for name in classes]
        self.image_size = int(image_size or model.input_shape[1])
        self.policy = policy
        self.classifier = classifier
        self.run_dir = run_dir
        # A recipe-auto model averages a plain chain's answers for the picture and its mirror image: the
        # feature maps, Grad-CAM and nearest pictures look at that chain (the picture as it is).
        self.chain = mirror_chain(model) or model
        self.feature_layer = feature_layer or last_conv_layer_name(self.chain)
        if self.classifier is None and model.output_shape[-1] != len(self.classes):
            raise RunFilesError(f"the model has {model.output_shape[-1]} outputs but {len(self.classes)} class "
                                "names were given: the labels do not belong to this model")
        self._activation_model = None  # raw image -> feature_layer activations
        self._head_layers: list | None = None  # the layers above feature_layer, in order
        self._split_lock = threading.Lock()
        self.memo: dict = {}  # results computed with this model (evaluation outputs, training features), by key

    @classmethod
    def from_keras(cls, model: keras.Model, classes: list[str] | None = None,
                   policy: str = "center_crop") -> "Predictor":
        """Wrap a user's model (raw RGB 0..255 in, probabilities out); classes default to class_0, class_1, ..."""
        if len(model.inputs) != 1 or len(model.input_shape) != 4 or model.input_shape[-1] != 3:
            raise ModelFileError(f"the model must take one RGB image batch (None, size, size, 3); "
                                 f"its input is {model.input_shape}")
        size = model.input_shape[1]
        if size is None or size != model.input_shape[2]:
            raise ModelFileError(f"the model must take square images of a fixed size; its input is {model.input_shape}")
        outputs = model.output_shape[-1]
        classes = list(classes) if classes else [f"class_{index}" for index in range(outputs)]
        return cls(model, classes, size, policy)

    @property
    def classical(self) -> bool:
        """True when a scikit-learn classifier sits on top of the Keras feature extractor."""
        return self.classifier is not None

    # ------------------------------------------------------------------ inputs
    def prepare(self, images) -> np.ndarray:
        """Check a batch (or one image) of uint8 RGB pictures at this model's size; return float32 (N, S, S, 3)."""
        batch = np.asarray(images)
        if batch.ndim == 3:
            batch = batch[None]
        expected = (self.image_size, self.image_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"images must have shape (N, {self.image_size}, {self.image_size}, 3) for this model; "
                             f"got {batch.shape}. Read files with images.load_image(data, {self.image_size}, "
                             f"{self.policy!r})")
        return batch.astype("float32")

    def load_file(self, data: bytes) -> np.ndarray:
        """Decode and resize one file exactly as training did (raises images.ImageError for a bad file)."""
        return image_files.load_image(data, self.image_size, self.policy)

    # ------------------------------------------------------------------ outputs
    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities (N, C), columns in the order of ``classes``."""
        batch = self.prepare(images)
        outputs = _run_in_batches(self.model, batch)
        if not self.classical:
            return outputs.astype("float64")
        probabilities = np.zeros((len(batch), len(self.classes)))
        if len(batch):
            # predict_proba has a column only for classes present in training: place them by label index
            probabilities[:, np.asarray(self.classifier.classes_, dtype=int)] = self.classifier.predict_proba(outputs)
        return probabilities

    def activations(self, images) -> np.ndarray:
        """Activation maps of ``feature_layer``, (N, h, w, channels)."""
        activation_model, _ = self._split()
        return _run_in_batches(activation_model, self.prepare(images))

    def features(self, images) -> np.ndarray:
        """One vector per image, (N, channels): ``feature_layer``'s activations averaged over the picture.

        The same definition for every head and for the autoencoder's encoder, so nearest images and the
        2-D feature map mean the same thing for every run.
        """
        return self.activations(images).mean(axis=(1, 2))

    @property
    def head_layers(self) -> list:
        """The layers above ``feature_layer`` in order: they map its activations to the model's output."""
        return self._split()[1]

    def predict_files(self, files, top_k: int = 3) -> list[dict]:
        """Predict (name, bytes) pairs; one row per file, in order. A bad file gets {"file", "error"}, never an exception.

        A good file gets {"file", "label", "confidence", "top": [{"label", "probability"}], "probabilities"}.
        """
        rows: list[dict] = []
        pictures, places = [], []
        for name, data in files:
            try:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise image_files.ImageError("cannot read file")
                pictures.append(self.load_file(bytes(data)))
                places.append(len(rows))
                rows.append({"file": str(name)})
            except image_files.ImageError as error:
                rows.append({"file": str(name), "error": error.reason})
            except Exception as error:  # one odd file must not cost the others their answers
                rows.append({"file": str(name), "error": f"could not read the image ({type(error).__name__})"})
        if pictures:
            probabilities = self.predict_proba(np.stack(pictures))
            top_k = max(1, min(int(top_k), len(self.classes)))
            for place, row_probabilities in zip(places, probabilities):
                order = np.argsort(-row_probabilities, kind="stable")
                rows[place].update({
                    "label": self.classes[order[0]],
                    "confidence": float(row_probabilities[order[0]]),
                    "top": [{"label": self.classes[i], "probability": float(row_probabilities[i])}
                            for i in order[:top_k]],
                    "probabilities": {name: float(p) for name, p in zip(self.classes, row_probabilities)},
                })
        return rows

    # ------------------------------------------------------------------ the cut at feature_layer
    def _split(self):
        """Build (raw image -> feature_layer activations, layers above it) once, sharing the model's weights.

        The lower part re-calls the model's layers on a new Input rather than reusing ``layer.output``: a
        layer called in several graphs (as the builders do) has several outputs, and only a fresh call is
        sure to be connected. This assumes a chain of layers, which is what the builders make (recipe auto's
        mirror averaging wraps one: ``self.chain`` is the chain inside); a branching user model is detected
        by comparing the two halves with the whole chain.
        """
        if self._activation_model is not None:
            return self._activation_model, self._head_layers
        with self._split_lock:
            if self._activation_model is None:
                if self.feature_layer is None:
                    raise RunFilesError("this model has no convolutional layer, so it has no feature maps to "
                                        "compare or explain")
                chain = [layer for layer in self.chain.layers if not isinstance(layer, keras.layers.InputLayer)]
                names = [layer.name for layer in chain]
                cut = names.index(self.feature_layer) + 1
                image_input = keras.Input((self.image_size, self.image_size, 3), name="image")
                x = image_input
                for layer in chain[:cut]:
                    x = layer(x)
                activation_model = keras.Model(image_input, x, name="feature_maps")
                head = chain[cut:]
                probe = np.full((1, self.image_size, self.image_size, 3), 128.0, dtype="float32")
                recomposed = keras.ops.convert_to_numpy(apply_layers(head, activation_model.predict_on_batch(probe)))
                whole = np.asarray(self.chain.predict_on_batch(probe))
                if recomposed.shape != whole.shape or not np.allclose(recomposed, whole, rtol=1e-3, atol=1e-4):
                    raise RunFilesError("this model is not a simple chain of layers, so it cannot be cut at its "
                                        f"last convolutional layer ({self.feature_layer}) for features or Grad-CAM")
                self._head_layers = head
                self._activation_model = activation_model
        return self._activation_model, self._head_layers


def apply_layers(layers: list, x):
    """Call layers one after another (inference mode); works on NumPy arrays and backend tensors."""
    for layer in layers:
        x = layer(x, training=False)
    return x


def last_conv_layer_name(model: keras.Model) -> str | None:
    """The last 2-D convolution with a kernel wider than 1x1 (1x1 convs are the built-in preprocessing)."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose) \
                and tuple(layer.kernel_size) != (1, 1):
            return layer.name
    return None


def _run_in_batches(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    if not len(batch):
        return np.zeros((0,) + tuple(model.output_shape[1:]), dtype="float32")
    outputs = [np.asarray(model.predict_on_batch(batch[start:start + BATCH_SIZE]))
               for start in range(0, len(batch), BATCH_SIZE)]
    return np.concatenate(outputs).astype("float32")


# ---------------------------------------------------------------------- runs

_cache: OrderedDict[tuple, Predictor] = OrderedDict()
_cache_lock = threading.Lock()


def load_predictor(run_dir: str | os.PathLike) -> Predictor:
    """The Predictor of a finished run, loaded once and reused until its model.keras changes.

    Raises RunFilesError, in plain words, when the run has no trained model yet.
    """
    run = Path(run_dir).absolute()
    model_path = run / "model.keras"
    if not model_path.is_file():
        state = (read_json(run / "status.json") or {}).get("state")
        detail = f" (its state is {state})" if state else ""
        raise RunFilesError(f"run {run.name} has no trained model yet{detail}: wait until it is done, or "
                            "choose a finished run")
    key = (str(run), model_path.stat().st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        predictor = _load_run(run)
        for old in [old for old in _cache if old[0] == key[0]]:
            del _cache[old]  # a retrained run: drop the stale model
        _cache[key] = predictor
        while len(_cache) > CACHED_PREDICTORS:
            _cache.popitem(last=False)
        return predictor


def _load_run(run: Path) -> Predictor:
    config = read_json(run / "config.json") or {}
    classes = read_json(run / "labels.json")
    if not isinstance(classes, list) or not classes:
        raise RunFilesError(f"run {run.name} has no labels.json (the class names): the run did not finish")
    classifier = None
    if config.get("head") in ("svm", "random_forest"):
        from core.classifier_files import CLASSIFIER_FILE, UntrustedClassifierError, load_classifier

        classifier_path = run / CLASSIFIER_FILE
        if not classifier_path.is_file():
            raise RunFilesError(f"run {run.name} has a {config['head']} head but no {CLASSIFIER_FILE} (runs made "
                                "before classifiers were stored safely kept a pickle, which is never loaded): "
                                "train it again")

        try:
            classifier = load_classifier(classifier_path)
        except UntrustedClassifierError as error:
            raise RunFilesError(f"run {run.name}: {error}") from None
    model = _load_keras(run / "model.keras", shown_name=f"model.keras of run {run.name}")
    return Predictor(model, classes, config.get("image_size") or model.input_shape[1],
                     config.get("resize_policy", "center_crop"), classifier=classifier, run_dir=str(run))


def predict_files(run_dir: str | os.PathLike, files, top_k: int = 3) -> list[dict]:
    """Predict raw files, a list of (name, bytes), with a run's model; see ``Predictor.predict_files``."""
    return load_predictor(run_dir).predict_files(files, top_k=top_k)


def predictions_csv(rows: list[dict]) -> str:
    """Rows from ``predict_files`` as CSV: file, label, confidence, error, then one probability column per class.

    Text cells that a spreadsheet would run as a formula (=, +, -, @) get a leading apostrophe.
    """
    classes: list[str] = []
    for row in rows:
        for name in row.get("probabilities", {}):
            if name not in classes:
                classes.append(name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "label", "confidence", "error"] + [_csv_text(f"p({name})") for name in classes])
    for row in rows:
        confidence = row.get("confidence")
        probabilities = row.get("probabilities", {})
        writer.writerow([_csv_text(row.get("file", "")), _csv_text(row.get("label", "")),
                         "" if confidence is None else f"{confidence:.6f}", _csv_text(row.get("error", ""))]
                        + [f"{probabilities[name]:.6f}" if name in probabilities else "" for name in classes])
    return buffer.getvalue()


def _csv_text(value) -> str:
    text = str(value)
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text
