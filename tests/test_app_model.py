"""The Model page: Automatic and Manual training, the freeze-depth diagram, the settings kept in session
state, the seed preset, the ImageNet notice and the learning-rate finder, driven through AppTest."""
import math

from app_helpers import app_env, assert_no_exception, load_demo, plotly_specs, shown_text, start_app  # noqa: F401

MODEL = "pages/2_model.py"


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
        "Manual: VGG16, weights uploaded file, 4 of 5 blocks frozen, head gap, adam at learning rate 1.0e-04, "
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
    assert "feature cache: 16x16x128" in annotations  # the cut after block 2 at 64 px
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


def test_imagenet_without_the_cached_file_says_it_will_download(app_env, monkeypatch, tmp_path):
    from core import models

    monkeypatch.setattr(models, "imagenet_cache_path", lambda: tmp_path / "nothing-here.h5")
    at = start_app(page=MODEL)
    text = shown_text(at)
    assert "58 MB" in text and "None (random start)" in text


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
