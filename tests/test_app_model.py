"""The Model page: Automatic and Manual training, the freeze-depth diagram, the settings kept in session
state, the seed preset, the weights before Start, settings kept over a reload and the learning-rate finder, driven through AppTest."""
import math
from pathlib import Path

import pytest
from app_helpers import (app_env, assert_no_exception, load_demo, no_cached_weights, plotly_specs,  # noqa: F401
                         shown_text, start_app)

MODEL = "pages/2_model.py"
TRAIN = "pages/3_train.py"


@pytest.fixture(autouse=True)
def weights_can_be_had(monkeypatch):
    """The page's verdict on the settings must not hang on this machine's Keras cache or internet: the network
    alone is mocked as reachable, so ImageNet weights count as "downloaded at Start" where they are not cached.
    The weights tests below choose the network's answer themselves."""
    from core import weights

    monkeypatch.setattr(weights, "_reach_host", lambda timeout: True)
    monkeypatch.setattr(weights, "_probe", {"time": 0.0, "result": False})


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def choose_manual(at):
    at.radio(key="cfg::recipe").set_value("manual").run()
    assert_no_exception(at)
    return at


MANUAL_ONLY = ("cfg::freeze_depth", "cfg::head", "cfg::optimizer", "cfg::learning_rate", "cfg::epochs",
               "cfg::two_phase", "lr_find", "seed_preset")


def shown_keys(at):
    """The keys of the buttons and setting widgets on the page."""
    kinds = ("button", "slider", "select_slider", "selectbox", "radio", "number_input", "checkbox")
    return {widget.key for kind in kinds for widget in getattr(at, kind)}


def success_text(at):
    """The green message as the user reads it (without Markdown's escapes)."""
    return " ".join(str(element.value) for element in at.success).replace("\\", "")


def box_colours(at):
    """Fill colour of each box in the diagram: five blocks, then the head."""
    return [shape["fillcolor"] for shape in plotly_specs(at)["freeze_diagram"]["layout"]["shapes"]
            if shape["type"] == "rect"]


def test_model_page_loads_with_valid_defaults(app_env):
    at = start_app(page=MODEL)
    assert at.title[0].value == "Model"
    assert "These settings are valid" in shown_text(at)
    assert at.session_state["config"]["freeze_depth"] == 4  # the measured default


def test_automatic_is_the_default_and_shows_only_the_settings_it_reads(app_env):
    at = start_app(page=MODEL)
    assert at.radio(key="cfg::recipe").value == "auto"
    assert at.session_state["config"]["recipe"] == "auto"
    keys = shown_keys(at)
    assert not keys & set(MANUAL_ONLY), keys & set(MANUAL_ONLY)
    assert {"cfg::weights_choice", "cfg::image_size", "cfg::validation_fraction", "cfg::seed"} <= keys
    assert "freeze_diagram" not in plotly_specs(at)
    text = shown_text(at)
    assert "cross-validation on the training pictures" in text and "fewer than 50 pictures a class" in text
    assert "These settings are valid. Automatic: VGG16 (weights imagenet)" in success_text(at)


def test_choosing_manual_shows_the_manual_settings(app_env):
    at = choose_manual(start_app(page=MODEL))
    assert at.session_state["config"]["recipe"] == "manual"
    assert set(MANUAL_ONLY) <= shown_keys(at)
    assert at.slider(key="cfg::freeze_depth").value == 4
    assert "freeze_diagram" in plotly_specs(at)
    assert "These settings are valid. Manual: VGG16, weights imagenet, 4 of 5 blocks frozen" in success_text(at)
    assert "cross-validation on the training pictures" not in shown_text(at)


def test_going_back_to_automatic_keeps_the_manual_values_and_hides_the_advice(app_env):
    at = choose_manual(start_app(page=MODEL))
    at.slider(key="cfg::freeze_depth").set_value(2).run()
    at.select_slider(key="cfg::learning_rate").set_value(1e-3).run()
    at.number_input(key="cfg::epochs").set_value(7).run()
    assert any("Blocks 3-5 will train" in warning.value for warning in at.warning)
    at.radio(key="cfg::recipe").set_value("auto").run()
    assert_no_exception(at)
    values = at.session_state["config"]
    assert values["recipe"] == "auto"
    assert (values["freeze_depth"], values["learning_rate"], values["epochs"]) == (2, 1e-3, 7)
    assert not any("will train" in warning.value for warning in at.warning)  # the advice is about manual settings
    choose_manual(at)
    assert at.slider(key="cfg::freeze_depth").value == 2
    assert at.select_slider(key="cfg::learning_rate").value == 1e-3
    assert at.number_input(key="cfg::epochs").value == 7
    assert any("Blocks 3-5 will train" in warning.value for warning in at.warning)


