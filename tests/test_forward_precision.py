"""The feature cache's forward pass in bfloat16 when TRANSFER_STUDIO_CACHE_PRECISION asks for it
(core.backend.forward_precision): the copy of the frozen part computes what it does within bfloat16's rounding,
the run says which precision it used, and a float32 cache (exactness) stays float32."""
import numpy as np
import pytest

from core import backend, ingest, models, runs, training
from core.config import TrainConfig


def feature_cache_event(run_dir) -> dict:
    return [event for event in runs.read_all_events(run_dir) if event["type"] == "feature_cache"][0]


def test_float32_unless_bfloat16_is_asked_for(monkeypatch):
    """bfloat16 cost the seed preset about 6 points on the demo shapes, so it is a choice, not the default."""
    monkeypatch.delenv(backend.FORWARD_PRECISION_ENV, raising=False)
    monkeypatch.setattr(backend, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert backend.forward_precision() == "float32"
    assert backend.native_bfloat16() == (backend.name() == "tensorflow")
    monkeypatch.setenv(backend.FORWARD_PRECISION_ENV, "bfloat16")
    assert backend.forward_precision() == "bfloat16"
    monkeypatch.setattr(backend, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not backend.native_bfloat16()


def test_the_bfloat16_copy_computes_the_frozen_part_within_its_rounding(demo_dir):
    network = models.build_vgg16_classifier(4, image_size=32, weights="none", freeze_depth=3, seed=0)
    copy = models.reduced_precision_copy(network.lower, "bfloat16")
    assert {layer.dtype_policy.name for layer in copy.layers[1:]} == {"bfloat16"}
    images = ingest.load_labeled(demo_dir, 32).images[:8].astype("float32")
    exact = models.compute_features(network.lower, images, dtype="float32")
    rounded = models.compute_features(copy, images, dtype="float32")
    error = np.linalg.norm(rounded - exact) / np.linalg.norm(exact)
    assert 0 < error < 0.02  # bfloat16 keeps 8 significant bits: about 0.4 % a value, and it did compute in it


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_a_run_caches_in_the_precision_chosen_and_says_so(demo_dir, tmp_path, monkeypatch, precision):
    monkeypatch.setenv(backend.FORWARD_PRECISION_ENV, precision)
    config = TrainConfig.from_dict({"recipe": "manual", "weights": "none", "image_size": 32, "epochs": 1,
                                    "batch_size": 8, "seed": 1})
    copies = []
    original = models.reduced_precision_copy
    monkeypatch.setattr(models, "reduced_precision_copy", lambda *a: copies.append(a[1]) or original(*a))
    assert training.train(config, demo_dir, tmp_path / "run").state == "done"
    event = feature_cache_event(tmp_path / "run")
    assert event["precision"] == precision and event["used"] is True
    assert copies == ([] if precision == "float32" else ["bfloat16"])
    assert runs.read_status(tmp_path / "run")["feature_cache"]["precision"] == precision


def test_a_float32_cache_is_computed_in_float32(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(backend.FORWARD_PRECISION_ENV, "bfloat16")
    monkeypatch.setattr(training, "FEATURE_CACHE_DTYPE", "float32")
    config = TrainConfig.from_dict({"recipe": "manual", "weights": "none", "image_size": 32, "epochs": 1,
                                    "batch_size": 8, "seed": 1})
    assert training.train(config, demo_dir, tmp_path / "run").state == "done"
    assert feature_cache_event(tmp_path / "run")["precision"] == "float32"
