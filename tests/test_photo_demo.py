"""The real-photo demo: downloaded once through keras.utils.get_file into Keras's cache, read through ingest.

The network is replaced by a local ``file://`` archive laid out as TensorFlow's flower_photos.tgz (tiny real
JPEGs); everything else (get_file's download and unpacking, the cache, ingest) is real.
"""
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from core import ingest, photo_demo
from app_helpers import app_env  # noqa: F401  (a fixture)
from core.__main__ import main


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def flower_archive(tmp_path, monkeypatch):
    """A 5-class flower_photos.tgz of 4 photos a class (and the LICENSE.txt file the real one has), a fresh
    home (so Keras's cache is empty), and the download address pointing at the archive."""
    archive = tmp_path / "flower_photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for label, name in enumerate(photo_demo.CLASSES):
            for index in range(4):
                data = jpeg(label * 10 + index)
                member = tarfile.TarInfo(f"flower_photos/{name}/{index:03d}.jpg")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        licence = b"the photos' licences"
        member = tarfile.TarInfo("flower_photos/LICENSE.txt")
        member.size = len(licence)
        tar.addfile(member, io.BytesIO(licence))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(photo_demo.URL_ENV, archive.as_uri())
    return archive


def test_the_photos_download_once_and_read_like_any_folder(flower_archive):
    assert photo_demo.cached_root() is None
    seen = []
    dataset = photo_demo.as_dataset(per_class=2, size=32, progress=lambda f, m: seen.append((f, m)))
    assert dataset.classes == list(photo_demo.CLASSES)
    assert dataset.images.shape == (10, 32, 32, 3) and np.bincount(dataset.labels).tolist() == [2] * 5
    # evenly picked over each class's sorted files: the first and the last
    assert sorted(path.rsplit("/", 1)[-1] for path in dataset.paths[:2]) == ["000.jpg", "003.jpg"]
    assert seen and seen[-1][0] == 1.0
    assert photo_demo.cached_root() is not None
    flower_archive.unlink()  # the network is gone: the cache answers
    again = photo_demo.as_dataset(per_class=4, size=32)
    assert len(again.images) == 20


def test_unreachable_photos_say_so_in_plain_words(flower_archive, monkeypatch, tmp_path):
    monkeypatch.setenv(photo_demo.URL_ENV, (tmp_path / "nowhere.tgz").as_uri())
    with pytest.raises(photo_demo.PhotoDemoUnavailable) as caught:
        photo_demo.as_dataset(per_class=2, size=32)
    message = str(caught.value)
    assert message.startswith("the flower photos could not be downloaded") and "generated shapes" in message
    assert "nowhere" not in message and "Errno" not in message and "file:" not in message


def test_the_command_writes_a_dataset_folder(flower_archive, tmp_path, capsys):
    out = tmp_path / "photos"
    assert main(["photo-demo", str(out), "--per-class", "3", "--size", "32"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == list(photo_demo.CLASSES) and manifest["source"] == photo_demo.TITLE
    assert len(ingest.from_folder(out, 32).images) == 15
    assert main(["photo-demo", "--per-class", "1"]) == 2


def test_the_data_page_offers_the_photos_and_says_when_they_cannot_be_had(flower_archive, app_env, monkeypatch,
                                                                          tmp_path):
    from app_helpers import assert_no_exception, shown_text, start_app

    at = start_app()
    assert "The first use downloads them" in shown_text(at)
    monkeypatch.setenv(photo_demo.URL_ENV, (tmp_path / "nowhere.tgz").as_uri())
    at.button(key="use_photos").click().run()
    assert_no_exception(at)
    [error] = [str(e.value).replace("\\", "") for e in at.error]
    assert error.startswith("The flower photos could not be downloaded") and "generated shapes" in error
    assert "nowhere" not in error and "file:" not in error
    monkeypatch.setenv(photo_demo.URL_ENV, flower_archive.as_uri())
    at.button(key="use_photos").click().run()
    assert_no_exception(at)
    assert not at.error
    text = shown_text(at)
    assert "Added 20 pictures of flowers." in text.replace("\\", "")  # 4 a class: the test sets the demo size
    current = at.session_state["dataset"]  # what the Train page trains on
    assert current["classes"] == list(photo_demo.CLASSES) and sum(current["counts"].values()) == 20
