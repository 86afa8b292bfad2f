"""The auto recipe's leaderboard: the candidate models a run scored on its training pictures, read from
``candidates.json`` once written or from the run's ``candidate`` and ``recipe`` events while it scores,
and drawn as one bar chart for the Train page and the report; and which of the run's trainings went epoch
by epoch, the only ones with curves worth drawing beside it.

Both sources are written by another process and may be cut short or malformed: reading never raises,
a record that does not fit the schema is left out, and what cannot be read at all gives None.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CANDIDATES_FILE = "candidates.json"
CROSS_VALIDATION_HELP = (
    "Cross-validation: the training pictures are cut into equal parts (folds). Each candidate learns "
    "from all parts but one and is tested on the one left out, once for every part, so every picture "
    "is tested once and none is tested by a model that saw it. The bar is the average accuracy, the "
    "whisker how much it varied from part to part.")
AXIS_TITLE = "accuracy in cross-validation"
MEASURED = {  # candidates.json "evaluation": how the run's own accuracy (metrics.json) was measured
    "cross_validation": "the run's own accuracy was measured the same way",
    "validation_split": "the run's own accuracy was measured afterwards, on validation pictures no candidate saw",
    "held_out": "the run's own accuracy is the fine-tuning candidate's, on the training pictures held out from it",
}
CHOSEN_COLOUR = "#1f77b4"         # the app's first curve colour
OTHER_COLOUR = "#b8c2cf"
LABEL_WIDTH = 34                  # characters per line of a candidate's name on the chart
NAME_LIMIT = 120


@dataclass(frozen=True)
class Candidate:
    """One scored candidate, as the chart and the report need it."""

    index: int                    # position in candidates.json / the events' "index"
    name: str                     # plain words, as written by the run
    accuracy: float               # 0..1, mean over folds (or on the held-out part)
    spread: float | None          # standard deviation over folds; None when scored on one part
    folds: int | None
    held_out: int | None          # held-out training pictures (fine-tuning), else None
    seconds: float | None

    def scored_on(self) -> str:
        """How the accuracy was measured, in words: "5 folds" or "16 held-out training pictures"."""
        if self.folds:
            return f"{self.folds} folds"
        if self.held_out:
            return f"{self.held_out} held-out training pictures"
        return "held-out training pictures"


@dataclass(frozen=True)
class Leaderboard:
    """What a run's candidates.json (or its events so far) says, in the shape the chart and pages use."""

    candidates: tuple[Candidate, ...]   # best first
    chosen: int | None                  # index of the candidate kept; None while still scoring
    reason: str                         # one plain sentence, or "" before the choice
    scoring: str                        # one plain sentence on how candidates were scored, or ""
    evaluation: str | None              # how metrics.json was measured: "cross_validation", "validation_split"
    total: int | None                   # candidates to score in all (known from the events)

    @property
    def chosen_candidate(self) -> Candidate | None:
        return next((c for c in self.candidates if c.index == self.chosen), None)

    @property
    def measured(self) -> str:
        """How the run's own accuracy was measured, in words ("" when the file does not say)."""
        return MEASURED.get(self.evaluation, "")

    @property
    def scoring_done(self) -> bool:
        return self.chosen is not None or (self.total is not None and len(self.candidates) >= self.total)


# ---------------------------------------------------------------------- reading

def read(run_dir: str | os.PathLike, events: list[dict] | None = None) -> Leaderboard | None:
    """The run's leaderboard: from candidates.json when it is there and readable, else from ``events``
    (the run's events so far); None for a run that scored no candidate (the manual recipe)."""
    board = read_file(run_dir)
    if board is None and events:
        board = from_events(events)
    return board


