"""Explanations: Grad-CAM is the textbook map (CAM for conv -> GAP -> Dense), works for every kind of run and on
the JAX backend; overlays are coloured pictures; nearest training images find the picture itself first."""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from core import evaluation, explain, predict
from run_fixtures import KINDS, own_copy, read, run_fixture

ROOT = Path(__file__).resolve().parents[1]


run_dir = run_fixture("run_dir", *KINDS)
gap_run = run_fixture("gap_run", "gap")


def test_grad_cam_is_a_0_to_1_map_for_every_kind_of_run(run_dir):
    """Each map is finite, in 0..1 and normalised: scaled so its peak is 1 on the activation grid, then
    upsampled bilinearly (which can land beside the peak: at most half a grid cell off each way), or exactly
    zero where nothing in the picture raised the class (random weights: some classes win on their bias).
    Keras heads explain the class asked for (the predicted one by default); a classical head's map is
    class-agnostic, as the report says, and never empty: where the frozen features are strongest."""
    predictor = predict.load_predictor(run_dir)
    images = evaluation.run_split(run_dir, "train").images[:2]
    grid = predictor.activations(predictor.prepare(images[0])).shape[1]
    lowest_peak = (1 - grid / 32 / 2) ** 2  # bilinear, half a grid cell off the peak in x and in y

    def checked(heatmap):
        assert heatmap.shape == (32, 32) and heatmap.dtype == np.float32 and np.isfinite(heatmap).all()
        assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
        assert heatmap.max() == 0.0 or heatmap.max() >= lowest_peak, heatmap.max()
        return heatmap

    explains = explain.explains_class(predictor)
    assert explains == (not predictor.classical) == (read(run_dir, "config.json")["head"] not in
                                                    ("svm", "random_forest"))
    if not explains:
        for image in images:
            heatmap = checked(explain.grad_cam(predictor, image))
            assert heatmap.max() >= lowest_peak
            for class_index in range(len(predictor.classes)):  # the class is ignored: one map for all
                np.testing.assert_array_equal(explain.grad_cam(predictor, image, class_index), heatmap)
    else:
        maps = np.array([[checked(explain.grad_cam(predictor, image, c)) for c in range(len(predictor.classes))]
                         for image in images])
        for image, per_class in zip(images, maps):  # the default: the predicted class
            predicted = int(predictor.predict_proba(image[None])[0].argmax())
            np.testing.assert_array_equal(explain.grad_cam(predictor, image), per_class[predicted])
        peaks = maps.max(axis=(2, 3))
        assert (peaks > 0).any(), "every map is empty: Grad-CAM shows nothing"
        assert not np.allclose(maps, maps[:, :1]), "the map does not depend on the class asked for"
    with pytest.raises(ValueError, match=r"shape \(N, 32, 32, 3\)"):
        explain.grad_cam(predictor, np.zeros((16, 16, 3), dtype=np.uint8))


def test_grad_cam_equals_cam_for_conv_pool_dense():
    """For conv -> global average pooling -> Dense, Grad-CAM on the logit is exactly CAM: relu(A . w_class)."""
    keras.utils.set_random_seed(3)
    image_input = keras.Input((16, 16, 3))
    maps = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(image_input)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    output = keras.layers.Dense(3, activation="softmax", name="predictions")(pooled)
    predictor = predict.Predictor.from_keras(keras.Model(image_input, output), ["a", "b", "c"])
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    activations = predictor.activations(image)[0]
    weights = predictor.model.get_layer("predictions").kernel.numpy()
    for class_index in range(3):
        cam = np.maximum(activations @ weights[:, class_index], 0)  # 16x16: no upsampling needed
        expected = cam / cam.max() if cam.max() > 0 else cam
        np.testing.assert_allclose(explain.grad_cam(predictor, image, class_index), expected, atol=1e-5)
    with pytest.raises(ValueError, match="class_index must be 0..2"):
        explain.grad_cam(predictor, image, 3)


JAX_SCRIPT = """
import json, sys
import numpy as np
from core import backend, evaluation, explain, predict
assert backend.name() == "jax"
run = sys.argv[1]
image = evaluation.run_split(run).images[int(sys.argv[2])]
print(json.dumps(explain.grad_cam(predict.load_predictor(run), image, int(sys.argv[3])).tolist()))
"""


def test_grad_cam_gives_the_same_map_on_jax(gap_run):
    pytest.importorskip("jax")
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    images = evaluation.run_split(gap_run).images
    predictor = predict.load_predictor(gap_run)
    # a picture and class whose map is a real one (an all-zero map would match anything): with random
    # features a class can win on its bias alone, leaving no positive evidence to show
    index, label, expected = next((i, c, cam) for i in range(len(images)) for c in range(len(predictor.classes))
                                  for cam in [explain.grad_cam(predictor, images[i], c)] if cam.max() > 0.5)
    completed = subprocess.run([sys.executable, "-c", JAX_SCRIPT, gap_run, str(index), str(label)],
                               capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    on_jax = np.array(json.loads(completed.stdout.strip().splitlines()[-1]))
    assert on_jax.max() == pytest.approx(1.0)
    np.testing.assert_allclose(on_jax, expected, atol=1e-4)


def test_overlay_colours_the_picture():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[:2] = 1.0
    blended = explain.overlay(image, heatmap, alpha=0.5)
    assert blended.shape == (8, 8, 3) and blended.dtype == np.uint8
    assert blended[0, 0, 0] > blended[0, 0, 2]  # hot: red
    assert blended[7, 7, 2] > blended[7, 7, 0]  # cold: blue
    assert explain.jet_colormap(np.array([0.0, 0.5, 1.0])).tolist() == [[0, 0, 128], [128, 255, 128], [128, 0, 0]]


def test_nearest_training_images_start_with_the_image_itself(run_dir, tmp_path, monkeypatch):
    run_dir = str(own_copy(run_dir, tmp_path / "run"))  # it writes its cache file into the run
    training = evaluation.run_split(run_dir, "train")
    results = explain.nearest_training_images(run_dir, training.images[5], k=3)
    assert len(results) == 3
    assert results[0]["path"] == training.paths[5] and results[0]["distance"] == pytest.approx(0, abs=1e-4)
    assert results[0]["label"] == training.classes[training.labels[5]]
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    assert results[0]["image"].shape == (32, 32, 3) and np.array_equal(results[0]["image"], training.images[5])
    assert (Path(run_dir) / explain.NEAREST_CACHE_FILE).is_file()

    # A freshly loaded model reads the features from the file instead of the training images.
    predict.load_predictor(run_dir).memo.pop("nearest")
    monkeypatch.setattr(evaluation, "run_split", lambda *args: pytest.fail("recomputed the training features"))
    again = explain.nearest_training_images(run_dir, training.images[5], k=3)
    assert [r["path"] for r in again] == [r["path"] for r in results]
