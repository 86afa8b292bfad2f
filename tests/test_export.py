"""Export: the bundle holds what a user needs to reload the model; SavedModel and TFLite give the same answers as
Keras; what cannot be exported is refused in plain words."""
import io
import json
import zipfile

import keras
import numpy as np
import pytest

from core import backend, evaluation, export, predict
from run_fixtures import run_fixture


keras_head_run = run_fixture("keras_head_run", "gap", "autoencoder", "auto")
svm_run = run_fixture("svm_run", "svm")


needs_tensorflow = pytest.mark.skipif(backend.name() != "tensorflow", reason="SavedModel/TFLite need TensorFlow")


def test_bundle_reloads_to_the_same_predictions(keras_head_run, tmp_path):
    with zipfile.ZipFile(io.BytesIO(export.bundle_zip(keras_head_run))) as bundle:
        assert sorted(bundle.namelist()) == ["README.txt", "config.json", "labels.json", "model.keras"]
        bundle.extractall(tmp_path)
    images = evaluation.run_split(keras_head_run, "train").images
    reloaded = predict.Predictor.from_keras(predict.load_user_model(tmp_path / "model.keras"),
                                            json.loads((tmp_path / "labels.json").read_text()))
    np.testing.assert_allclose(reloaded.predict_proba(images),
                               predict.load_predictor(keras_head_run).predict_proba(images), atol=1e-6)


classical_run = run_fixture("classical_run", "svm", "random_forest")


def test_a_classical_bundle_reloads_safely_to_the_same_predictions(classical_run, tmp_path):
    """No pickle: model.keras under safe_mode and the classifier through skops with trusted types only."""
    from core.classifier_files import load_classifier

    with zipfile.ZipFile(io.BytesIO(export.bundle_zip(classical_run))) as bundle:
        assert not [name for name in bundle.namelist() if name.endswith((".joblib", ".pkl", ".pickle"))]
        bundle.extractall(tmp_path)
    images = evaluation.run_split(classical_run, "train").images
    features = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True).predict(
        images.astype("float32"), verbose=0)
    received = load_classifier(tmp_path / "classifier.skops").predict_proba(features)
    np.testing.assert_allclose(received, predict.load_predictor(classical_run).predict_proba(images), atol=1e-6)


def test_bundle_of_a_classical_head_carries_the_classifier(svm_run):
    with zipfile.ZipFile(io.BytesIO(export.bundle_zip(svm_run))) as bundle:
        assert "classifier.skops" in bundle.namelist() and "classifier.joblib" not in bundle.namelist()
        assert "skops.io.load(path" in bundle.read("README.txt").decode()


@needs_tensorflow
def test_tflite_and_savedmodel_agree_with_keras(keras_head_run, tmp_path):
    images = evaluation.run_split(keras_head_run, "train").images
    expected = predict.load_predictor(keras_head_run).predict_proba(images)

    tflite_path = export.export_tflite(keras_head_run, tmp_path / "model.tflite")
    from_tflite = backend.tflite_predict(tflite_path, images.astype("float32"))
    assert (from_tflite.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(from_tflite, expected, atol=1e-4)

    saved = export.export_savedmodel(keras_head_run, tmp_path / "saved")
    export.export_savedmodel(keras_head_run, saved)  # a second export replaces the first
    served = keras.layers.TFSMLayer(saved, call_endpoint="serve")
    np.testing.assert_allclose(np.asarray(served(images.astype("float32"))), expected, atol=1e-4)


def test_what_cannot_be_exported_is_refused_in_plain_words(svm_run, keras_head_run, tmp_path, monkeypatch):
    if backend.name() == "tensorflow":
        with pytest.raises(export.ExportError, match="scikit-learn classifier.*download the bundle"):
            export.export_tflite(svm_run, tmp_path / "model.tflite")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    if backend.name() == "tensorflow":
        with pytest.raises(export.ExportError, match="already exists and is not a SavedModel"):
            export.export_savedmodel(keras_head_run, tmp_path / "taken")
    monkeypatch.setattr(backend, "name", lambda: "jax")
    with pytest.raises(export.ExportError, match="needs the TensorFlow backend"):
        export.export_savedmodel(keras_head_run, tmp_path / "saved")
    with pytest.raises(predict.RunFilesError, match="only a finished run"):
        export.bundle_zip(tmp_path)
