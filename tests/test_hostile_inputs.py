"""Hostile and odd input at the command line and in core (issue 13): each gets its real problem named."""
import json
import os
from pathlib import Path

import pytest

import badfiles
from core import models
from test_cli import core


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_config_file_that_is_not_an_object_is_a_usage_error(demo_dir, tmp_path):
    config = tmp_path / "config.json"
    config.write_text("[1]")
    result = core("train", demo_dir, "--out", tmp_path / "run", "--config", config)
    assert result.returncode == 2
    assert "must hold a JSON object of settings" in one_line(result) and "list" in result.stderr


@pytest.mark.parametrize("option,value", [("--epochs", "0"), ("--image-size", "8")])
def test_experiment_settings_out_of_range_are_named(demo_dir, tmp_path, option, value):
    result = core("experiment", "freeze-depth", demo_dir, "--out", tmp_path / "exp", option, value)
    assert result.returncode == 2 and option in one_line(result) and value in result.stderr
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("command", ["report", "evaluate", "predict", "export"])
def test_a_missing_run_folder_is_named_as_such(tmp_path, command):
    extra = {"predict": ["x.png"], "export": ["--out", str(tmp_path / "m.zip")]}.get(command, [])
    result = core(command, tmp_path / "nowhere", *extra)
    assert result.returncode == 2
    line = one_line(result)
    assert "run folder not found" in line and "TRANSFER_STUDIO_HOME" not in line


def test_a_weights_path_that_is_a_folder_says_so(tmp_path):
    folder = tmp_path / "weights.h5"
    folder.mkdir()
    with pytest.raises(models.WeightsError) as caught:
        models.load_vgg16_base(32, str(folder))
    assert "is a folder" in str(caught.value) and "not found" not in str(caught.value)


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(badfiles.png((120, 120, 120), size=(8, 8)))


def test_a_named_pipe_among_pictures_is_skipped_not_waited_for(tmp_path):
    from core import ingest

    for name in ("cats/a.png", "dogs/b.png"):
        _png(tmp_path / name)
    os.mkfifo(tmp_path / "cats" / "x.png")
    # run in a thread with a deadline: the old code blocked forever opening the pipe
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(ingest.from_folder, tmp_path, 8)
    try:
        dataset = future.result(timeout=30)
    except concurrent.futures.TimeoutError:
        # release the blocked reader (a writer opening the pipe and closing it), then fail
        os.close(os.open(tmp_path / "cats" / "x.png", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("loading a folder with a named pipe in it never finished")
    finally:
        pool.shutdown(wait=True)
    assert len(dataset.images) == 2
    assert {"path": "cats/x.png", "reason": "not a regular file"} in dataset.skipped


def test_links_in_a_folder_are_not_followed_and_are_reported(tmp_path):
    from core import ingest

    data = tmp_path / "data"
    for name in ("cats/a.png", "dogs/b.png", "elsewhere/c.png"):
        _png((data if not name.startswith("elsewhere") else tmp_path) / name)
    os.symlink(tmp_path / "elsewhere", data / "linked")          # a class folder that is a link
    os.symlink(data, data / "cats" / "loop")                      # a folder inside a class linking back up
    os.symlink(tmp_path / "elsewhere" / "c.png", data / "dogs" / "c.png")  # a file link
    dataset = ingest.from_folder(data, 8)
    assert dataset.classes == ["cats", "dogs"] and len(dataset.images) == 2
    reasons = {entry["path"]: entry["reason"] for entry in dataset.skipped}
    assert set(reasons) == {"linked", "cats/loop", "dogs/c.png"}
    assert all(reason.startswith("a link, not followed") for reason in reasons.values())


def test_a_folder_with_too_many_entries_is_refused_before_reading(tmp_path):
    from core import ingest

    for index in range(30):
        (tmp_path / "cats").mkdir(exist_ok=True)
        (tmp_path / "cats" / f"{index}.txt").write_text("x")
    _png(tmp_path / "dogs" / "a.png")
    with pytest.raises(ingest.DatasetError) as caught:
        ingest.from_folder(tmp_path, 8, limits=ingest.Limits(max_members=20))
    assert "more than 20 entries" in str(caught.value)


def _png_bytes() -> bytes:
    return badfiles.png((90, 90, 90), size=(8, 8))


@pytest.mark.parametrize("bad_name", ["x" * 300, "new\nline", "zero\u200bwidth", "\u200b", "   ", "tab\there"])
def test_zip_class_names_follow_the_upload_rules(bad_name):
    from core import ingest

    picture = _png_bytes()
    dataset = ingest.from_zip(badfiles.zip_bytes({f"{bad_name}/a.png": picture, "cats/b.png": picture, "dogs/c.png": picture}), 8)
    assert dataset.classes == ["cats", "dogs"] and len(dataset.images) == 2
    assert len(dataset.skipped) == 1 and "class name" in dataset.skipped[0]["reason"]
    with pytest.raises(ingest.DatasetError):
        ingest.from_uploads([("a.png", picture, bad_name)], 8)


def test_a_failed_save_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from core import ingest

    dataset = ingest.from_zip(badfiles.zip_bytes({"cats/a.png": _png_bytes(), "dogs/b.png": _png_bytes()}), 8)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError):
        ingest.save_dataset(dataset, tmp_path / "set")
    assert list(tmp_path.iterdir()) == []
    assert np.asarray(dataset.images).shape[0] == 2


def test_the_cli_shows_escape_sequences_in_names_instead_of_sending_them(tmp_path):
    picture = _png_bytes()
    data = tmp_path / "data"
    for name in ("\x1b[31mred", "plain"):
        (data / name).mkdir(parents=True)
    (data / "\x1b[31mred" / "a.png").write_bytes(picture)
    (data / "plain" / "b.png").write_bytes(picture)
    result = core("train", data, "--out", tmp_path / "run", "--weights", "none", "--image-size", "32")
    assert "\x1b" not in result.stderr
    from core.__main__ import terminal_safe

    assert terminal_safe("\x1b[31mred\x07") == "\\x1b[31mred\\x07"


def test_a_zip_of_huge_blank_pictures_is_refused_before_decoding(tmp_path, monkeypatch):
    """Issue 13's decompression bomb: small on disk, hours of decoding. Refused by the declared sizes."""
    import io
    import time

    import numpy as np
    from PIL import Image

    from core import ingest

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4000, 4000, 3), dtype=np.uint8)).save(buffer, format="PNG")  # 16 MP, ~50 KB
    blank = buffer.getvalue()
    members = {f"{'cats' if i % 2 else 'dogs'}/{i}.png": blank for i in range(60)}  # 960 MP in all
    data = badfiles.zip_bytes(members)
    assert len(data) < 5_000_000
    decoded = []
    real_load = ingest.load_image
    monkeypatch.setattr(ingest, "load_image", lambda *a, **k: decoded.append(1) or real_load(*a, **k))
    started = time.perf_counter()
    with pytest.raises(ingest.DatasetError) as caught:
        ingest.from_zip(data, 32, limits=ingest.Limits(max_total_pixels=200_000_000))
    print(f"refused in {time.perf_counter() - started:.2f} s")
    message = str(caught.value)
    assert "megapixels" in message and "\n" not in message
    assert decoded == [], "pictures were decoded before the budget refused the zip"
    # within the budget the same pictures load
    small = ingest.from_zip(badfiles.zip_bytes(dict(list(members.items())[:4])), 32, limits=ingest.Limits(max_total_pixels=200_000_000))
    assert len(small.images) == 4


