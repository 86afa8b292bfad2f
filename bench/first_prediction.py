"""From opening the URL to a first prediction, as a new user does it with the demo data and every default.

``python -m bench.first_prediction [--weights FILE] [--shots DIR]``

A fresh server (its own workspace, and a fresh home whose Keras cache holds the VGG16 weights, put there by
``python -m core fetch-weights --from FILE`` as an operator preparing an offline classroom would; with no
``--weights``, the offline file of ``../shared/tools/pretrained_vgg16.py`` when it exists) and Chromium
(``/usr/bin/chromium``, driven by Playwright). The clicks: open the URL, **Use the demo data**, the Train
page, **Start training** (recipe auto, ImageNet weights, the demo data's default size), wait until the run
is finished, the Predict page, upload one new demo picture, wait for its answer. Prints the seconds from
opening the URL to the trained model and to the prediction, and the load averages (a busy machine is
slower); it asserts nothing: a measurement for the README and bench/results.md.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import machine

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a VGG16 (no top) weights file to install in the fresh Keras cache")
    parser.add_argument("--shots", help="save a screenshot of each step in this folder")
    args = parser.parse_args(argv)
    from bench.run import resolve_weights

    weights = args.weights or resolve_weights("auto")[0]
    if not weights or weights == "none" or not Path(weights).is_file():
        print("needs a VGG16 weights file: --weights FILE (../shared/tools/pretrained_vgg16.py makes one)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="first-prediction-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "HOME": str(scratch / "home"), "TRANSFER_STUDIO_HOME": str(scratch / "workspace")}
        for name in ("TRANSFER_STUDIO_DEMO_PER_CLASS", "TRANSFER_STUDIO_DEMO_SIZE", "TRANSFER_STUDIO_WEIGHTS"):
            env.pop(name, None)  # the defaults a new user gets
        installed = subprocess.run([sys.executable, "-m", "core", "fetch-weights", "--from", str(weights)],
                                   env=env, cwd=machine.REPO, capture_output=True, text=True)
        if installed.returncode != 0:
            print(f"could not install the weights: {installed.stderr.strip()}", file=sys.stderr)
            return 1
        before = os.getloadavg()
        seconds = _drive(env, scratch, Path(args.shots) if args.shots else None)
        after = os.getloadavg()
    print(f"from opening the URL to a trained model: {seconds['trained']:.0f} s; to the first prediction: "
          f"{seconds['predicted']:.0f} s (demo data, recipe auto, ImageNet weights from Keras's cache; "
          f"{machine.cpu_model()}, {machine.usable_cores()} cores; load average {[round(x, 2) for x in before]} before, "
          f"{[round(x, 2) for x in after]} after)")
    return 0


def _drive(env: dict, scratch: Path, shots: Path | None) -> dict:
    from playwright import sync_api

    port = _free_port()
    log = open(scratch / "streamlit.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port",
                               str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              cwd=machine.REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(600_000)

            def shot(name):
                if shots:
                    shots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

            started = time.monotonic()
            page.goto(url)
            page.get_by_role("button", name="Use the demo data").click()
            page.get_by_text("pictures in 4 classes").first.wait_for()
            shot("1-data")
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
            page.get_by_role("button", name="Start training").click()
            page.get_by_test_id("stSidebar").get_by_text("Finished", exact=False).wait_for()
            trained = time.monotonic() - started
            shot("2-trained")
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Predict").click()
            page.get_by_role("heading", name="Predict", level=1).wait_for()
            picture = scratch / "new-picture.png"
            picture.write_bytes(_new_demo_picture())
            page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(picture))
            page.get_by_text("sure)").first.wait_for()
            predicted = time.monotonic() - started
            shot("3-predicted")
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return {"trained": trained, "predicted": predicted}


def _new_demo_picture() -> bytes:
    """A demo picture the run did not train on (another seed than the demo data's)."""
    from PIL import Image

    from core import demo_data

    with tempfile.TemporaryDirectory() as folder:
        demo_data.write_demo_data(folder, per_class=1, size=64, seed=99)
        first = sorted(Path(folder).glob("*/*"))[0]
        buffer = io.BytesIO()
        Image.open(first).convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not start")


if __name__ == "__main__":
    raise SystemExit(main())
