"""Shared fixtures: a tiny generated demo dataset on disk and an isolated workspace."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch):
    """Every test writes runs and datasets into its own workspace, never ./workspace."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("TRANSFER_STUDIO_HOME", str(home))
    # Job managers run each training in a fresh process here: the app keeps one manager (and its warm
    # workers) for the server's life, but a test suite makes hundreds, whose idle TensorFlow workers would
    # fill the memory. tests/test_workers.py and the browser tests' servers run the warm default.
    monkeypatch.setenv("TRANSFER_STUDIO_WARM_WORKERS", "0")
    return home


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Demo data on disk: 4 classes x 8 images at 32 px (real generated pictures, not mocks)."""
    from core import demo_data

    out = tmp_path_factory.mktemp("demo") / "shapes"
    demo_data.write_demo_data(str(out), per_class=8, size=32, seed=0)
    return str(out)


# Skips CI may have, with the reason why: things a CI machine here cannot have. Any other skip fails the
# run when CI is set, so a broken fixture or a missing tool cannot pass quietly as "skipped".
CI_ALLOWED_SKIPS = (
    "needs a GPU",  # no accelerator on CI machines
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        if not any(allowed in reason for allowed in CI_ALLOWED_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, which must run every test: {reason}"


def _offline_weights_path() -> str | None:
    """The offline weights file if it is already made (the tool's own default place), else None."""
    from pathlib import Path

    path = Path(os.environ.get("VGG16_OFFLINE_WEIGHTS") or
                Path.home() / ".cache" / "vgg16-offline" / "vgg16_notop_pretrained.weights.h5")
    return str(path) if path.is_file() and path.stat().st_size > 1_000_000 else None


@pytest.fixture(scope="session")
def pretrained_weights():
    """Path of the offline pretrained VGG16 (no top) weights: the cached file, else made by the shared tool.

    Skips with the reason where neither is possible (a CI run turns that skip into a failure)."""
    import subprocess
    import sys
    from pathlib import Path

    cached = _offline_weights_path()
    if cached:
        return cached
    tool = Path(__file__).resolve().parents[2] / "shared" / "tools" / "pretrained_vgg16.py"
    if not tool.exists():
        pytest.skip(f"offline VGG16 weights tool not found at {tool}")
    result = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"offline pretrained VGG16 weights could not be made: {result.stderr.strip()[-300:]}")
    return result.stdout.strip().splitlines()[-1]


def pytest_sessionfinish(session, exitstatus):
    """A whole module skipped at collection (say, no Chromium) fails a CI run too."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [report for report in (reporter.stats.get("skipped", []) if reporter else [])
               if isinstance(report, pytest.CollectReport)]
    reasons = [str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
               for report in skipped]
    bad = [reason for reason in reasons if not any(allowed in reason for allowed in CI_ALLOWED_SKIPS)]
    if bad:
        reporter.write_line(f"CI: {len(bad)} module(s) skipped at collection, which fails the run: {bad[0]}")
        session.exitstatus = 1