def test_classifier_files_never_unpickle_and_refuse_foreign_types(tmp_path):
    """A received bundle has a run's layout: its classifier must not be able to run its author's code."""
    import numpy as np
    import skops.io
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression

    from core import classifier_files

    x, y = np.random.default_rng(0).normal(size=(20, 4)), np.repeat([0, 1], 10)
    hostile = make_pipeline(FunctionTransformer(os.getcwd), LogisticRegression())  # a function call inside
    hostile.steps[0] = ("f", FunctionTransformer(np.abs))
    hostile.fit(x, y)
    hostile.steps[0] = ("f", FunctionTransformer(os.system))
    skops.io.dump(hostile, tmp_path / classifier_files.CLASSIFIER_FILE)
    with pytest.raises(classifier_files.UntrustedClassifierError) as caught:
        classifier_files.load_classifier(tmp_path / classifier_files.CLASSIFIER_FILE)
    assert "system" in str(caught.value) and "not made by this app" in str(caught.value)
    (tmp_path / "broken.skops").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(classifier_files.UntrustedClassifierError):
        classifier_files.load_classifier(tmp_path / "broken.skops")


def test_a_run_with_only_a_pickle_is_refused_without_loading_it(demo_dir, tmp_path):
    import pickle

    from core import predict, training
    from core.config import TrainConfig

    run = tmp_path / "run"
    config = TrainConfig.from_dict({"weights": "none", "image_size": 32, "head": "svm", "freeze_depth": 5})
    assert training.train(config, demo_dir, run).state == "done"
    (run / "classifier.skops").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (run / "classifier.joblib").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(predict.RunFilesError) as caught:
        predict.load_predictor(run)
    assert "train it again" in str(caught.value)
    assert not marker.exists()


def test_an_exported_bundle_names_no_server_path(demo_dir, tmp_path):
    import io
    import zipfile

    from core import export, training
    from core.config import TrainConfig

    secret = tmp_path / "weights" / "s3cr3t-session-token"
    secret.mkdir(parents=True)
    weights = secret / "vgg.weights.h5"
    import keras

    keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(weights)
    run = tmp_path / "run"
    config = TrainConfig.from_dict({"weights": str(weights), "image_size": 32})
    assert training.train(config, demo_dir, run).state == "done"
    with zipfile.ZipFile(io.BytesIO(export.bundle_zip(run))) as bundle:
        for name in bundle.namelist():
            if name.endswith((".json", ".txt")):
                text = bundle.read(name).decode()
                assert "s3cr3t-session-token" not in text and str(tmp_path) not in text, name
        assert json.loads(bundle.read("config.json"))["weights"] == "vgg.weights.h5"


def test_a_report_names_no_server_path_or_session_token(demo_dir, tmp_path):
    import shutil

    from core import report, training
    from core.config import TrainConfig

    token = "s3cr3tsessiontoken42"
    data = tmp_path / "datasets" / token / "20261130-abc"
    shutil.copytree(demo_dir, data)
    (data / "manifest.json").write_text(json.dumps({"source": "Demo shapes (8 per class)"}))
    run = tmp_path / "run"
    assert training.train(TrainConfig.from_dict({"weights": "none", "image_size": 32}), data, run).state == "done"
    html = Path(report.write_report(run)).read_text()
    assert token not in html and str(tmp_path) not in html
    assert "Demo shapes (8 per class)" in html
