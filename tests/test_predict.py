"""Prediction: the same file gives the same probabilities through the CLI, the API and a freshly loaded model;
bad files become error rows; user models with Python code inside are refused."""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from core import images, predict
from run_fixtures import KINDS, own_copy, read, run_fixture

ROOT = Path(__file__).resolve().parents[1]


run_dir = run_fixture("run_dir", *KINDS)
gap_run = run_fixture("gap_run", "gap")
autoencoder_run = run_fixture("autoencoder_run", "autoencoder")


def sample_files(demo_dir, count=3):
    paths = sorted(Path(demo_dir).glob("*/*.png"))[::8][:count]
    return [(path.name, path.read_bytes()) for path in paths]


def test_predict_files_answers_every_file_and_reports_bad_ones(run_dir, demo_dir):
    files = sample_files(demo_dir) + [("notes.txt", b"just some text, not a picture"), ("empty.png", b"")]
    rows = predict.predict_files(run_dir, files, top_k=2)
    classes = read(run_dir, "labels.json")
    assert [row["file"] for row in rows] == [name for name, _ in files]
    for row in rows[:3]:
        assert "error" not in row
        assert row["label"] in classes and row["label"] == row["top"][0]["label"]
        assert len(row["top"]) == 2 and row["top"][0]["probability"] >= row["top"][1]["probability"]
        assert list(row["probabilities"]) == classes
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["confidence"] == pytest.approx(max(row["probabilities"].values()))
    assert rows[3] == {"file": "notes.txt", "error": "not an image (looks like text)"}
    assert rows[4] == {"file": "empty.png", "error": "empty file"}


def test_predictor_knows_its_run(run_dir):
    predictor = predict.load_predictor(run_dir)
    config = read(run_dir, "config.json")
    assert predictor.classes == read(run_dir, "labels.json")
    assert (predictor.image_size, predictor.policy) == (32, "center_crop")
    assert predictor.classical == (config["head"] in ("svm", "random_forest"))
    expected = ("encoder_conv3", 128) if config["model"] == "autoencoder" else ("block5_conv3", 512)
    if config.get("recipe") == "auto":  # the block recipe auto chose
        board = read(run_dir, "candidates.json")
        block = board["candidates"][board["chosen"]]["block"]
        expected = (f"block{block}_conv3", {3: 256, 4: 512, 5: 512}[block])
    assert predictor.feature_layer == expected[0]
    picture = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    assert predictor.features(picture).shape == (2, expected[1])
    assert predictor.predict_proba(picture).shape == (2, 4)


def _fresh_model_probabilities(run_dir, data):
    """What a user gets with plain Keras: load model.keras, read the file with load_image, predict."""
    config = read(run_dir, "config.json")
    model = keras.saving.load_model(Path(run_dir) / "model.keras")
    picture = images.load_image(data, config["image_size"], config["resize_policy"])
    return np.asarray(model.predict(picture[None].astype("float32"), verbose=0))[0]


def test_cli_api_and_fresh_model_agree(gap_run, demo_dir):
    name, data = sample_files(demo_dir, 1)[0]
    image_path = next(Path(demo_dir).glob(f"*/{name}"))
    api = predict.predict_files(gap_run, [(name, data)])[0]["probabilities"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([sys.executable, "-m", "core", "predict", gap_run, str(image_path)],
                               capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    cli = json.loads(completed.stdout.strip().splitlines()[-1])["probabilities"]
    fresh = _fresh_model_probabilities(gap_run, data)
    classes = read(gap_run, "labels.json")
    np.testing.assert_allclose([api[c] for c in classes], [cli[c] for c in classes], atol=1e-6)
    np.testing.assert_allclose([api[c] for c in classes], fresh, atol=1e-6)


def test_cli_function_api_and_fresh_model_agree_for_autoencoder(autoencoder_run, demo_dir, capsys):
    from core.__main__ import main

    name, data = sample_files(demo_dir, 1)[0]
    image_path = next(Path(demo_dir).glob(f"*/{name}"))
    assert main(["predict", autoencoder_run, str(image_path)]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["probabilities"]
    api = predict.predict_files(autoencoder_run, [(name, data)])[0]["probabilities"]
    classes = read(autoencoder_run, "labels.json")
    np.testing.assert_allclose([api[c] for c in classes], [cli[c] for c in classes], atol=1e-6)
    np.testing.assert_allclose([api[c] for c in classes], _fresh_model_probabilities(autoencoder_run, data),
                               atol=1e-6)


def test_predictor_loads_once_and_reloads_a_changed_model(gap_run, tmp_path):
    gap_run = str(own_copy(gap_run, tmp_path / "run", copy_models=True))  # its model's time stamp changes
    first = predict.load_predictor(gap_run)
    assert predict.load_predictor(gap_run) is first
    model_path = Path(gap_run) / "model.keras"
    stat = model_path.stat()
    os.utime(model_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert predict.load_predictor(gap_run) is not first


def test_a_run_without_a_model_says_so(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"state": "running"}))
    with pytest.raises(predict.RunFilesError, match="no trained model yet.*running"):
        predict.load_predictor(tmp_path)


def test_predictions_csv_has_a_row_per_file_and_defuses_formulas():
    rows = [{"file": "=HYPERLINK(evil)", "label": "cat", "confidence": 0.75, "top": [],
             "probabilities": {"cat": 0.75, "dog": 0.25}},
            {"file": "broken.jpg", "error": "truncated or corrupt image"}]
    lines = predict.predictions_csv(rows).splitlines()
    assert lines[0] == "file,label,confidence,error,p(cat),p(dog)"
    assert lines[1] == "'=HYPERLINK(evil),cat,0.750000,,0.750000,0.250000"
    assert lines[2] == "broken.jpg,,,truncated or corrupt image,,"


def test_user_model_with_a_lambda_layer_is_refused(tmp_path):
    image_input = keras.Input((32, 32, 3))
    doubled = keras.layers.Lambda(lambda x: x * 2.0)(image_input)
    output = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(doubled))
    path = tmp_path / "sneaky.keras"
    keras.Model(image_input, output).save(path)
    with pytest.raises(predict.UntrustedModelError, match="Lambda layer.*refused"):
        predict.load_user_model(path)


def test_user_model_without_code_loads_and_predicts(tmp_path, demo_dir):
    image_input = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(keras.layers.Rescaling(1 / 255)(image_input))
    output = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "plain.keras"
    keras.Model(image_input, output).save(path)
    predictor = predict.Predictor.from_keras(predict.load_user_model(path), ["yes", "no"])
    rows = predictor.predict_files(sample_files(demo_dir, 2))
    assert all(row["label"] in ("yes", "no") for row in rows)
    assert predictor.feature_layer == "conv" and predictor.features(np.zeros((1, 32, 32, 3))).shape == (1, 4)
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(predict.ModelFileError, match="not a usable Keras model"):
        predict.load_user_model(tmp_path / "junk.keras")
