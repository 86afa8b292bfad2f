"""Evaluation: metrics on the run's validation split match training's, mistakes and the feature map line up
with them, other labeled data works, and missing data is explained in plain words."""
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import evaluation, training
from core.config import TrainConfig
from run_fixtures import KINDS, run_fixture, read


run_dir = run_fixture("run_dir", *KINDS)
gap_run = run_fixture("gap_run", "gap")


def test_validation_split_metrics_match_the_run(run_dir):
    result, dataset = evaluation.evaluate_with_images(run_dir)
    stored = read(run_dir, "metrics.json")
    validation = read(run_dir, "dataset.json")["split"]["validation"]
    if not validation:  # recipe auto with few pictures: every picture trained it; its held-out predictions show
        validation = read(run_dir, "held_out_predictions.json")["paths"]
        assert result["data"].startswith("cross-validated predictions")
    assert result["n"] == len(validation) == len(dataset.images) and dataset.paths == validation
    assert result["confusion_matrix"] == stored["confusion_matrix"]
    assert result["accuracy"] == pytest.approx(stored["accuracy"])
    matrix = np.array(result["confusion_matrix"])
    assert len(result["misclassified"]) == matrix.sum() - np.trace(matrix)
    confidences = [row["confidence"] for row in result["misclassified"]]
    assert confidences == sorted(confidences, reverse=True)
    for row in result["misclassified"]:
        assert row["true"] != row["predicted"] and dataset.paths[row["index"]] == row["path"]
        assert dataset.classes[dataset.labels[row["index"]]] == row["true"]
    feature_map = result["feature_map"]
    assert feature_map["method"] == "pca" and feature_map["paths"] == validation
    assert len(feature_map["x"]) == len(feature_map["y"]) == len(feature_map["labels"]) == result["n"]
    json.dumps(result)  # plain JSON for the CLI and the app


def test_cell_examples_are_the_images_behind_a_cell(gap_run):
    result, dataset = evaluation.evaluate_with_images(gap_run, feature_map=None)
    assert "feature_map" not in result
    classes = result["classes"]
    for true_index, row in enumerate(result["confusion_matrix"]):
        for predicted_index, count in enumerate(row):
            examples = evaluation.cell_examples(result, dataset, classes[true_index], classes[predicted_index])
            assert len(examples) == count
            for prediction, image in examples:
                assert np.array_equal(image, dataset.images[prediction["index"]])


def test_other_data_leaves_out_unknown_classes(gap_run, demo_dir, tmp_path):
    data = tmp_path / "data"
    for name in ("circle", "star"):
        shutil.copytree(Path(demo_dir) / name, data / name)
    (data / "zebra").mkdir()
    shutil.copy(next((Path(demo_dir) / "square").glob("*.png")), data / "zebra" / "z.png")
    (data / "star" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluation.evaluate(gap_run, str(data))
    assert result["n"] == 16 and result["classes"] == read(gap_run, "labels.json")
    assert {row["true"] for row in result["predictions"]} == {"circle", "star"}
    reasons = {item["path"]: item["reason"] for item in result["skipped"]}
    assert "not a class of the model" in reasons["zebra/z.png"]
    assert reasons["star/broken.png"].startswith(("not an image", "truncated or corrupt"))

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((data / "circle").glob("*.png"))[:3]:
            bundle.write(path, f"circle/{path.name}")
    from_zip = evaluation.evaluate(gap_run, archive.getvalue(), feature_map="tsne")
    assert from_zip["n"] == 3 and from_zip["data"] == "uploaded zip" and from_zip["feature_map"]["method"] == "tsne"


def test_data_without_a_known_class_is_refused(gap_run, tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    with pytest.raises(evaluation.EvaluationError, match="none of the class folders.*cats, dogs"):
        evaluation.evaluate(gap_run, str(tmp_path))


def test_missing_training_data_is_explained(gap_run, tmp_path):
    for name in ("config.json", "labels.json", "dataset.json"):
        shutil.copy(Path(gap_run) / name, tmp_path / name)
    info = read(tmp_path, "dataset.json")
    (tmp_path / "dataset.json").write_text(json.dumps({**info, "source": str(tmp_path / "gone")}))
    with pytest.raises(evaluation.EvaluationError, match="no longer at .*gone: evaluate it on a labeled folder"):
        evaluation.run_split(tmp_path)


def test_t_sne_and_pca_maps_place_every_point():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (6, 5)), rng.normal(8, 1, (6, 5))])
    labels = ["a"] * 6 + ["b"] * 6
    for method in ("pca", "tsne"):
        mapped = evaluation.feature_map_2d(features, labels, [f"{i}.png" for i in range(12)], method=method)
        x = np.array(mapped["x"])
        assert len(x) == 12 and abs(x[:6].mean() - x[6:].mean()) > abs(x[:6].std())  # the two groups separate


def test_a_real_training_run_evaluates_to_its_own_metrics(demo_dir, tmp_path):
    """Guards the run-directory contract with the real trainer, not only the hand-built fixtures."""
    config = TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8,
                                    "validation_fraction": 0.25})
    result = training.train(config, demo_dir, tmp_path / "run")
    assert result.state == "done", result.error
    evaluated = evaluation.evaluate(tmp_path / "run")
    stored = read(tmp_path / "run", "metrics.json")
    assert evaluated["confusion_matrix"] == stored["confusion_matrix"]
    assert evaluated["accuracy"] == pytest.approx(stored["accuracy"])