def test_settings_summary_names_the_recipe():
    from core.config import TrainConfig
    from pages import common

    auto = TrainConfig().to_dict()
    assert common.settings_summary(auto) == (
        "Automatic: VGG16 (weights imagenet), the best of linear heads on blocks 3-5 or fine-tuning block 5, "
        "chosen by cross-validation, 64 px")
    manual = {**auto, "recipe": "manual", "weights": "/somewhere/my.weights.h5", "augment": True}
    assert common.settings_summary(manual) == (
        "Manual: VGG16, weights uploaded file, 4 of 5 blocks frozen, head average pooling, Adam at learning rate "
        "0.0001, "
        "20 epochs, batch 32, 64 px, augmentation")
    assert common.FIELD_LABELS["recipe"] == "How to train"


def test_moving_the_freeze_depth_recolours_the_diagram_and_changes_the_counts(app_env):
    at = choose_manual(start_app(page=MODEL))
    colours_before = box_colours(at)
    frozen_before, trainable_before = metric(at, "Frozen parameters"), metric(at, "Trainable parameters")
    assert len(set(colours_before[:4])) == 1 and colours_before[4] != colours_before[0]  # blocks 1-4 frozen
    at.slider(key="cfg::freeze_depth").set_value(2).run()
    assert_no_exception(at)
    colours_after = box_colours(at)
    assert colours_after[:2] == colours_before[:2] and colours_after[2] != colours_before[2]
    assert metric(at, "Frozen parameters") != frozen_before
    assert metric(at, "Trainable parameters") != trainable_before
    assert int(metric(at, "Frozen parameters").replace(",", "")) == 38_720 + 221_440  # blocks 1 and 2
    annotations = " ".join(a["text"] for a in plotly_specs(at)["freeze_diagram"]["layout"]["annotations"])
    # the cut after block 2 at 64 px, in words first
    assert "saved here once per picture" in annotations and "16x16x128 numbers" in annotations
    assert at.session_state["config"]["freeze_depth"] == 2
    # blocks 3-5 train from pretrained weights: at 1e-3 the page warns and names the fix; at 1e-4 it is quiet
    assert not any("will train" in warning.value for warning in at.warning)
    at.select_slider(key="cfg::learning_rate").set_value(1e-3).run()
    assert any("Blocks 3-5 will train" in warning.value for warning in at.warning)
    at.select_slider(key="cfg::learning_rate").set_value(1e-4).run()
    assert not any("Blocks 3-5 will train" in warning.value for warning in at.warning)


def test_settings_survive_a_page_switch(app_env):
    at = choose_manual(start_app(page=MODEL))
    at.select_slider(key="cfg::image_size").set_value(32).run()
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.switch_page("pages/1_data.py").run()
    at.switch_page(MODEL).run()
    assert_no_exception(at)
    assert at.select_slider(key="cfg::image_size").value == 32
    assert at.radio(key="cfg::weights_choice").value == "none"
    assert at.radio(key="cfg::recipe").value == "manual"
    assert at.session_state["config"]["image_size"] == 32
    # a change still in flight when the user switches pages is kept (stored by its on_change)
    at.number_input(key="cfg::epochs").set_value(3)
    at.switch_page("pages/3_train.py").run()
    assert at.session_state["config"]["epochs"] == 3


def test_seed_preset_sets_the_seed_recipe(app_env):
    at = choose_manual(start_app(page=MODEL))
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.button(key="seed_preset").click().run()
    assert_no_exception(at)
    values = at.session_state["config"]
    assert (values["head"], values["optimizer"], values["learning_rate"], values["epochs"]) == ("seed", "sgd", 1e-4, 10)
    assert values["weights"] == "none"  # kept as the user chose
    assert values["recipe"] == "manual"
    assert at.selectbox(key="cfg::head").value == "seed"


def assert_no_server_detail(text: str) -> None:
    for leak in ("/", "Errno", "googleapis", ".keras", "Name or service"):
        assert leak not in text, (leak, text)


def page_text_without_escapes(at) -> str:
    return shown_text(at).replace("\\", "")


def test_offline_the_model_and_train_pages_say_so_before_start_and_offer_random_weights(app_env, no_cached_weights):
    no_cached_weights(False)
    at = start_app(page=MODEL)
    text = page_text_without_escapes(at)
    assert "The ImageNet weights are not on this server, and it cannot download them" in text
    assert "python -m core fetch-weights" in text
    assert not at.success and "These settings are valid, but a run would fail" in text  # no green light
    assert_no_server_detail(" ".join(str(w.value) for w in at.warning))
    at.switch_page(TRAIN).run()
    assert_no_exception(at)
    warning = " ".join(str(w.value) for w in at.warning)
    assert "cannot download them" in warning and "Choose here how to start instead" in warning
    assert_no_server_detail(warning)
    assert at.file_uploader(key="weights_upload_train") is not None
    at.button(key="weights_random").click().run()
    assert_no_exception(at)
    assert at.session_state["config"]["weights"] == "none"
    assert "Weights: Random start" in shown_text(at) and "cannot download" not in shown_text(at)
    assert "weights none" in shown_text(at)  # the settings line above Start follows
    at.switch_page(MODEL).run()
    assert at.radio(key="cfg::weights_choice").value == "none"


def test_online_the_page_says_the_weights_download_at_start(app_env, no_cached_weights):
    no_cached_weights(True)
    text = page_text_without_escapes(start_app(page=MODEL))
    assert "they download once (58 MB) when training starts" in text


