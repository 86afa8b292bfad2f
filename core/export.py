"""Hand a trained model on: a zip bundle to load with Keras, a TensorFlow SavedModel, or a TFLite file."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from core import backend
from core.predict import RunFilesError, load_predictor
from core.runs import read_json

BUNDLE_FILES = ("model.keras", "labels.json", "config.json", "classifier.skops")

BUNDLE_README = """Transfer Studio model bundle

model.keras        the Keras model: raw RGB images, float 0..255, shape (N, {size}, {size}, 3)
labels.json        class names, in the order of the model's outputs
config.json        the training settings (image_size, resize_policy, ...)
{classifier_line}
Load it with:

    import json, keras, numpy as np
    from PIL import Image, ImageOps
    model = keras.saving.load_model("model.keras")
    classes = json.load(open("labels.json"))
    picture = ImageOps.fit(Image.open("photo.jpg").convert("RGB"), ({size}, {size}))
    {predict_line}
"""


class ExportError(RuntimeError):
    """The model cannot be exported in the format asked for; the message says what works instead."""


def bundle_zip(run_dir: str | os.PathLike) -> bytes:
    """A zip of model.keras, labels.json, config.json (and classifier.skops for classical heads) with a README."""
    run = Path(run_dir)
    missing = [name for name in BUNDLE_FILES[:3] if not (run / name).is_file()]
    if missing:
        raise RunFilesError(f"run {run.name} has no {', '.join(missing)}: only a finished run can be downloaded")
    config = read_json(run / "config.json") or {}
    size = config.get("image_size", "S")
    classical = (run / "classifier.skops").is_file()
    readme = BUNDLE_README.format(
        size=size,
        classifier_line=("classifier.skops   the scikit-learn classifier, in skops's format (no pickle), that turns the model's "
                         "features into class probabilities\n" if classical else ""),
        predict_line=("features = model.predict(np.asarray(picture, 'float32')[None]); "
                      "import skops.io; path = 'classifier.skops'; "
                      "probabilities = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))"
                      ".predict_proba(features)  # look at the types first if the file came from elsewhere"
                      if classical else
                      "probabilities = model.predict(np.asarray(picture, 'float32')[None])[0]"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("README.txt", readme)
        for name in BUNDLE_FILES:
            if name == "config.json":
                bundle.writestr(name, json.dumps(shareable_config(config), indent=2, sort_keys=True))
            elif (run / name).is_file():
                bundle.write(run / name, arcname=name)
    return buffer.getvalue()


def shareable_config(config: dict) -> dict:
    """The settings without server paths: a weights file or an unlabeled folder is named by its file name
    only (a server path can hold a session's token, and tells the receiver nothing they can use)."""
    shared = dict(config)
    for key in ("weights", "unlabeled"):
        value = shared.get(key)
        if isinstance(value, str) and value not in ("imagenet", "none") and ("/" in value or "\\" in value):
            shared[key] = Path(value.replace("\\", "/")).name
    return shared


def _exportable_model(run_dir, format_name: str):
    if backend.name() != "tensorflow":
        raise ExportError(f"{format_name} export needs the TensorFlow backend (this server runs "
                          f"{backend.name()}): start it with KERAS_BACKEND=tensorflow, or download the bundle")
    predictor = load_predictor(run_dir)
    if predictor.classical:
        raise ExportError(f"this run's head is a scikit-learn classifier, which {format_name} cannot hold: "
                          "download the bundle (model.keras + classifier.skops) instead")
    return predictor.model


def export_savedmodel(run_dir: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write the run's model as a TensorFlow SavedModel folder ``out`` (replaced if it is an earlier export)."""
    model = _exportable_model(run_dir, "SavedModel")
    out = Path(out)
    if out.exists() and not (out / "saved_model.pb").is_file():
        raise ExportError(f"{out} already exists and is not a SavedModel: choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras lists the signatures on stdout: CLI results live there
            model.export(str(staging / "saved_model"), format="tf_saved_model")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging / "saved_model", out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(out)


def export_tflite(run_dir: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write the run's model as a TFLite file ``out`` (float32; input raw RGB 0..255, output probabilities)."""
    model = _exportable_model(run_dir, "TFLite")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            backend.export_tflite(model, str(staging))
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return str(out)
