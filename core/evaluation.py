"""Measure a run's model on labeled images: the metrics, the mistakes, and a 2-D map of what the model sees."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from core import ingest
from core.measured import MEASURES
from core.metrics import classification_metrics
from core.predict import Predictor, RunFilesError, load_predictor
from core.runs import read_json

FEATURE_MAP_METHODS = ("pca", "tsne")
CACHED_EVALUATIONS = 8


class EvaluationError(ValueError):
    """The images to evaluate on cannot be used with this run; the message says what to do instead."""


# ---------------------------------------------------------------------- the images

def run_split(run_dir: str | os.PathLike, which: str = "validation") -> ingest.Dataset:
    """The run's own training or validation images, reloaded from the folder or zip it was trained on.

    The images are read at the run's image size and resize policy and picked by the paths recorded in
    dataset.json; labels index the run's class names (labels.json).
    """
    if which not in ("train", "validation"):
        raise ValueError(f"which must be 'train' or 'validation', got {which!r}")
    run = Path(run_dir)
    info = read_json(run / "dataset.json")
    if not info or "split" not in info:
        raise RunFilesError(f"run {run.name} has no dataset.json with its split: it did not get as far as "
                            "loading its images")
    source = info.get("source")
    if not source:
        raise EvaluationError("this run was trained on images that were not kept on the server: evaluate it on "
                              "a labeled folder or zip instead")
    if not Path(source).exists():
        raise EvaluationError(f"the images this run was trained on are no longer at {source}: evaluate it on a "
                              "labeled folder or zip instead")
    config = read_json(run / "config.json") or {}
    dataset = ingest.load_labeled(source, int(config.get("image_size") or info.get("image_size")),
                                  policy=config.get("resize_policy", "center_crop"))
    where = {path: index for index, path in enumerate(dataset.paths)}
    wanted = info["split"].get(which, [])
    if not wanted:
        raise EvaluationError(f"this run kept no {which} pictures (with few pictures a class every one trains the "
                              "model): evaluate it on a labeled folder or zip instead")
    kept = [where[path] for path in wanted if path in where]
    if not kept:
        raise EvaluationError(f"none of the run's {len(wanted)} {which} images are in {source} any more: "
                              "evaluate it on a labeled folder or zip instead")
    classes = read_json(run / "labels.json") or dataset.classes
    return _relabel(dataset.subset(kept), classes)


HELD_OUT_WORDS = {evaluation: MEASURES[evaluation].data for evaluation in ("cross_validation", "held_out")}


def _held_out_predictions(run_dir) -> dict | None:
    """A run without a validation split (recipe auto, few pictures) keeps its held-out predictions instead."""
    info = read_json(Path(run_dir) / "dataset.json") or {}
    if info.get("split", {}).get("validation"):
        return None
    stored = read_json(Path(run_dir) / "held_out_predictions.json")
    if not isinstance(stored, dict) or stored.get("evaluation") not in HELD_OUT_WORDS:
        return None
    return stored


def _held_out_dataset(run_dir, held_out: dict) -> tuple[ingest.Dataset, np.ndarray]:
    """The held-out pictures (reloaded) and their stored probabilities, in the same order."""
    dataset = run_split(run_dir, "train")
    where = {path: index for index, path in enumerate(dataset.paths)}
    pairs = [(where[path], row) for path, row in zip(held_out["paths"], held_out["probabilities"]) if path in where]
    if not pairs:
        raise EvaluationError("none of the pictures this run was scored on are where it was trained any more: "
                              "evaluate it on a labeled folder or zip instead")
    return dataset.subset([index for index, _ in pairs]), np.asarray([row for _, row in pairs], dtype="float64")


def labeled_data(predictor: Predictor, data) -> ingest.Dataset:
    """A labeled folder or zip (path or bytes) read for ``predictor``: its image size and policy, its classes.

    Folders named after classes the model does not know are left out (listed in ``skipped``); if no
    folder matches a class of the model, EvaluationError says so.
    """
    dataset = ingest.load_labeled(data, predictor.image_size, policy=predictor.policy)
    known = [name for name in dataset.classes if name in predictor.classes]
    if not known:
        raise EvaluationError(f"none of the class folders in this data ({_names(dataset.classes)}) is a class of "
                              f"the model ({_names(predictor.classes)}): name the folders after the model's classes")
    return _relabel(dataset, predictor.classes)


def _relabel(dataset: ingest.Dataset, classes: list[str]) -> ingest.Dataset:
    """Re-index labels to ``classes``; images of other classes move to ``skipped``."""
    new_index = np.array([classes.index(name) if name in classes else -1 for name in dataset.classes] + [-1])
    labels = new_index[dataset.labels]
    keep = np.flatnonzero(labels >= 0)
    skipped = list(dataset.skipped) + [
        {"path": dataset.paths[i], "reason": f"class {dataset.classes[dataset.labels[i]]!r} is not a class of "
                                             "the model"}
        for i in np.flatnonzero(labels < 0)]
    return ingest.Dataset(dataset.images[keep], labels[keep], list(classes), [dataset.paths[i] for i in keep],
                          skipped, dataset.image_size)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


# ---------------------------------------------------------------------- evaluation

def evaluate_with_images(run_dir: str | os.PathLike, data=None, *, feature_map: str | None = "pca",
                         seed: int = 0) -> tuple[dict, ingest.Dataset]:
    """``evaluate``, plus the Dataset it ran on: ``dataset.images[i]`` is the picture of result row ``index`` i.

    The app uses the images to show what lies behind a cell of the confusion matrix (``cell_examples``).
    """
    if feature_map is not None and feature_map not in FEATURE_MAP_METHODS:
        raise ValueError(f"feature_map must be one of {', '.join(FEATURE_MAP_METHODS)} or None, got {feature_map!r}")
    predictor = load_predictor(run_dir)
    held_out = _held_out_predictions(run_dir) if data is None else None
    if held_out is not None:
        dataset, stored = _held_out_dataset(run_dir, held_out)
    else:
        dataset = run_split(run_dir, "validation") if data is None else labeled_data(predictor, data)
    if not len(dataset.images):
        raise EvaluationError("there are no labeled images to evaluate on (every file was skipped: see skipped)")
    probabilities, features = _model_outputs(predictor, dataset)
    if held_out is not None:
        probabilities = stored  # predicted by models that did not see the picture, not by the final one
    result = classification_metrics(dataset.labels, probabilities, predictor.classes)
    predicted = probabilities.argmax(axis=1)
    rows = [{"index": index, "path": dataset.paths[index], "true": predictor.classes[dataset.labels[index]],
             "predicted": predictor.classes[predicted[index]], "confidence": float(probabilities[index].max())}
            for index in range(len(dataset.images))]
    # how the accuracy was measured (core.measured): the run's own pictures only, None for other data
    how = (held_out["evaluation"] if held_out is not None else "validation_split") if data is None else None
    result.update({
        "data": MEASURES[how].data if how else str(data) if isinstance(data, (str, os.PathLike)) else "uploaded zip",
        "evaluation": how,
        "skipped": dataset.skipped,
        "predictions": rows,
        # most confident mistakes first: those are the ones worth looking at
        "misclassified": sorted((row for row in rows if row["true"] != row["predicted"]),
                                key=lambda row: -row["confidence"]),
    })
    if feature_map is not None:
        result["feature_map"] = feature_map_2d(features, [row["true"] for row in rows], dataset.paths,
                                               method=feature_map, seed=seed,
                                               predicted=[row["predicted"] for row in rows])
    return result, dataset


def evaluate(run_dir: str | os.PathLike, data=None, *, feature_map: str | None = "pca", seed: int = 0) -> dict:
    """Metrics of a run's model on its validation split, or on a labeled folder or zip (path or bytes) ``data``.

    Without ``data``, a run that has no validation split (recipe auto with few pictures) is measured on
    the predictions it stored, each by a model that did not see the picture, not on its final model's.

    Returns ``classification_metrics`` (accuracy, per_class, confusion_matrix, classes, n) plus
    ``data`` (the pictures, in words), ``evaluation`` (how the accuracy was measured, as in metrics.json:
    "validation_split", "cross_validation" or "held_out"; None with ``data``), ``predictions`` (one row
    per image: index, path, true, predicted, confidence), ``misclassified`` (the wrong rows, most
    confident first), ``skipped`` and ``feature_map`` (2-D coordinates of each image's features by
    ``"pca"`` or ``"tsne"``; None leaves it out).
    """
    return evaluate_with_images(run_dir, data, feature_map=feature_map, seed=seed)[0]


def _model_outputs(predictor: Predictor, dataset: ingest.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and features of the images, remembered per model and pixels: inference dominates the cost."""
    key = ("evaluation", hashlib.sha1(np.ascontiguousarray(dataset.images).tobytes()).hexdigest())
    outputs = predictor.memo.get(key)
    if outputs is None:
        outputs = (predictor.predict_proba(dataset.images), predictor.features(dataset.images))
        predictor.memo[key] = outputs
        evaluation_keys = [old for old in list(predictor.memo) if old[0] == "evaluation"]
        for old in evaluation_keys[:-CACHED_EVALUATIONS]:
            predictor.memo.pop(old, None)
    return outputs


