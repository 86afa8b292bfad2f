"""Where VGG16's weights come from (core.weights): the check before a run, `python -m core fetch-weights`,
the server's file ($TRANSFER_STUDIO_WEIGHTS), uploaded files, and the session's settings kept on the server
(core.session_settings). Real files and real Keras throughout; where a test needs the network's answer it
mocks only the network (the probe of Keras's weights host, or Keras's urlretrieve), and says so."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import models, session_settings, weights

ROOT = Path(__file__).resolve().parents[1]


def core(*args, home: Path, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    env.pop(weights.SERVER_WEIGHTS_ENV, None)
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A HOME with an empty Keras cache and no server file configured."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(weights.SERVER_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_probe", {"time": 0.0, "result": False})
    return home


def network(monkeypatch, reachable: bool) -> None:
    """Mock the network alone: the probe of Keras's weights host answers ``reachable``."""
    def reach(timeout):
        if not reachable:
            raise OSError(-2, "Name or service not known")
        return True

    monkeypatch.setattr(weights, "_reach_host", reach)
    monkeypatch.setattr(weights, "_probe", {"time": 0.0, "result": False})


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def same_weights(model_a, model_b) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(model_a.get_weights(), model_b.get_weights()))


def assert_plain(text: str) -> None:
    for leak in ("/", "Errno", "googleapis", "http", "Traceback", ".keras"):
        assert leak not in text, (leak, text)


# ---------------------------------------------------------------------- the check before a run

def test_status_without_the_file_depends_on_the_network(empty_home, monkeypatch):
    network(monkeypatch, False)
    offline = weights.status("imagenet")
    assert offline.state == "missing" and not offline.ready
    assert "cannot download them" in offline.message
    assert_plain(offline.message)
    network(monkeypatch, True)
    online = weights.status("imagenet")
    assert online.state == "download" and online.ready and "58 MB" in online.message
    assert weights.status("none").state == "ready"
    assert weights.status("").state == "missing" and "none is uploaded" in weights.status("").message
    gone = weights.status(str(empty_home / "gone.weights.h5"))
    assert gone.state == "missing" and "upload it again" in gone.message
    assert_plain(gone.message)


def test_fetch_weights_from_a_file_installs_it_where_keras_looks(empty_home, monkeypatch, pretrained_weights, capsys):
    network(monkeypatch, False)
    result = core("fetch-weights", "--from", pretrained_weights, home=empty_home)
    assert result.returncode == 0, result.stderr
    cache = empty_home / ".keras" / "models" / models.IMAGENET_NOTOP_FILE
    assert result.stdout.strip() == str(cache) and cache.is_file()
    assert one_line(result).startswith("installed")
    status = weights.status("imagenet")
    assert (status.state, status.source) == ("ready", "cache")
    # weights "imagenet" now load offline, and they are the file's weights
    import keras

    loaded = models.load_vgg16_base(32, "imagenet")
    reference = keras.applications.VGG16(include_top=False, weights=pretrained_weights, input_shape=(32, 32, 3))
    assert same_weights(loaded, reference)
    from core.__main__ import main

    assert main(["fetch-weights"]) == 0  # nothing to download any more
    said = capsys.readouterr()
    assert said.out.strip() == str(cache) and said.err.strip() == "the ImageNet VGG16 weights are already in Keras's cache"


