"""CI's script, .ci/run, fails when Chromium cannot be had: CI must not pass with none of the browser tests
run. Checked on a copy of the script that looks for Chromium where there is none, with an apt-get that
fails and a python3.11 that only notes it was reached (the rest of the script: the venv and the tests)."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def run_ci(tmp_path: Path, chromium_there: bool) -> tuple[subprocess.CompletedProcess, bool]:
    script = (ROOT / ".ci" / "run").read_text()
    assert CHROMIUM in script  # the path the script checks; the copy checks one of ours instead
    chromium = tmp_path / "chromium"
    if chromium_there:
        chromium.write_text("#!/bin/sh\n")
        chromium.chmod(0o755)
    (tmp_path / ".ci").mkdir()
    copy = tmp_path / ".ci" / "run"
    copy.write_text(script.replace(CHROMIUM, str(chromium)))
    copy.chmod(0o755)
    tools = tmp_path / "bin"
    tools.mkdir()
    reached = tmp_path / "reached"
    for name, body in (("apt-get", "exit 100"), ("python3.11", f"touch {reached}; exit 0")):
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    env = {"PATH": f"{tools}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(copy)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    return done, reached.exists()


def test_ci_stops_with_an_error_when_chromium_cannot_be_installed(tmp_path):
    done, reached = run_ci(tmp_path, chromium_there=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "chromium could not be installed: the browser tests cannot run"
    assert not reached  # no venv, no tests: nothing that could end green


def test_ci_goes_on_to_the_tests_when_chromium_is_there(tmp_path):
    done, reached = run_ci(tmp_path, chromium_there=True)
    assert reached, done.stderr  # the check above is what stopped it (the fake venv then ends the script)