def feature_map_2d(features: np.ndarray, labels: list[str], paths: list[str], *, method: str = "pca",
                   seed: int = 0, predicted: list[str] | None = None) -> dict:
    """Project feature vectors to 2-D for a scatter plot: {"method", "x", "y", "labels", "paths"[, "predicted"]}.

    PCA is instant and deterministic; t-SNE shows clusters better but takes seconds for hundreds of images.
    """
    features = np.asarray(features, dtype="float64")
    count = len(features)
    if count < 3 or np.allclose(features, features[:1]):
        coordinates = np.zeros((count, 2))  # nothing to spread out
    elif method == "pca":
        from sklearn.decomposition import PCA

        coordinates = PCA(n_components=2, random_state=seed).fit_transform(features)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(1, (count - 1) // 3)))
        coordinates = TSNE(n_components=2, perplexity=perplexity, random_state=seed,
                           init="pca").fit_transform(features)
    else:
        raise ValueError(f"method must be one of {', '.join(FEATURE_MAP_METHODS)}, got {method!r}")
    result = {"method": method, "x": coordinates[:, 0].round(5).tolist(), "y": coordinates[:, 1].round(5).tolist(),
              "labels": list(labels), "paths": list(paths)}
    if predicted is not None:
        result["predicted"] = list(predicted)
    return result


def cell_examples(result: dict, dataset: ingest.Dataset, true: str, predicted: str,
                  limit: int = 24) -> list[tuple[dict, np.ndarray]]:
    """The images behind one confusion-matrix cell, as (prediction row, uint8 image) pairs, most confident first."""
    rows = [row for row in result["predictions"] if row["true"] == true and row["predicted"] == predicted]
    rows.sort(key=lambda row: -row["confidence"])
    return [(row, dataset.images[row["index"]]) for row in rows[:limit]]
