"""The Autoencoder page through AppTest: a real tiny run (32 px, 1 autoencoder epoch, 1 classifier epoch)
started from the page through the job manager, watched until its reconstruction grid appears; the settings a
session kept, found by a reload on this page."""
import io
import json

import numpy as np
from PIL import Image

from app_helpers import (app_env, assert_no_exception, load_demo, plotly_specs, shown_text,  # noqa: F401
                         start_app, wait_for)

PAGE = "pages/4_autoencoder.py"


def png_bytes(colour, size=40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_autoencoder_page_without_data_says_where_to_start(app_env):
    at = start_app(page=PAGE)
    assert "No dataset yet" in shown_text(at)
    assert at.button(key="ae_start").disabled
    assert not at.error


def test_tiny_autoencoder_run_shows_its_reconstructions(app_env):
    """Upload an unlabeled picture, start a tiny run from the page, watch it finish."""
    at = load_demo(start_app())
    at.switch_page(PAGE).run()
    assert_no_exception(at)
    at.file_uploader(key="ae_unlabeled_files").set_value([("sky.png", png_bytes((40, 90, 200)), "image/png")]).run()
    at.button(key="ae_use_unlabeled").click().run()
    at.number_input(key="ae::autoencoder_epochs").set_value(1)
    at.number_input(key="ae::epochs").set_value(1)
    at.select_slider(key="ae::image_size").set_value(32)
    # "A weights file" chosen on the Model page with none uploaded: the autoencoder reads no VGG16 weights,
    # so that choice neither blocks its Start nor goes with the run
    at.session_state["config"] = {**at.session_state["config"], "weights": ""}
    at.button(key="ae_start").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    run_id = at.session_state["run_id"]
    run_dir = app_env / "runs" / run_id
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "autoencoder" and config["autoencoder_epochs"] == 1 and config["image_size"] == 32
    assert config["weights"] == "none"
    assert config["unlabeled"] == at.session_state["unlabeled"]["path"]  # pretrained on the extra picture too

    def finished():
        status = json.loads((run_dir / "status.json").read_text())
        return status["state"] in ("done", "failed", "stopped") and status

    status = wait_for(finished, timeout=300, message="the autoencoder run to finish")
    assert status["state"] == "done", status
    assert (run_dir / "reconstructions.png").is_file()
    at.run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "Top row: inputs" in "\n".join(str(image.proto) for image in at.get("image"))
    figures = plotly_specs(at)
    loss = figures[f"ae_loss::{run_id}"]["data"]
    assert any(trace.get("name") == "training" for trace in loss)
    assert f"ae_curves::{run_id}" in figures  # then the transferred classifier's curves
    assert "Finished" in shown_text(at)


def test_unlabeled_pictures_uploaded_here_become_the_unlabeled_set(app_env):
    at = load_demo(start_app())
    at.switch_page(PAGE).run()
    at.file_uploader(key="ae_unlabeled_files").set_value([
        ("sky.png", png_bytes((40, 90, 200)), "image/png"),
        ("grass.png", png_bytes((30, 160, 40)), "image/png"),
        ("<b>notes</b>.png", b"just some text, not a picture", "image/png"),
    ]).run()
    at.button(key="ae_use_unlabeled").click().run()
    assert_no_exception(at)
    unlabeled = at.session_state["unlabeled"]
    assert unlabeled["images"] == 2 and len(unlabeled["skipped"]) == 1
    assert at.checkbox(key="ae::use_unlabeled").value  # used by the next run unless unticked
    assert "Also learn from the unlabeled set (2 pictures)" == at.checkbox(key="ae::use_unlabeled").label
    skipped = [str(c.value) for c in at.caption if "Skipped from the unlabeled set" in str(c.value)]
    assert len(skipped) == 1 and "not an image" in skipped[0]
    assert "<b>" not in skipped[0] and r"b\>" in skipped[0]  # the file name is escaped: shown as text


def test_a_reload_on_this_page_finds_the_settings_the_session_kept(app_env):
    """A new browser session of a known session token opening the Autoencoder page takes its settings from what
    the session kept on the server (the Model page's image size and epochs), not from the defaults."""
    from core import session_settings
    from core.config import TrainConfig

    token = "autoencoder-reload-token-01"
    session_settings.save(token, {**TrainConfig().to_dict(), "image_size": 48, "epochs": 3})
    at = start_app({"session": token}, page=PAGE)
    assert at.select_slider(key="ae::image_size").value == 48
    assert at.number_input(key="ae::epochs").value == 3
