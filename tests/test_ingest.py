"""Folders, zips and uploads become a clean Dataset; bad files are skipped and reported, never raised."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import badfiles
from core import ingest
from core.ingest import Dataset, DatasetError, Limits

SIZE = 16


def expected_kept(files):
    return sorted(path for path, _, expected in files if expected == "keep" and path.count("/") >= 1
                  and not any(part.startswith(".") for part in path.split("/")))


def expected_skipped(files):
    return {path: expected for path, _, expected in files if expected not in ("keep", "ignore")}


def zip_bytes(members: dict[str, bytes], folders=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            archive.writestr(zipfile.ZipInfo(folder.rstrip("/") + "/"), b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus():
    return badfiles.corpus()


@pytest.fixture(scope="module")
def corpus_dir(corpus, tmp_path_factory):
    return badfiles.write_tree(tmp_path_factory.mktemp("corpus") / "photos", corpus)


def check_corpus_result(dataset: Dataset, files) -> None:
    assert sorted(dataset.paths) == expected_kept(files)
    reported = {entry["path"]: entry["reason"] for entry in dataset.skipped}
    wanted = expected_skipped(files)
    assert set(reported) == set(wanted)
    for path, word in wanted.items():
        assert word.lower() in reported[path].lower(), (path, reported[path])
    assert dataset.classes == badfiles.CORPUS_CLASSES
    assert dataset.counts == {"cats": 7, "chats noirs": 6, badfiles.EMPTY_CLASS: 0, "кошки": 5, "猫": 2}
    assert dataset.images.shape == (20, SIZE, SIZE, 3) and dataset.images.dtype == np.uint8
    assert dataset.labels.dtype == np.int64
    for path, label in zip(dataset.paths, dataset.labels):
        assert dataset.classes[label] == path.split("/")[0]


def test_folder_corpus_keeps_every_good_file_and_reports_every_bad_one(corpus, corpus_dir):
    check_corpus_result(ingest.from_folder(corpus_dir, SIZE), corpus)


def test_zip_corpus_matches_the_folder(corpus):
    # Wrapped in one top folder, with an explicit entry for the empty class folder, as zip tools write it.
    data = zip_bytes({f"photos/{path}": content for path, content, _ in corpus},
                     folders=[f"photos/{badfiles.EMPTY_CLASS}"])
    check_corpus_result(ingest.from_zip(data, SIZE), corpus)


def test_folder_and_zip_give_identical_pictures(corpus, corpus_dir):
    from_folder = ingest.from_folder(corpus_dir, SIZE)
    from_zip = ingest.from_zip(zip_bytes({path: content for path, content, _ in corpus}), SIZE)
    assert from_zip.paths == from_folder.paths
    np.testing.assert_array_equal(from_zip.images, from_folder.images)


def test_progress_goes_from_0_to_1(corpus_dir):
    calls = []
    ingest.from_folder(corpus_dir, SIZE, progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [fraction for fraction, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert all(isinstance(message, str) and message for _, message in calls)
    assert "20 images kept" in calls[-1][1]


def test_bad_arguments_fail_before_reading(corpus_dir, tmp_path):
    with pytest.raises(ValueError, match="center_crop"):
        ingest.from_folder(corpus_dir, SIZE, policy="zoom")
    with pytest.raises(ValueError, match="image_size"):
        ingest.from_folder(corpus_dir, 0)
    with pytest.raises(DatasetError, match="nowhere"):
        ingest.from_folder(tmp_path / "nowhere", SIZE)


def test_pixel_and_byte_limits_apply_to_folders(tmp_path):
    big = badfiles.encode(badfiles.noise((60, 50)), "PNG")
    badfiles.write_tree(tmp_path, [("a/big.png", big, ""),
                                   ("a/small.png", badfiles.png(size=(10, 10)), "")], empty_folders=())
    dataset = ingest.from_folder(tmp_path, SIZE, limits=Limits(max_pixels=1000))
    assert dataset.paths == ["a/small.png"] and "too large" in dataset.skipped[0]["reason"]
    dataset = ingest.from_folder(tmp_path, SIZE, limits=Limits(max_member_bytes=1000))
    assert dataset.paths == ["a/small.png"] and "too large" in dataset.skipped[0]["reason"]


def test_all_policies_load(corpus_dir):
    for policy in ("center_crop", "pad", "stretch"):
        assert ingest.from_folder(corpus_dir, SIZE, policy=policy).images.shape[0] == 20


# --- uploads -------------------------------------------------------------------------------------


def test_uploads_keep_good_files_and_report_bad_ones():
    dataset = ingest.from_uploads([
        ("a.jpg", badfiles.jpeg(), " cats "),
        ("camera.jpg", badfiles.png(), "dogs"),  # recognised by content, not by name
        ("b.png", badfiles.html_page(), "dogs"),
        ("c.png", b"", "birds"),
    ], SIZE)
    assert dataset.classes == ["birds", "cats", "dogs"]
    assert dataset.counts == {"birds": 0, "cats": 1, "dogs": 1}
    assert dataset.paths == ["cats/a.jpg", "dogs/camera.jpg"]
    assert sorted(dataset.skipped, key=lambda entry: entry["path"]) == [
        {"path": "birds/c.png", "reason": "empty file"},
        {"path": "dogs/b.png", "reason": "not an image (looks like HTML)"}]


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a\\b", "..", "../up", ".hidden", None])
def test_upload_class_names_that_cannot_be_folders_are_refused(name):
    with pytest.raises(DatasetError, match="class name"):
        ingest.from_uploads([("a.jpg", badfiles.jpeg(), name)], SIZE)


def test_upload_class_names_with_spaces_and_other_scripts():
    dataset = ingest.from_uploads([("a.png", badfiles.png(), "chats noirs"), ("b.png", badfiles.png(), "猫")],
                                  SIZE)
    assert dataset.classes == ["chats noirs", "猫"]


# --- unlabeled and dispatch ----------------------------------------------------------------------


def test_load_unlabeled_finds_images_at_any_depth(corpus, corpus_dir):
    for source in (corpus_dir, zip_bytes({path: content for path, content, _ in corpus})):
        dataset = ingest.load_unlabeled(source, SIZE)
        assert dataset.classes == [] and set(dataset.labels.tolist()) == {-1}
        assert "stray.png" in dataset.paths and "猫/2024/nested.png" in dataset.paths
        assert len(dataset.paths) == 21
        assert not any(part.startswith(".") for path in dataset.paths for part in path.split("/"))
        assert len(dataset.skipped) == 8 and all(entry["reason"] for entry in dataset.skipped)
        assert dataset.counts == {}


def test_load_labeled_dispatches_on_the_source(corpus, corpus_dir, tmp_path):
    data = zip_bytes({path: content for path, content, _ in corpus})
    zip_path = tmp_path / "photos.zip"
    zip_path.write_bytes(data)
    for source in (corpus_dir, str(zip_path), zip_path, data, io.BytesIO(data)):
        assert ingest.load_labeled(source, SIZE).counts["cats"] == 7
    with pytest.raises(DatasetError, match="missing-folder"):
        ingest.load_labeled(tmp_path / "missing-folder", SIZE)
    with pytest.raises(DatasetError, match="missing-folder"):
        ingest.load_unlabeled(tmp_path / "missing-folder", SIZE)


# --- splitting -----------------------------------------------------------------------------------


def labeled(counts: dict[str, int]) -> Dataset:
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), list(counts.values()))
    images = np.zeros((len(labels), 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    return Dataset(images, labels, list(counts), [f"x/{i}.png" for i in range(len(labels))], [], 4)


def test_split_is_stratified_sorted_and_complete():
    dataset = labeled({"a": 10, "b": 5, "c": 2})
    train, validation = ingest.split(dataset, 0.2, seed=0)
    assert train.dtype == np.int64 and list(train) == sorted(train) and list(validation) == sorted(validation)
    assert not set(train) & set(validation) and len(train) + len(validation) == 17
    per_class = np.bincount(dataset.labels[validation], minlength=3).tolist()
    assert per_class == [2, 1, 1]  # round(10*0.2)=2, round(5*0.2)=1, and at least 1 (but not all) of 2


def test_split_is_deterministic_from_the_seed():
    dataset = labeled({"a": 30, "b": 30})
    first = ingest.split(dataset, 0.3, seed=7)
    again = ingest.split(dataset, 0.3, seed=7)
    other = ingest.split(dataset, 0.3, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[1], other[1])


def test_split_needs_two_classes():
    with pytest.raises(DatasetError, match=r'need at least 2 classes with images; found 1 \("cats"\)'):
        ingest.split(labeled({"cats": 5, "dogs": 0}), 0.2, seed=0)
    with pytest.raises(DatasetError, match="found 0"):
        ingest.check_trainable(labeled({}), 0.2)


def test_too_small_class_is_named():
    with pytest.raises(DatasetError, match=r'class "dogs" has 1 image.*add images to "dogs"'):
        ingest.split(labeled({"cats": 5, "dogs": 1}), 0.2, seed=0)
    with pytest.raises(DatasetError, match=r'class "birds" has no images'):
        ingest.check_trainable(labeled({"cats": 5, "dogs": 3, "birds": 0}), 0.2)


def test_validation_fraction_must_be_a_fraction():
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="validation_fraction"):
            ingest.check_trainable(labeled({"a": 5, "b": 5}), fraction)


# --- the Dataset itself, merging and storing -----------------------------------------------------


def test_summary_subset_and_counts():
    dataset = labeled({"a": 3, "b": 2})
    dataset.skipped.append({"path": "x.txt", "reason": "not an image file (.txt)"})
    assert dataset.summary() == {"classes": ["a", "b"], "counts": {"a": 3, "b": 2},
                                 "skipped": dataset.skipped, "image_size": 4, "total": 5}
    part = dataset.subset([4, 0])
    assert part.labels.tolist() == [1, 0] and part.paths == ["x/4.png", "x/0.png"]
    assert part.counts == {"a": 1, "b": 1} and part.classes == ["a", "b"]
    json.dumps(dataset.summary())  # the report is JSON-ready


def test_merge_unites_and_reindexes_classes():
    first = labeled({"cats": 2, "dogs": 1})
    second = Dataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), ["birds", "dogs"], ["p", "q"],
                     [{"path": "r", "reason": "empty file"}], 4)
    merged = ingest.merge(first, second)
    assert merged.classes == ["birds", "cats", "dogs"]
    assert merged.labels.tolist() == [1, 1, 2, 0, 2]
    assert merged.counts == {"birds": 1, "cats": 2, "dogs": 2} and len(merged.skipped) == 1
    unlabeled = Dataset(np.zeros((1, 4, 4, 3), np.uint8), np.array([-1]), [], ["u"], [], 4)
    assert ingest.merge(first, unlabeled).labels.tolist() == [0, 0, 1, -1]
    larger = Dataset(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), [], [], [], 8)
    with pytest.raises(DatasetError, match="same image_size"):
        ingest.merge(first, larger)


def test_save_and_reload_round_trip(corpus_dir, tmp_path):
    original = ingest.from_folder(corpus_dir, SIZE)
    out = ingest.save_dataset(original, tmp_path / "stored", source="photos")
    assert out == str(tmp_path / "stored")
    assert sorted(os.listdir(out)) == sorted(original.classes + ["manifest.json"])
    assert sorted(os.listdir(os.path.join(out, "cats")))[:2] == ["00000.png", "00001.png"]
    manifest = json.loads((tmp_path / "stored" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["classes"] == original.classes and manifest["counts"] == original.counts
    assert manifest["image_size"] == SIZE and manifest["source"] == "photos"
    assert manifest["skipped"] == original.skipped and len(manifest["files"]) == 20

    reloaded = ingest.from_folder(out, SIZE)
    assert reloaded.classes == original.classes and reloaded.counts == original.counts
    assert reloaded.skipped == original.skipped  # the report survives a save and a load
    order = np.argsort(original.labels, kind="stable")
    np.testing.assert_array_equal(reloaded.images, original.images[order])  # PNG is lossless
    assert ingest.from_folder(out, 8).images.shape == (20, 8, 8, 3)


def test_save_replaces_a_previous_dataset_whole(tmp_path):
    out = tmp_path / "stored"
    ingest.save_dataset(labeled({"a": 3, "b": 3}), out)
    ingest.save_dataset(labeled({"c": 1, "d": 2}), out)
    assert sorted(os.listdir(out)) == ["c", "d", "manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["stored"]  # no .tmp or .old left behind


def test_save_accepts_generated_pictures_and_unlabeled_sets(tmp_path):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    out = ingest.save_dataset((images, np.array([0, 1, 1]), ["x", "y"]), tmp_path / "pictures")
    assert ingest.from_folder(out, 8).counts == {"x": 1, "y": 2}
    unlabeled = Dataset(images, np.full(3, -1), [], ["a", "b", "c"], [], 8)
    out = ingest.save_dataset(unlabeled, tmp_path / "unlabeled")
    assert len(ingest.load_unlabeled(out, 8).images) == 3
