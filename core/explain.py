"""Why did the model say that? Grad-CAM heatmaps, heatmap overlays, and the training images that look most alike.

Grad-CAM weighs the last convolutional layer's activation maps by the gradient of the class score with
respect to them. The class score is the logit (the final Dense layer before its softmax), because a
softmax probability near 1 has a vanishing gradient. The gradient comes from ``backend.gradient``, so
this works on the TensorFlow, JAX and PyTorch backends alike.

Classical heads (SVM, random forest) have no gradient: for them the map is class-agnostic, the
gradient of the mean pooled feature, i.e. where the frozen network's features are strongest overall.
``explains_class`` tells which kind of map a predictor gives.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from core import backend
import keras

from core.predict import Predictor, apply_layers, load_predictor
from core.runs import write_bytes_atomic

NEAREST_CACHE_FILE = "nearest_features.npz"
THUMBNAIL_SIZE = 64


# ---------------------------------------------------------------------- Grad-CAM

def explains_class(predictor: Predictor) -> bool:
    """Whether ``grad_cam`` is about one class (Keras heads) or class-agnostic (classical heads)."""
    return not predictor.classical


def grad_cam(predictor: Predictor, image: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM heatmap of one uint8 image (S, S, 3): float32 (S, S) in 0..1, 1 = most important.

    ``class_index`` defaults to the predicted class; it is ignored for classical heads (see module doc).
    """
    image = np.asarray(image)
    batch = predictor.prepare(image)
    if len(batch) != 1:
        raise ValueError(f"grad_cam explains one image at a time; got a batch of {len(batch)}")
    activations = predictor.activations(batch)
    head = predictor.head_layers
    if predictor.classical:
        def score(maps):
            return keras.ops.mean(apply_layers(head, maps), axis=-1)
    else:
        if class_index is None:
            class_index = int(predictor.predict_proba(batch)[0].argmax())
        if not 0 <= class_index < len(predictor.classes):
            raise ValueError(f"class_index must be 0..{len(predictor.classes) - 1}, got {class_index}")

        def score(maps):
            return class_logits(head, maps)[:, class_index]

    gradients = backend.gradient(score, activations)
    channel_weights = gradients.mean(axis=(1, 2), keepdims=True)  # (1, 1, 1, channels)
    cam = np.maximum((channel_weights * activations).sum(axis=-1)[0], 0.0)
    return _upsample(cam, predictor.image_size)


def class_logits(head_layers: list, maps):
    """The head's scores before its final softmax (the softmax's input), from feature-layer activations."""
    last = head_layers[-1]
    is_softmax_dense = (isinstance(last, keras.layers.Dense)
                        and getattr(last.activation, "__name__", "") == "softmax")
    if not is_softmax_dense:
        return apply_layers(head_layers, maps)
    hidden = apply_layers(head_layers[:-1], maps)
    logits = keras.ops.matmul(keras.ops.cast(hidden, last.kernel.dtype), last.kernel)
    return logits + last.bias if last.use_bias else logits


def _upsample(cam: np.ndarray, size: int) -> np.ndarray:
    peak = float(cam.max())
    if not np.isfinite(peak) or peak <= 0:
        return np.zeros((size, size), dtype="float32")  # no evidence for the class anywhere
    scaled = Image.fromarray((cam / peak).astype("float32"), mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(scaled, dtype="float32"), 0.0, 1.0)


def jet_colormap(values: np.ndarray) -> np.ndarray:
    """Map 0..1 to blue-cyan-yellow-red (the 'jet' colormap), uint8 RGB, with NumPy only."""
    values = np.clip(np.asarray(values, dtype="float32"), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0], dtype="float32")  # red, green, blue peak at 3/4, 1/2, 1/4
    return (np.clip(1.5 - np.abs(4.0 * values - centres), 0.0, 1.0) * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a 0..1 heatmap, coloured by ``jet_colormap``, over a uint8 RGB image; returns uint8 RGB."""
    image = np.asarray(image, dtype=np.uint8)
    heatmap = np.asarray(heatmap, dtype="float32")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {image.shape}")
    if heatmap.shape != image.shape[:2]:
        heatmap = np.asarray(Image.fromarray(heatmap, mode="F").resize(
            (image.shape[1], image.shape[0]), Image.Resampling.BILINEAR))
    blended = (1 - alpha) * image.astype("float32") + alpha * jet_colormap(heatmap).astype("float32")
    return np.clip(blended, 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------- nearest training images

def nearest_training_images(run_dir: str | os.PathLike, image: np.ndarray, k: int = 5) -> list[dict]:
    """The ``k`` training images whose features are closest to ``image``'s (cosine distance), closest first.

    Each is {"path", "label", "distance", "image"} where "image" is a uint8 thumbnail (at most 64 px).
    The training split's features are computed once and kept in RUN_DIR/nearest_features.npz.
    """
    predictor = load_predictor(run_dir)
    bank = training_features(run_dir)
    query = _unit_rows(predictor.features(predictor.prepare(image)))[0]
    distances = 1.0 - _unit_rows(bank["features"]) @ query
    order = np.argsort(distances, kind="stable")[:max(0, int(k))]
    return [{"path": str(bank["paths"][i]), "label": predictor.classes[int(bank["labels"][i])],
             "distance": float(max(distances[i], 0.0)), "image": bank["thumbnails"][i]} for i in order]


def training_features(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Features, paths, labels and thumbnails of the run's training split, computed once per model.

    Kept in memory with the predictor and on disk in RUN_DIR/nearest_features.npz (rebuilt when
    model.keras is newer than it). A run directory that cannot be written to just skips the file.
    """
    from core.evaluation import run_split

    predictor = load_predictor(run_dir)
    if "nearest" in predictor.memo:
        return predictor.memo["nearest"]
    run = Path(run_dir)
    path = run / NEAREST_CACHE_FILE
    model_mtime = (run / "model.keras").stat().st_mtime_ns
    bank = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if int(stored["model_mtime_ns"]) == model_mtime:
                    bank = {name: stored[name] for name in ("features", "paths", "labels", "thumbnails")}
        except (OSError, ValueError, KeyError):
            bank = None  # unreadable or from an older layout: compute again
    if bank is None:
        dataset = run_split(run_dir, "train")
        bank = {"features": predictor.features(dataset.images).astype("float32"),
                "paths": np.asarray(dataset.paths, dtype=str), "labels": dataset.labels.astype("int64"),
                "thumbnails": _thumbnails(dataset.images)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, model_mtime_ns=np.int64(model_mtime), **bank)
        try:
            write_bytes_atomic(path, buffer.getvalue())
        except OSError:
            pass  # a read-only run directory: the features stay in memory only
    predictor.memo["nearest"] = bank
    return bank


def _thumbnails(images: np.ndarray) -> np.ndarray:
    if not len(images) or images.shape[1] <= THUMBNAIL_SIZE:
        return np.asarray(images, dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(picture).resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE),
                                                                Image.Resampling.LANCZOS)) for picture in images])


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype="float64")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
