"""The Model page: the freeze-depth diagram, the settings kept in session state, the seed preset,
the ImageNet notice and the learning-rate finder, driven through AppTest."""
import math

from app_helpers import app_env, assert_no_exception, load_demo, plotly_specs, shown_text, start_app  # noqa: F401

MODEL = "pages/2_model.py"


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def box_colours(at):
    """Fill colour of each box in the diagram: five blocks, then the head."""
    return [shape["fillcolor"] for shape in plotly_specs(at)["freeze_diagram"]["layout"]["shapes"]
            if shape["type"] == "rect"]


def test_model_page_loads_with_valid_defaults(app_env):
    at = start_app(page=MODEL)
    assert at.title[0].value == "Model"
    assert "These settings are valid" in shown_text(at)
    assert at.session_state["config"]["freeze_depth"] == 4  # the measured default


def test_moving_the_freeze_depth_recolours_the_diagram_and_changes_the_counts(app_env):
    at = start_app(page=MODEL)
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
    at = start_app(page=MODEL)
    at.select_slider(key="cfg::image_size").set_value(32).run()
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.switch_page("pages/1_data.py").run()
    at.switch_page(MODEL).run()
    assert_no_exception(at)
    assert at.select_slider(key="cfg::image_size").value == 32
    assert at.radio(key="cfg::weights_choice").value == "none"
    assert at.session_state["config"]["image_size"] == 32
    # a change still in flight when the user switches pages is kept (stored by its on_change)
    at.number_input(key="cfg::epochs").set_value(3)
    at.switch_page("pages/3_train.py").run()
    assert at.session_state["config"]["epochs"] == 3


def test_seed_preset_sets_the_seed_recipe(app_env):
    at = start_app(page=MODEL)
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.button(key="seed_preset").click().run()
    assert_no_exception(at)
    values = at.session_state["config"]
    assert (values["head"], values["optimizer"], values["learning_rate"], values["epochs"]) == ("seed", "sgd", 1e-4, 10)
    assert values["weights"] == "none"  # kept as the user chose
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
