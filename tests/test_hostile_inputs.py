"""Hostile and odd input at the command line and in core (issue 13): each gets its real problem named."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import models

ROOT = Path(__file__).resolve().parents[1]


def core(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


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
