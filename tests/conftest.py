"""Shared fixtures: a tiny generated demo dataset on disk and an isolated workspace."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch):
    """Every test writes runs and datasets into its own workspace, never ./workspace."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("TRANSFER_STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Demo data on disk: 4 classes x 8 images at 32 px (real generated pictures, not mocks)."""
    from core import demo_data

    out = tmp_path_factory.mktemp("demo") / "shapes"
    demo_data.write_demo_data(str(out), per_class=8, size=32, seed=0)
    return str(out)


@pytest.fixture(scope="session")
def pretrained_weights():
    """Path of the offline pretrained VGG16 (no top) weights, or skip with the reason."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[2] / "shared" / "tools" / "pretrained_vgg16.py"
    if not tool.exists():
        pytest.skip(f"offline VGG16 weights tool not found at {tool}")
    result = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"offline pretrained VGG16 weights could not be made: {result.stderr.strip()[-300:]}")
    return result.stdout.strip().splitlines()[-1]
