"""Issue 5 scenario 11: a full disk or an unwritable workspace gives a clear error; finished runs stay intact."""
import errno
import shutil
import subprocess
import uuid
from pathlib import Path

import keras
import numpy as np
import pytest

from core import jobs, runs, training
from core.config import TrainConfig

TINY = TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8})


def test_unwritable_workspace_is_named_with_the_fix(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace should be")
    with pytest.raises(runs.WorkspaceError) as caught:
        jobs.JobManager(root=blocker / "runs", start_thread=False)
    message = str(caught.value)
    assert "cannot write" in message and "TRANSFER_STUDIO_HOME" in message


class SmallDisk(type(Path())):
    """A folder on a disk with room for one tiny VGG16 run (59 MB), not two. ``fill()`` is called between
    the runs: on a real small disk it does nothing (the second run fills it); where no disk can be mounted
    it makes the next model write fail as a full disk does, after writing part of the file."""

    def fill(self):
        if getattr(self, "fallback", None):
            self.fallback()


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A real 80 MB file system (tmpfs) when this machine allows mounting one (CI does, as root); else a
    folder whose disk is full from fill() on (an ENOSPC from the model write: the same error a real full
    disk raises there, mocked because the disk itself cannot be had, as the test says)."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80M", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True).returncode == 0
    except OSError:  # no mount command at all
        mounted = False
    disk = SmallDisk(mount_point)
    if not mounted:
        def fallback():
            def save_on_a_full_disk(self, filepath, *args, **kwargs):
                Path(filepath).write_bytes(b"part of a model")
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(keras.Model, "save", save_on_a_full_disk)

        disk.fallback = fallback
    yield disk
    if mounted:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_full_disk_fails_in_plain_words_and_keeps_finished_runs(demo_dir, small_disk):
    first = training.train(TINY, demo_dir, small_disk / "first")
    assert first.state == "done", first.error
    small_disk.fill()
    second = training.train(TINY, demo_dir, small_disk / "second")
    assert second.state == "failed"
    assert second.error.startswith("the disk is full"), second.error
    assert runs.read_status(small_disk / "second")["error"] == second.error
    assert not list((small_disk / "second").glob(".tmp-*"))  # the half-written model was removed
    # the finished run is untouched and still predicts
    model = keras.saving.load_model(small_disk / "first" / "model.keras")
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 4)
    assert runs.read_status(small_disk / "first")["state"] == "done"
