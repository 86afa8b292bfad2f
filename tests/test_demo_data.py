"""The built-in demo dataset: generated shape pictures, deterministic, varied, fast, and loadable like user data."""
import os
import time

import numpy as np
import pytest

from core import demo_data, ingest


def test_generate_shapes_and_types():
    images, labels, classes = demo_data.generate(per_class=5, size=32, seed=0)
    assert classes == list(demo_data.CLASSES) and len(classes) >= 4
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5


def test_same_seed_same_bytes_different_seed_different_pictures():
    first, _, _ = demo_data.generate(per_class=4, size=32, seed=3)
    again, _, _ = demo_data.generate(per_class=4, size=32, seed=3)
    other, _, _ = demo_data.generate(per_class=4, size=32, seed=4)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


def test_more_pictures_per_class_keep_the_first_ones():
    few, _, _ = demo_data.generate(per_class=3, size=32, seed=1)
    more, _, _ = demo_data.generate(per_class=6, size=32, seed=1)
    for label in range(len(demo_data.CLASSES)):
        np.testing.assert_array_equal(few[label * 3:(label + 1) * 3], more[label * 6:label * 6 + 3])


def test_pictures_vary_and_backgrounds_are_textured():
    images, labels, _ = demo_data.generate(per_class=10, size=32, seed=0)
    assert len({picture.tobytes() for picture in images}) == len(images)
    corners = images[:, :4, :4].reshape(len(images), -1, 3).astype(float)
    assert np.mean(corners.std(axis=1).mean(axis=1) > 1.0) > 0.9  # pixel noise everywhere
    # Colour alone must not give the class away: nearest mean colour should be near chance (25%).
    mean_colours = images.reshape(len(images), -1, 3).mean(axis=1)
    centroids = np.stack([mean_colours[labels == k].mean(axis=0) for k in range(4)])
    guesses = np.argmin(((mean_colours[:, None] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(guesses == labels) < 0.6


def test_shapes_cover_similar_areas_so_size_is_not_a_shortcut():
    coverage = {}
    for shape in demo_data.CLASSES:
        rngs = [np.random.default_rng([0, 0, i]) for i in range(20)]
        coverage[shape] = np.mean([demo_data._shape_mask(shape, 32, rng).mean() for rng in rngs])
    assert max(coverage.values()) < 1.35 * min(coverage.values()), coverage


def test_fast_enough():
    start = time.perf_counter()
    demo_data.generate(per_class=100, size=64, seed=0)
    assert time.perf_counter() - start < 2.0


def test_as_dataset():
    dataset = demo_data.as_dataset(per_class=3, size=32, seed=0)
    assert isinstance(dataset, ingest.Dataset)
    assert dataset.paths[:4] == ["circle/circle_000.png", "circle/circle_001.png", "circle/circle_002.png",
                                 "square/square_000.png"]
    assert dataset.counts == {name: 3 for name in demo_data.CLASSES}
    assert dataset.image_size == 32 and dataset.skipped == []
    train, validation = ingest.split(dataset, 0.34, seed=0)
    assert len(train) + len(validation) == 12


def test_write_demo_data_loads_back_unchanged(tmp_path):
    out = demo_data.write_demo_data(tmp_path / "shapes", per_class=3, size=32, seed=0)
    assert out == str(tmp_path / "shapes")
    assert sorted(os.listdir(out)) == sorted(demo_data.CLASSES)
    assert sorted(os.listdir(os.path.join(out, "star"))) == ["star_000.png", "star_001.png", "star_002.png"]
    loaded = ingest.from_folder(out, 32)
    expected = demo_data.as_dataset(per_class=3, size=32, seed=0)
    assert loaded.paths == expected.paths and loaded.skipped == []
    np.testing.assert_array_equal(loaded.images, expected.images)  # a square re-crop at the same size is exact


@pytest.mark.parametrize("arguments", [{"per_class": 0}, {"size": 4}, {"per_class": 2.5}])
def test_bad_arguments_are_named(arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        demo_data.generate(**arguments)