def test_the_servers_weights_file_is_named_in_words_not_by_its_path(app_env, no_cached_weights, monkeypatch,
                                                                    pretrained_weights):
    from core import weights

    no_cached_weights(False)
    monkeypatch.setenv(weights.SERVER_WEIGHTS_ENV, pretrained_weights)
    at = start_app(page=MODEL)
    assert "The ImageNet choice uses the server's VGG16 weights file, which is ready." in page_text_without_escapes(at)
    assert "cannot download" not in shown_text(at)
    assert "vgg16" not in shown_text(at).replace("VGG16", "")  # neither the file's name nor its folder
    at.switch_page(TRAIN).run()
    assert "Weights: The ImageNet choice uses the server's VGG16 weights file" in page_text_without_escapes(at)


def upload_weights(at, data: bytes, name: str = "my_vgg16.weights.h5"):
    at.file_uploader(key="weights_upload_model").set_value((name, data, "application/octet-stream")).run()
    assert_no_exception(at)
    return at


def test_the_weights_choice_never_changes_silently(app_env, no_cached_weights, pretrained_weights):
    no_cached_weights(False)
    at = start_app(page=MODEL)
    at.radio(key="cfg::weights_choice").set_value("file").run()
    # a file chosen but none uploaded: nothing may start from other weights than the radio shows
    assert at.session_state["config"]["weights"] == ""
    assert "You chose a weights file, but none is uploaded yet" in shown_text(at)
    assert not at.success or "These settings are valid" not in " ".join(str(s.value) for s in at.success)
    upload_weights(at, b"not weights at all", "mine.h5")
    assert "could not load mine.h5" in page_text_without_escapes(at)
    assert at.session_state["config"]["weights"] == ""
    upload_weights(at, Path(pretrained_weights).read_bytes())
    path = at.session_state["config"]["weights"]
    assert path.endswith("my_vgg16.weights.h5") and Path(path).is_file()
    assert "Using your uploaded file my_vgg16.weights.h5" in page_text_without_escapes(at).replace("**", "")
    assert "Your uploaded weights file my_vgg16.weights.h5 is ready" in page_text_without_escapes(at)
    at.radio(key="cfg::weights_choice").set_value("none").run()
    assert at.session_state["config"]["weights"] == "none"
    at.radio(key="cfg::weights_choice").set_value("file").run()
    assert at.session_state["config"]["weights"] == path  # the upload is found again, not forgotten
    assert at.radio(key="cfg::weights_choice").value == "file"
    at.switch_page(TRAIN).run()
    assert "Weights: Your uploaded weights file my_vgg16.weights.h5 is ready" in page_text_without_escapes(at)


def test_settings_and_the_uploaded_weights_survive_a_reload_and_a_deep_link(app_env, no_cached_weights,
                                                                            pretrained_weights):
    no_cached_weights(False)
    token = "reload-test-token-1234"
    at = choose_manual(start_app(query={"session": token}, page=MODEL))
    at.select_slider(key="cfg::image_size").set_value(32).run()
    at.number_input(key="cfg::epochs").set_value(3).run()
    at.radio(key="cfg::weights_choice").set_value("file").run()
    upload_weights(at, Path(pretrained_weights).read_bytes())
    path = at.session_state["config"]["weights"]
    assert Path(path).is_file()
    at.radio(key="cfg::weights_choice").set_value("none").run()  # the upload is kept with the session too

    reloaded = start_app(query={"session": token}, page=MODEL)  # a new browser session, same link
    assert reloaded.radio(key="cfg::recipe").value == "manual"
    assert reloaded.select_slider(key="cfg::image_size").value == 32
    assert reloaded.number_input(key="cfg::epochs").value == 3
    assert reloaded.radio(key="cfg::weights_choice").value == "none"
    reloaded.radio(key="cfg::weights_choice").set_value("file").run()
    assert reloaded.session_state["config"]["weights"] == path

    deep = start_app(query={"session": token}, page=TRAIN)  # a link to the Train page, opened first
    assert "Settings (manual):" in shown_text(deep) and "weights uploaded file" in shown_text(deep)
    assert "3 epochs" in shown_text(deep) and "32 px" in shown_text(deep)
    other = start_app(page=MODEL)  # another session keeps its own defaults
    assert other.radio(key="cfg::recipe").value == "auto"


def test_learning_rate_finder_suggests_a_rate_that_can_be_applied(app_env):
    at = load_demo(start_app())
    at.switch_page(MODEL).run()
    choose_manual(at)
    at.select_slider(key="cfg::image_size").set_value(32).run()
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.button(key="lr_find").click().run(timeout=240)
    assert_no_exception(at)
    result = at.session_state["lr_result"]["result"]
    assert len(result["losses"]) >= 5 and result["suggested"] > 0
    assert "lr_curve" in plotly_specs(at)
    at.button(key="lr_apply").click().run()
    applied = at.session_state["config"]["learning_rate"]
    assert abs(math.log10(applied) - math.log10(result["suggested"])) < 0.1
    assert at.select_slider(key="cfg::learning_rate").value == applied