def test_fetch_weights_refuses_a_bad_file_or_argument_in_one_line(empty_home, tmp_path, capsys):
    from core.__main__ import main

    bad = tmp_path / "photo.h5"
    bad.write_bytes(b"not a weights file")
    assert main(["fetch-weights", "--from", str(bad)]) == 1
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and line.startswith("error: could not load photo.h5") and "VGG16" in line
    assert not (empty_home / ".keras" / "models" / models.IMAGENET_NOTOP_FILE).exists()
    assert main(["fetch-weights", "--from", str(tmp_path / "missing.h5")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --from file not found: {tmp_path / 'missing.h5'}"
    assert main(["fetch-weights", "--from", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["fetch-weights", "--frm", "x"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_fetch_weights_offline_fails_in_one_plain_line(empty_home, monkeypatch, capsys):
    from core.__main__ import main

    network(monkeypatch, False)  # the network is mocked as unreachable; nothing else is
    assert main(["fetch-weights"]) == 1
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and line.startswith("error: cannot download the ImageNet VGG16 weights")
    assert "fetch-weights --from FILE" in line


def test_a_failed_download_says_what_to_do_without_the_url_or_socket_error(empty_home, monkeypatch):
    from keras.src.utils import file_utils

    def no_network(url, *args, **kwargs):  # only the network is mocked: Keras's own download code runs
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    network(monkeypatch, False)
    with pytest.raises(models.WeightsError) as caught:
        models.load_vgg16_base(32, "imagenet")
    text = str(caught.value)
    assert "cannot reach the internet" in text and "'none'" in text and "fetch-weights" in text
    assert_plain(text)
    assert not weights.cache_path().exists()  # no half file left behind


def test_the_servers_weights_file_stands_in_for_the_cache(empty_home, monkeypatch, pretrained_weights, tmp_path):
    import keras

    network(monkeypatch, False)
    monkeypatch.setenv(weights.SERVER_WEIGHTS_ENV, pretrained_weights)
    status = weights.status("imagenet")
    assert (status.state, status.source) == ("ready", "server_file")
    assert "the server's VGG16 weights file" in status.message
    assert_plain(status.message)
    loaded = models.load_vgg16_base(32, "imagenet")
    reference = keras.applications.VGG16(include_top=False, weights=pretrained_weights, input_shape=(32, 32, 3))
    assert same_weights(loaded, reference)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"nothing")
    monkeypatch.setenv(weights.SERVER_WEIGHTS_ENV, str(broken))
    status = weights.status("imagenet")
    assert status.state == "missing" and "cannot be loaded" in status.message
    assert_plain(status.message)


def test_weights_file_errors_name_the_file_not_its_folder(tmp_path):
    with pytest.raises(models.WeightsError) as caught:
        models.load_vgg16_base(32, str(tmp_path / "secret" / "nope.weights.h5"))
    assert "not found: nope.weights.h5" in str(caught.value) and str(tmp_path) not in str(caught.value)
    with pytest.raises(models.WeightsError, match="no weights file was given"):
        models.load_vgg16_base(32, "")


# ---------------------------------------------------------------------- an uploaded file and the kept settings

def test_an_upload_is_checked_and_kept_or_removed(pretrained_weights):
    owner = "owner-token-abcdef"
    with pytest.raises(models.WeightsError, match="could not load holiday.h5"):
        weights.save_upload(owner, "holiday.h5", b"\x89PNG not weights")
    assert list(weights.uploads_folder(owner).iterdir()) == []  # a refused file is not kept
    record = weights.save_upload(owner, "../../my vgg.weights.h5", Path(pretrained_weights).read_bytes())
    path = Path(record["path"])
    assert path.parent == weights.uploads_folder(owner) and path.name.endswith("-myvgg.weights.h5")
    assert record["name"] == "../../my vgg.weights.h5" and weights.status(str(path)).state == "ready"


def test_session_settings_are_kept_and_only_what_the_app_wrote_comes_back(tmp_path):
    owner = "owner-token-abcdef"
    uploads = weights.uploads_folder(owner)
    uploads.mkdir(parents=True)
    mine = uploads / "1234-mine.h5"
    mine.write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere.h5"
    elsewhere.write_bytes(b"x")
    assert session_settings.load(owner, uploads) is None
    session_settings.save(owner, {"recipe": "manual", "epochs": 3, "weights": str(mine), "bogus": 1},
                          {"path": str(mine), "name": "mine.h5"})
    kept = session_settings.load(owner, uploads)
    assert kept["config"]["epochs"] == 3 and kept["config"]["recipe"] == "manual"
    assert kept["config"]["weights"] == str(mine) and "bogus" not in kept["config"]
    assert kept["config"]["image_size"] == 64  # a default fills what was not kept
    assert kept["weights_file"] == {"path": str(mine), "name": "mine.h5"}
    session_settings.save(owner, {"weights": str(elsewhere)}, {"path": str(elsewhere), "name": "x"})
    kept = session_settings.load(owner, uploads)
    assert kept["config"]["weights"] == "" and kept["weights_file"] is None  # still "a file", but not that one
    with pytest.raises(ValueError):
        session_settings.save("../escape", {})
