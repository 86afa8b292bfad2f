"""A run of recipe auto through AppTest, on tiny real runs (32 px, weights none, 1 epoch): its accuracy is
named as it was measured on every page (with 8 pictures a class there is no validation split, so it is
cross-validated), the Train page's picture is the leaderboard, curves show only what trained epoch by
epoch, and the progress bar names the auto phases in plain words."""
import pytest

from app_helpers import assert_no_exception, plotly_specs, shown_text, start_app
from candidate_fixtures import OWNER, RUN_ID, auto_run, file_run, fine_tune_auto_run
from core import measured, runs

TRAIN, EVALUATE, PREDICT = "pages/3_train.py", "pages/5_evaluate.py", "pages/6_predict.py"
CROSS_VALIDATED = measured.MEASURES["cross_validation"]


@pytest.fixture
def filed(isolated_workspace):
    """Files a finished run as OWNER's in this test's workspace; the job manager is shut down after."""
    yield lambda source: file_run(source, isolated_workspace)
    from pages import common

    common._job_manager_for(str(isolated_workspace / "runs")).shutdown(stop_running=True, timeout=5)
    common._job_manager_for.clear()


@pytest.fixture
def cross_validated_run(tmp_path_factory, demo_dir, filed):
    run_dir = filed(auto_run(tmp_path_factory, demo_dir))
    assert runs.read_json(run_dir / "metrics.json")["evaluation"] == "cross_validation"
    return run_dir


def open_page(page: str):
    at = start_app({"session": OWNER, "run": RUN_ID}, page=page)
    assert not at.error, [e.value for e in at.error]
    return at


def unescaped(text: str) -> str:
    return text.replace("\\", "")


def percent(run_dir) -> str:
    return f"{runs.read_status(run_dir)['val_accuracy']:.0%}"


def test_the_train_page_names_the_accuracy_as_measured_and_draws_the_leaderboard_not_a_curve(cross_validated_run):
    at = open_page(TRAIN)
    text = unescaped(shown_text(at))
    accuracy = percent(cross_validated_run)
    assert f"Finished, cross-validated accuracy {accuracy}, " in text
    assert CROSS_VALIDATED.explained in text  # what that means, under the state line
    assert f"cross-validated accuracy {accuracy}" in unescaped(" ".join(m.value for m in at.sidebar.markdown))
    assert "validation accuracy" not in text.replace("cross-validated accuracy", "")
    # the settings line: the recipe in the label, no second colon
    [settings] = [m.value for m in at.markdown if m.value.startswith("**Settings")]
    assert unescaped(settings).startswith("**Settings (automatic):** VGG16 (weights imagenet), the best of")
    assert "Automatic:" not in settings  # the session's settings: the defaults
    # the leaderboard is the picture; a linear head has no curve (its one fit would be a lone point)
    charts = plotly_specs(at)
    assert f"candidates-{RUN_ID}" in charts and f"curves-{RUN_ID}" not in charts
    assert "No curves to draw: the chosen model is a linear head" in text
    table = at.dataframe[0].value
    assert table["accuracy"][0] == f"{accuracy} (cross-validated)" and table["how"][0] == "automatic"
    # an automatic run chose these itself (its leaderboard says what): the unused manual settings are not shown
    assert table["head"][0] == "chosen" and table["frozen blocks"][0] == "chosen" and table["learning rate"][0] == ""


def test_a_fine_tune_candidate_is_drawn_as_curves_of_its_own(tmp_path_factory, filed):
    run_dir = filed(fine_tune_auto_run(tmp_path_factory))
    board = runs.read_json(run_dir / "candidates.json")
    assert any(c["kind"] == "fine_tune" for c in board["candidates"])
    at = open_page(TRAIN)
    charts = plotly_specs(at)
    assert f"candidates-{RUN_ID}" in charts
    names = {trace["name"] for trace in charts[f"curves-{RUN_ID}"]["data"]}
    # the candidate's epochs, named so; the final model only when it trained epoch by epoch too
    assert {"fine-tuning candidate training loss", "fine-tuning candidate validation accuracy"} <= names
    fine_tune_won = board["candidates"][board["chosen"]]["kind"] == "fine_tune"
    assert any(name.startswith("final model") for name in names) == fine_tune_won
    assert "Fine-tuning, epoch by epoch" in shown_text(at)


def test_evaluate_names_the_pictures_and_the_accuracy_of_a_cross_validated_run(cross_validated_run):
    at = open_page(EVALUATE)
    assert_no_exception(at)
    picker = at.selectbox(key="evaluate_run")
    assert picker.options == [f"{RUN_ID} (VGG16, automatic, cross-validated accuracy {percent(cross_validated_run)})"]
    assert at.radio(key="eval_source").options[0] == "Its training pictures, cross-validated"
    [accuracy] = [m for m in at.metric if "ccuracy" in m.label]
    assert accuracy.label == "Cross-validated accuracy" and accuracy.proto.help == CROSS_VALIDATED.explained
    assert int(at.metric[1].value) == 32  # every picture, each predicted by a model that did not see it
    assert f"Measured on: {CROSS_VALIDATED.data}" in unescaped(shown_text(at))
    assert "validation" not in unescaped(shown_text(at)).lower().replace("cross-validat", "")  # the glossary too


def test_predict_names_the_accuracy_as_measured(cross_validated_run):
    at = open_page(PREDICT)
    assert_no_exception(at)
    [label] = at.selectbox(key="predict_run").options
    assert label.endswith(f"(VGG16, automatic, cross-validated accuracy {percent(cross_validated_run)})")
    assert "head gap" not in label  # an auto run's manual settings are unused defaults


def test_the_progress_bar_names_every_phase_of_an_auto_run_in_words(tmp_path_factory, demo_dir):
    """The real event streams of both auto runs, cut at each phase's start: the label is the phase's own
    words, never its raw name; and while the fine-tune candidate trains, its epochs and batches show."""
    from pages import common

    seen = set()
    for run_dir in (auto_run(tmp_path_factory, demo_dir), fine_tune_auto_run(tmp_path_factory)):
        events = runs.read_all_events(run_dir)
        for index, event in enumerate(events):
            if event.get("type") == "phase_start":
                summary = common.summarize_events(events[:index + 1], now=event["time"])
                assert summary["phase"] == event["name"]
                assert summary["phase_label"] == common.PHASE_WORDS[event["name"]], event["name"]
                seen.add(event["name"])
            elif event.get("type") == "batch" and event.get("phase") == "fine_tune_candidate":
                summary = common.summarize_events(events[:index + 1], now=event["time"])
                assert summary["phase_label"].startswith("Trying fine-tuning block 5")
                assert f"batch {event['batch']} of {event['steps']}" in summary["training_label"]
    assert {"candidates", "fine_tune_candidate", "final_fit"} <= seen
    assert common.PHASE_WORDS["candidates"].startswith("Scoring the candidate models")
    assert common.PHASE_WORDS["final_fit"] == "Training the chosen model on every training picture"
