"""A warm worker's second run reuses the VGG16 its first run built (core.models.reusing_bases) and gets the
same result as in a fresh process: the weights the first run fine-tuned are put back, and the head starts
from the same random draw."""
import keras
import numpy as np
import pytest

from core import ingest, models, runs, training
from core import weights as weight_sources
from core.config import TrainConfig


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A VGG16 (no top) weights file at 32 px: a random start saved once, loaded like a pretrained file."""
    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("weights") / "vgg16_small.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    return str(path)


def config(weights_file, **changes) -> TrainConfig:
    return TrainConfig.from_dict({"recipe": "manual", "weights": weights_file, "image_size": 32, "epochs": 1,
                                  "batch_size": 8, "seed": 3, **changes})


def losses(run_dir) -> list[float]:
    """The run's training and validation losses, epoch by epoch: they depend on every weight it started from."""
    return [event[key] for event in runs.read_all_events(run_dir) if event["type"] == "epoch"
            for key in ("loss", "val_loss")]


def test_a_second_run_in_the_process_reuses_vgg16_and_matches_a_fresh_one(demo_dir, tmp_path, weights_file,
                                                                          monkeypatch):
    builds = []
    original = weight_sources.load_base
    monkeypatch.setattr(weight_sources, "load_base", lambda *a, **k: builds.append(a) or original(*a, **k))
    models.forget_kept_bases()
    # The seed head draws its start from Python's random generator (Keras seeds each initializer from it);
    # block 5 trains on block 4's cached output
    second = config(weights_file, head="seed", freeze_depth=4, optimizer="sgd", learning_rate=1e-3)
    # a fresh process: nothing kept
    assert training.train(second, demo_dir, tmp_path / "fresh").state == "done"
    assert len(builds) == 1
    models.forget_kept_bases()
    # a warm worker: a run that fine-tunes blocks 4 and 5 at a large rate, then the same run as above
    first = training.train(config(weights_file, freeze_depth=3, optimizer="sgd", learning_rate=0.05),
                           demo_dir, tmp_path / "first")
    assert first.state == "done"
    assert training.train(second, demo_dir, tmp_path / "reused").state == "done"
    assert len(builds) == 2  # the second run of the worker built nothing
    assert losses(tmp_path / "reused") == pytest.approx(losses(tmp_path / "fresh"), rel=1e-5)
    models.forget_kept_bases()


def test_one_run_never_gets_the_same_base_twice(weights_file):
    """Recipe auto holds one base for its features while another fine-tunes: each call gets its own."""
    models.forget_kept_bases()
    with models.reusing_bases():
        first = models.load_vgg16_base(32, weights_file)
    with models.reusing_bases():
        again = models.load_vgg16_base(32, weights_file)
        other = models.load_vgg16_base(32, weights_file)
    assert again is first and other is not first
    outside = models.load_vgg16_base(32, weights_file)  # outside a run nothing is lent
    assert outside is not first and outside is not other
    assert models.load_vgg16_base(32, "none") is not models.load_vgg16_base(32, "none")
    models.forget_kept_bases()


def test_a_warm_run_takes_the_bfloat16_copy_an_earlier_run_made_of_its_frozen_part(weights_file, demo_dir):
    images = ingest.load_labeled(demo_dir, 32).images[:4].astype("float32")
    models.forget_kept_bases()
    with models.reusing_bases():
        network = models.build_vgg16_classifier(4, image_size=32, weights=weights_file, freeze_depth=4)
        exact = models.compute_features(network.lower, images, dtype="float32")
        copy = models.reduced_precision_copy(network.lower, "bfloat16")
        rounded = models.compute_features(copy, images, dtype="float32")
        conv = network.full.get_layer("block1_conv1")
        conv.set_weights([weight * 0 for weight in conv.get_weights()])  # what fine-tuning does to the lent base
    with models.reusing_bases():
        again = models.build_vgg16_classifier(4, image_size=32, weights=weights_file, freeze_depth=4)
        assert models.reduced_precision_copy(again.lower, "bfloat16") is copy
        np.testing.assert_array_equal(models.compute_features(again.lower, images, dtype="float32"), exact)
        np.testing.assert_array_equal(models.compute_features(copy, images, dtype="float32"), rounded)
    models.forget_kept_bases()
