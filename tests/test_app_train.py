"""The Train page: a bad setting launches nothing, nor do weights this server cannot have (Start is off, saying
why); a tiny real run (32 px, weights none, 1 epoch) is started, watched and re-attached from the URL; another
session cannot open it; pickers follow a new run; a failed run's words name no workspace file."""
from app_helpers import (app_env, assert_no_exception, errors, load_demo, no_cached_weights,  # noqa: F401
                         plotly_specs, shown_text, start_app, wait_for)

TRAIN = "pages/3_train.py"
MODEL = "pages/2_model.py"
START_IS_OFF = "Start is off: the chosen weights are not on this server"


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


def captions(at) -> str:
    return "\n".join(str(caption.value) for caption in at.caption)


def test_offline_start_and_the_learning_rate_finder_wait_for_weights_this_server_has(app_env, no_cached_weights):
    """ImageNet chosen, not cached, no server file, offline: Start is off with the reason beside it (a run would
    fail after it started), as is the learning-rate finder, which trains the chosen weights too; random weights
    turn both on."""
    no_cached_weights(False)
    at = load_demo(start_app())
    at.switch_page(TRAIN).run()
    assert at.session_state["config"]["weights"] == "imagenet"
    assert at.button(key="start").disabled
    assert START_IS_OFF in captions(at)
    at.button(key="weights_random").click().run()
    assert_no_exception(at)
    assert not at.button(key="start").disabled
    assert START_IS_OFF not in captions(at)

    at.switch_page(MODEL).run()
    at.radio(key="cfg::recipe").set_value("manual").run()
    assert not at.button(key="lr_find").disabled
    at.radio(key="cfg::weights_choice").set_value("imagenet").run()
    assert_no_exception(at)
    assert at.button(key="lr_find").disabled
    assert "The test needs the chosen weights" in captions(at)


def test_a_bad_setting_names_the_field_and_launches_nothing(app_env):
    at = load_demo(start_app())
    from core.config import TrainConfig

    # weights "none": only the bad settings keep this run from starting (ImageNet may be missing here)
    at.session_state["config"] = {**TrainConfig().to_dict(), "weights": "none", "epochs": 0,
                                  "learning_rate": float("nan")}
    at.switch_page(TRAIN).run()
    [problem] = errors(at)
    assert "**Epochs**" in problem and "**Learning rate**" in problem and "whole number from 1 to 1000" in problem
    assert "learning_rate" not in problem  # the Model page's words, not the setting's name in code
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


OWNER = "test-owner-token-train-0123"


def file_finished_run(workspace, run_id: str, **settings) -> str:
    """A finished manual run of OWNER on disk as the job manager files one (config, job, status, two epochs),
    with ``settings`` changed from the defaults; no model (the Train page only reads the record)."""
    import json

    from core.config import TrainConfig

    run_dir = workspace / "runs" / run_id
    run_dir.mkdir(parents=True)
    config = {**TrainConfig().to_dict(), "recipe": "manual", **settings}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "job.json").write_text(json.dumps({"owner": OWNER, "data": "", "submitted": 0}))
    (run_dir / "status.json").write_text(json.dumps({"state": "done", "val_accuracy": 0.75, "best_epoch": 1,
                                                     "evaluation": "validation_split", "train_seconds": 3}))
    epochs = [{"type": "epoch", "phase": "train", "epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.5,
               "val_loss": 1.2, "val_accuracy": 0.75 - 0.1 * (epoch - 1)} for epoch in (1, 2)]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in epochs))
    return run_id


def test_the_watch_and_overlay_pickers_follow_a_new_run(app_env):
    """After Start the pickers show the new run (they kept pointing at the run before), the overlay keeps
    the run before beside it, and legends name runs by the settings that differ, not by their ids."""
    before = file_finished_run(app_env, "20260101-090000-before0001", learning_rate=0.001)
    older = file_finished_run(app_env, "20260101-080000-older00001", learning_rate=0.0001)
    at = load_demo(start_app({"session": OWNER, "run": before}))
    from core.config import TrainConfig

    at.session_state["config"] = {**TrainConfig().to_dict(), "recipe": "manual", "weights": "none", "image_size": 32,
                                  "epochs": 1, "batch_size": 4}  # tiny, as tiny_settings makes it, in one step
    at.switch_page(TRAIN).run()
    assert at.selectbox(key="watch_run").value == before
    assert at.multiselect(key="overlay_runs").value == [before]

    at.button(key="start").click().run()
    assert_no_exception(at)
    new = at.session_state["run_id"]
    assert new not in (before, older)
    assert at.selectbox(key="watch_run").value == new
    assert at.multiselect(key="overlay_runs").value == [new, before]

    at.multiselect(key="overlay_runs").set_value([before, older]).run()
    assert_no_exception(at)
    legend = {trace["name"] for trace in plotly_specs(at)["overlay"]["data"]}
    assert "learning rate 0.001: validation accuracy" in legend, legend
    assert "learning rate 0.0001: validation accuracy" in legend, legend
    assert not any(before in name or older in name for name in legend), legend
    # the headline accuracy is the best epoch's, while the curve ends lower: one sentence says so
    at.selectbox(key="watch_run").set_value(older).run()
    at.button(key="show_run").click().run()
    assert_no_exception(at)
    assert "best epoch" in shown_text(at)


def test_a_failed_runs_words_name_no_workspace_file(app_env):
    """Core's message for a run that could not write quotes the file's path, whose folders hold the session
    token: the page says "a file on the server" instead, in the run's state and in the sidebar."""
    import json

    run_id = file_finished_run(app_env, "20260101-100000-failed0001")
    events = app_env / "runs" / run_id / "events.jsonl"
    (app_env / "runs" / run_id / "status.json").write_text(json.dumps({
        "state": "failed", "error": f"cannot write {events} (Permission denied): check that the workspace folder "
                                    "($TRANSFER_STUDIO_HOME, default ./workspace) exists and is writable"}))
    at = start_app({"session": OWNER, "run": run_id}, page=TRAIN)
    text = shown_text(at).replace("\\", "")
    assert "Failed: cannot write a file on the server (Permission denied)" in text, text
    assert str(app_env) not in text and OWNER not in text