def read_file(run_dir: str | os.PathLike) -> Leaderboard | None:
    """candidates.json as a Leaderboard; None when it is missing, unreadable or has no usable candidate."""
    path = Path(run_dir) / CANDIDATES_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
        log.warning("%s is not readable: %s", path, error)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("candidates"), list):
        log.warning("%s has no list of candidates", path)
        return None
    candidates = [_candidate(item, index) for index, item in enumerate(record["candidates"])]
    return _board(candidates, record.get("chosen"), record.get("reason"), record.get("scoring"),
                  record.get("evaluation"), total=len(record["candidates"]))


def from_events(events: list[dict]) -> Leaderboard | None:
    """The leaderboard so far from a run's ``candidate`` and ``recipe`` events (None before the first)."""
    by_index: dict[int, Candidate | None] = {}
    total, recipe = None, None
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "candidate":
            index = event.get("index")
            if _is_int(index):
                by_index[index] = _candidate(event, index)
            if _is_int(event.get("total")) and event["total"] > 0:
                total = event["total"]
        elif event.get("type") == "recipe":
            recipe = event
    if not by_index:
        return None
    recipe = recipe or {}
    return _board(list(by_index.values()), recipe.get("chosen"), recipe.get("reason"), None, None, total)


def _board(candidates, chosen, reason, scoring, evaluation, total) -> Leaderboard | None:
    kept = [c for c in candidates if c is not None]
    if not kept:
        return None
    chosen = chosen if _is_int(chosen) and any(c.index == chosen for c in kept) else None
    # The chosen one first, then the rest best first. The chosen one is usually the best by accuracy too, or
    # ties with it (the run broke the tie on another measure); a fine-tune candidate can win on a paired
    # comparison (against the linear head scored on the same held-out pictures) with a lower number than a
    # linear head's cross-validated one, and the chart must still show the winner where the sentence does.
    kept.sort(key=lambda c: (c.index != chosen, -c.accuracy, c.index))
    return Leaderboard(candidates=tuple(kept), chosen=chosen, reason=_sentence(reason), scoring=_sentence(scoring),
                       evaluation=evaluation if isinstance(evaluation, str) else None, total=total)


def _candidate(record, index: int) -> Candidate | None:
    """One record (file entry or event) as a Candidate; None when it lacks a name or an accuracy."""
    if not isinstance(record, dict):
        return None
    name, accuracy = record.get("name"), _number(record.get("cv_accuracy"))
    if not isinstance(name, str) or not name.strip() or accuracy is None or not 0 <= accuracy <= 1:
        return None
    spread = _number(record.get("cv_std"))
    folds, held_out = record.get("folds"), record.get("held_out")
    return Candidate(index=index, name=" ".join(name.split())[:NAME_LIMIT], accuracy=accuracy,
                     spread=spread if spread is not None and spread >= 0 else None,
                     folds=folds if _is_int(folds) and folds > 0 else None,
                     held_out=held_out if _is_int(held_out) and held_out > 0 else None,
                     seconds=_number(record.get("seconds")))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sentence(value) -> str:
    return " ".join(value.split())[:400] if isinstance(value, str) else ""


# ---------------------------------------------------------------------- words and the chart

def percent(value: float) -> str:
    return f"{value:.0%}"


def describe(candidate: Candidate) -> str:
    """The candidate's score in words: "91% on average over 5 folds (± 3%)"."""
    if candidate.folds:
        words = f"{percent(candidate.accuracy)} on average over {candidate.folds} folds"
        return words + (f" (± {percent(candidate.spread)})" if candidate.spread is not None else "")
    return f"{percent(candidate.accuracy)} on {candidate.scored_on()}"


