"""The Train page: a bad setting launches nothing; a tiny real run (32 px, weights none, 1 epoch)
is started, watched and re-attached from the URL; another session cannot open it."""
from app_helpers import (app_env, assert_no_exception, errors, load_demo, plotly_specs,  # noqa: F401
                         shown_text, start_app, wait_for)

TRAIN = "pages/3_train.py"


def tiny_settings(at):
    """Set Manual, 32 px, weights none, 1 epoch through the Model page's widgets, as a user would."""
    at.switch_page("pages/2_model.py").run()
    at.radio(key="cfg::recipe").set_value("manual").run()
    at.select_slider(key="cfg::image_size").set_value(32).run()
    at.radio(key="cfg::weights_choice").set_value("none").run()
    at.number_input(key="cfg::epochs").set_value(1).run()
    at.number_input(key="cfg::batch_size").set_value(4).run()
    assert_no_exception(at)
    return at


def test_train_page_without_data_says_what_to_do(app_env):
    at = start_app(page=TRAIN)
    assert "No dataset yet" in shown_text(at)
    assert at.button(key="start").disabled


def test_a_bad_setting_names_the_field_and_launches_nothing(app_env):
    at = load_demo(start_app())
    from core.config import TrainConfig

    at.session_state["config"] = {**TrainConfig().to_dict(), "epochs": 0, "learning_rate": float("nan")}
    at.switch_page(TRAIN).run()
    [problem] = errors(at)
    assert "epochs" in problem and "learning_rate" in problem and "whole number from 1 to 1000" in problem
    at.button(key="start").click().run()
    assert_no_exception(at)
    assert any("Nothing was started" in message for message in errors(at))
    assert not (app_env / "runs").exists() or not any((app_env / "runs").iterdir())
    assert "run_id" not in at.session_state


def test_a_tiny_run_trains_and_is_reattached_from_the_url(app_env):
    from core import runs

    at = tiny_settings(load_demo(start_app()))
    at.switch_page(TRAIN).run()
    at.button(key="start").click().run()
    assert_no_exception(at)
    run_id = at.session_state["run_id"]
    assert at.query_params["run"] == run_id
    run_dir = app_env / "runs" / run_id
    config = runs.read_json(run_dir / "config.json")
    assert (config["image_size"], config["weights"], config["epochs"]) == (32, "none", 1)

    status = wait_for(lambda: (s := runs.read_status(run_dir)) and s.get("state") in runs.FINISHED_STATES and s,
                      timeout=300, message="the run to finish")
    assert status["state"] == "done", status
    at.run()
    assert_no_exception(at)
    assert "Finished" in shown_text(at)
    curves = plotly_specs(at)[f"curves-{run_id}"]
    names = {trace["name"] for trace in curves["data"]}
    assert {"training loss", "validation loss", "training accuracy", "validation accuracy"} <= names
    assert at.dataframe[0].value["run"][0] == run_id  # the runs table

    # a reload or a new tab with the same URL re-attaches to the run
    again = start_app({"session": at.query_params["session"], "run": run_id}, page=TRAIN)
    assert again.session_state["run_id"] == run_id
    assert "Finished" in shown_text(again)
    # another session cannot open it, even knowing its id
    stranger = start_app({"run": run_id})
    assert any("no run" in message.lower() for message in errors(stranger))
    assert "run_id" not in stranger.session_state
