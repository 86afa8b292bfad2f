"""A warm worker's second run reuses the VGG16 its first run built (core.models.reusing_bases) and gets the
same result as in a fresh process: the weights the first run fine-tuned are put back, and the head starts
from the same random draw."""
import keras
import pytest

from core import models, runs, training
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
