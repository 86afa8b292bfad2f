"""core.leaderboard: reading an auto run's candidates from candidates.json or its events, never raising on
a malformed record, and the bar chart the Train page and the report draw."""
import json

from candidate_fixtures import HOSTILE_NAME, REASON, SCORING, candidate_events, candidates_record
from core import leaderboard


def test_the_file_reads_best_first_with_the_choice(tmp_path):
    record = candidates_record()
    (tmp_path / "candidates.json").write_text(json.dumps(record))
    board = leaderboard.read(tmp_path)
    assert [c.accuracy for c in board.candidates] == [0.91, 0.84, 0.78, 0.62]
    assert board.chosen_candidate.name == record["candidates"][1]["name"]
    assert (board.reason, board.scoring, board.evaluation) == (REASON, SCORING, "validation_split")
    fine_tune = board.candidates[2]
    assert (fine_tune.spread, fine_tune.folds, fine_tune.held_out) == (None, None, 16)
    assert leaderboard.describe(fine_tune) == "78% on 16 held-out training pictures"
    assert leaderboard.describe(board.candidates[0]) == "91% on average over 5 folds (± 3%)"



def test_a_fine_tune_winner_leads_even_below_a_linear_heads_number(tmp_path):
    """Fine-tuning wins on a paired comparison (held-out pictures), so its number can be lower than the best
    linear head's cross-validated one: the chart still shows the winner first, where the sentence names it."""
    record = candidates_record()
    record["chosen"] = 3  # the fine-tune candidate, 0.78
    (tmp_path / "candidates.json").write_text(json.dumps(record))
    board = leaderboard.read(tmp_path)
    assert [c.accuracy for c in board.candidates] == [0.78, 0.91, 0.84, 0.62]
    assert board.candidates[0] == board.chosen_candidate

def test_events_give_the_leaderboard_so_far():
    record = candidates_record()
    assert leaderboard.from_events([{"type": "phase", "name": "load_data"}]) is None  # a manual run
    board = leaderboard.from_events(candidate_events(record, upto=2, choice=False))
    assert len(board.candidates) == 2 and board.total == 4 and board.chosen is None and not board.scoring_done
    # an index seen twice counts once
    repeated = candidate_events(record, upto=1, choice=False) + candidate_events(record)
    board = leaderboard.from_events(repeated)
    assert len(board.candidates) == 4 and board.chosen == 1 and board.reason == REASON and board.scoring_done
    record["candidates"][0]["cv_accuracy"] = 0.91  # a tie the run broke on another measure: the chosen leads
    assert leaderboard.from_events(candidate_events(record)).candidates[0].index == 1


def test_the_file_wins_over_the_events_and_a_broken_file_falls_back_to_them(tmp_path):
    record = candidates_record()
    events = candidate_events(record, upto=2, choice=False)
    assert leaderboard.read(tmp_path) is None and leaderboard.read(tmp_path, events).total == 4
    (tmp_path / "candidates.json").write_text(json.dumps(record))
    assert len(leaderboard.read(tmp_path, events).candidates) == 4
    (tmp_path / "candidates.json").write_text('{"candidates": [')
    assert leaderboard.read_file(tmp_path) is None and len(leaderboard.read(tmp_path, events).candidates) == 2


def test_records_outside_the_schema_are_left_out(tmp_path):
    good = candidates_record()["candidates"][0]
    rows = [good, None, "x", {**good, "name": ""}, {**good, "cv_accuracy": "91%"}, {**good, "cv_accuracy": 1.5},
            {**good, "cv_accuracy": float("nan")}, {**good, "cv_accuracy": True},
            {**good, "cv_std": "wide", "folds": -1, "seconds": None, "name": "odd   but\nfine"}]
    (tmp_path / "candidates.json").write_text(json.dumps({"candidates": rows, "chosen": 3, "reason": 7}))
    board = leaderboard.read_file(tmp_path)
    assert [c.index for c in board.candidates] == [0, 8]
    assert board.candidates[1].name == "odd but fine" and board.candidates[1].spread is None
    assert board.chosen is None and board.reason == ""  # the chosen record was left out; no sentence
    for content in ("[]", '{"candidates": []}', '{"candidates": [null]}', "null"):
        (tmp_path / "candidates.json").write_text(content)
        assert leaderboard.read_file(tmp_path) is None, content
    (tmp_path / "candidates.json").write_bytes(b"\xff\xfe")
    assert leaderboard.read_file(tmp_path) is None


def test_the_chart_marks_the_chosen_one_and_escapes_names():
    record = candidates_record(hostile=True)
    record["candidates"].append(dict(record["candidates"][0]))  # two candidates of one name: two bars
    board = leaderboard.from_events(candidate_events(record))
    figure = leaderboard.figure(board).to_plotly_json()
    bars, whiskers = figure["data"]
    labels = list(bars["y"])
    assert len(set(labels)) == 5
    assert not any("<script" in label for label in labels) and any("&lt;script&gt;" in label for label in labels)
    assert not any("<script" in hover for hover in bars["customdata"])
    chosen = [i for i, colour in enumerate(bars["marker"]["color"]) if colour == leaderboard.CHOSEN_COLOUR]
    assert chosen == [0] and labels[0].startswith("<b>") and bars["text"][0] == "91% · chosen"
    assert all(len(line) <= leaderboard.LABEL_WIDTH for label in labels
               for line in label.replace("<b>", "").replace("</b>", "").split("<br>")
               if "&" not in line)
    assert list(whiskers["y"]) == [label for label, text in zip(labels, bars["text"]) if "held-out" not in text]
    assert figure["layout"]["xaxis"]["title"]["text"] == leaderboard.AXIS_TITLE
    assert HOSTILE_NAME not in json.dumps(figure)


def test_only_the_trainings_that_went_epoch_by_epoch_are_curves():
    """Fine-tuning (candidate, final model) gives one group each; a linear fit's lone epoch, none."""
    def trained(phase, epochs=2, steps=3):
        return [event for epoch in range(1, epochs + 1)
                for event in [{"type": "batch", "phase": phase, "epoch": epoch, "batch": step, "steps": steps,
                               "loss": 1.0} for step in range(1, steps + 1)]
                + [{"type": "epoch", "phase": phase, "epoch": epoch, "loss": 1.0, "accuracy": 0.5}]]

    linear_fit = [{"type": "epoch", "phase": "final_fit", "epoch": 1, "loss": 0.3, "val_accuracy": 0.4}]
    scoring = [{"type": "phase_start", "name": "candidates"}, *candidate_events(candidates_record())]
    assert leaderboard.trained_phases(scoring + linear_fit) == {}
    assert leaderboard.trained_phases(trained("head") + trained("fine_tune")) == {}  # a manual run's phases
    groups = leaderboard.trained_phases(scoring + trained("fine_tune_candidate") + linear_fit + [None, "x"])
    assert list(groups) == ["fine-tuning candidate"] and len(groups["fine-tuning candidate"]) == 8
    groups = leaderboard.trained_phases(trained("fine_tune_candidate") + trained("final_fit", epochs=3))
    assert list(groups) == ["fine-tuning candidate", "final model"]
    assert [e["epoch"] for e in groups["final model"] if e["type"] == "epoch"] == [1, 2, 3]