def figure(board: Leaderboard):
    """A horizontal bar per candidate, best at the top: accuracy in cross-validation, the spread over
    folds as a whisker, the chosen one in colour and named so. All text is HTML-escaped (Plotly reads tags)."""
    import plotly.graph_objects as go

    rows = board.candidates
    chosen = [c.index == board.chosen for c in rows]
    labels = _unique([_label(c.name, is_chosen) for c, is_chosen in zip(rows, chosen)])
    hover = [f"<b>{html.escape(c.name, quote=False)}</b><br>{html.escape(describe(c), quote=False)}"
             + (f"<br>scored in {c.seconds:.1f} s" if c.seconds is not None else "")
             + ("<br><b>chosen</b>" if is_chosen else "") for c, is_chosen in zip(rows, chosen)]
    bars = go.Bar(
        x=[c.accuracy for c in rows], y=labels, orientation="h",
        marker={"color": [CHOSEN_COLOUR if flag else OTHER_COLOUR for flag in chosen]},
        text=[_bar_text(c, flag) for c, flag in zip(rows, chosen)],
        textposition="inside", insidetextanchor="start", constraintext="none",
        textfont={"color": ["#fff" if flag else "#222" for flag in chosen]},
        customdata=hover, hovertemplate="%{customdata}<extra></extra>", hoverlabel={"align": "left"})
    # The spread as whiskers on an invisible trace of its own: a bar without a spread (scored on one
    # held-out part) would otherwise still get a whisker's cap.
    spread = [(c, label) for c, label in zip(rows, labels) if c.spread is not None]
    whiskers = go.Scatter(
        x=[c.accuracy for c, _ in spread], y=[label for _, label in spread], mode="markers",
        marker={"opacity": 0}, hoverinfo="skip", cliponaxis=False,
        error_x={"type": "data", "array": [c.spread for c, _ in spread], "color": "#333", "thickness": 1.5,
                 "width": 5})
    result = go.Figure([bars, whiskers])
    result.update_xaxes(title_text=AXIS_TITLE, tickformat=".0%", range=[0, 1.08],
                        tickvals=[0, 0.25, 0.5, 0.75, 1.0], gridcolor="#e5e5e5", zeroline=True)
    result.update_yaxes(autorange="reversed", automargin=True, ticklabelstandoff=6)
    result.update_layout(height=90 + 46 * len(rows) + 10 * sum(label.count("<br>") for label in labels),
                         margin={"l": 10, "r": 20, "t": 10, "b": 50}, showlegend=False, bargap=0.25,
                         template="plotly_white", uirevision="leaderboard")
    return result


def _bar_text(candidate: Candidate, chosen: bool) -> str:
    words = percent(candidate.accuracy)
    if not candidate.folds:  # fine-tuning is scored on one held-out part, not by cross-validation
        words += f" on {candidate.held_out} held-out pictures" if candidate.held_out else " on held-out pictures"
    return words + (" · chosen" if chosen else "")


def _unique(labels: list[str]) -> list[str]:
    """Number repeated labels: a categorical axis would draw two candidates of one name as one bar."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def _label(name: str, chosen: bool) -> str:
    """A candidate's name for the axis: wrapped onto short lines, escaped, bold when chosen."""
    lines = [html.escape(line, quote=False) for line in textwrap.wrap(name, LABEL_WIDTH, break_long_words=True)]
    text = "<br>".join(lines) if lines else "?"
    return f"<b>{text}</b>" if chosen else text


# ---------------------------------------------------------------------- the trainings with curves

TRAINED_PHASES = {  # the auto recipe's phases that train epoch by epoch, in the words of a curve's legend
    "fine_tune_candidate": "fine-tuning candidate",
    "final_fit": "final model",
}


def trained_phases(events: list[dict]) -> dict[str, list[dict]]:
    """An auto run's trainings that went epoch by epoch, by legend words: {"fine-tuning candidate": its
    epoch and batch events, "final model": ...}. Only fine-tuning does (the candidate; the final model
    when fine-tuning won), and each starts again at epoch 1, so each is a curve of its own. A linear
    candidate or final model is fitted in one step: a single point, no curve (the leaderboard is its
    picture). A run that only did those, or a manual run, gives {}."""
    groups = {}
    for phase, words in TRAINED_PHASES.items():
        part = [e for e in events if isinstance(e, dict) and e.get("type") in ("epoch", "batch")
                and e.get("phase") == phase]
        if any(e.get("type") == "batch" for e in part):
            groups[words] = part
    return groups
