"""Run directories of recipe "auto" for the leaderboard's tests: a tiny real run (core.training.train, 32 px,
weights none, 1 epoch) plus, written by hand to the fixed schema, candidates.json and the candidate and
recipe events an auto run appends while it scores."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core import runs
from run_fixtures import assert_untouched, remember

OWNER = "candidates-owner-0123456789"
RUN_ID = "20260102-000000-autorun0001"
HOSTILE_NAME = "<script>alert(1)</script> *block* [x](javascript:alert(1))"
REASON = "features from block 4 + a linear head: 91 % in cross-validation, ahead of fine-tuning block 5 at 78 %"
SCORING = "5-fold cross-validation on the 80 training pictures"
TINY_CONFIG = {"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8, "freeze_depth": 4}
_trained: dict[str, Path] = {}


def candidate(name, kind, block, pooling, regularization, accuracy, std, seconds):
    linear = kind == "linear"
    return {"name": name, "kind": kind, "block": block, "pooling": pooling,
            "head": "logistic" if linear else "gap", "regularization": regularization if linear else None,
            "cv_accuracy": accuracy, "cv_std": std if linear else None, "folds": 5 if linear else None,
            "held_out": None if linear else 16, "seconds": seconds}


def candidates_record(hostile: bool = False) -> dict:
    """A candidates.json as an auto run writes it; the chosen one (index 1) is not first in the file."""
    rows = [
        candidate("block 3 features, average pooling, linear head (C=1)", "linear", 3, "avg", 1.0, 0.62, 0.05, 0.3),
        candidate("block 4 features, average pooling, linear head (C=0.1)", "linear", 4, "avg", 0.1, 0.91, 0.03, 0.4),
        candidate("block 5 features, average and max pooling, linear head (C=0.1)", "linear", 5, "avg+max", 0.1,
                  0.84, 0.06, 0.5),
        candidate("fine-tune block 5, global average pooling head", "fine_tune", 5, "avg", None, 0.78, None, 12.3),
    ]
    if hostile:
        rows[2]["name"] = HOSTILE_NAME
    return {"recipe": "auto", "scoring": SCORING, "evaluation": "validation_split", "candidates": rows,
            "chosen": 1, "reason": REASON}


def trained_run(tmp_path_factory, demo_dir: str) -> Path:
    """A finished manual run trained for real on the demo data; built once per test process."""
    if demo_dir not in _trained:
        from core.config import TrainConfig
        from core.training import train

        run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
        result = train(TrainConfig.from_dict(TINY_CONFIG), demo_dir, run_dir)
        assert result.state == "done", result
        _trained[demo_dir] = remember(run_dir)
    return assert_untouched(_trained[demo_dir])


def file_run(source: Path, workspace: Path, run_id: str = RUN_ID, owner: str = OWNER) -> Path:
    """A copy of the run ``source`` filed in ``workspace`` as ``owner``'s, as the job manager files one
    (the model is linked, not copied: it is only read)."""
    run_dir = workspace / "runs" / run_id
    run_dir.mkdir(parents=True)
    for item in source.iterdir():
        if item.name == "model.keras":
            (run_dir / item.name).symlink_to(item)
        elif item.is_file():
            shutil.copy(item, run_dir / item.name)
    (run_dir / "job.json").write_text(json.dumps({"owner": owner, "data": "", "submitted": 0}))
    return run_dir


def candidate_events(record: dict, upto: int | None = None, choice: bool = True) -> list[dict]:
    """The events an auto run writes as each candidate finishes (the first ``upto`` of them), then, when
    ``choice``, the recipe event (without their "time")."""
    rows = record["candidates"]
    events = [{"type": "candidate", **row, "index": index, "total": len(rows)} for index, row in enumerate(rows[:upto])]
    if choice:
        chosen = record["chosen"]
        events.append({"type": "recipe", "chosen": chosen, "name": rows[chosen]["name"], "reason": record["reason"]})
    return events


def add_candidate_events(run_dir: Path, record: dict, upto: int | None = None, choice: bool = True) -> None:
    """Append ``candidate_events`` to the run's events.jsonl, as the run would."""
    writer = runs.RunWriter(run_dir)
    for event in candidate_events(record, upto, choice):
        writer.event(**event)


def make_auto(run_dir: Path, record: dict | None = None) -> dict:
    """Turn a finished run into a finished auto run: candidate and recipe events, then candidates.json."""
    record = record or candidates_record()
    add_candidate_events(run_dir, record)
    runs.write_json_atomic(run_dir / "candidates.json", record)
    return record


AUTO_CONFIG = {"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8}  # recipe auto, the default
FINE_TUNE_PER_CLASS = 20  # core.auto.FINE_TUNE_MIN_PER_CLASS: enough pictures for the fine-tune candidate
_auto_runs: dict[str, Path] = {}


def auto_run(tmp_path_factory, demo_dir: str) -> Path:
    """A finished run of recipe auto trained for real on the demo data (8 pictures a class: no validation
    split, its accuracy cross-validated; a linear head wins, fitted in one step); built once per process."""
    if "linear" not in _auto_runs:
        _auto_runs["linear"] = remember(_train_auto(tmp_path_factory, demo_dir))
    return assert_untouched(_auto_runs["linear"])


def fine_tune_auto_run(tmp_path_factory) -> Path:
    """A finished auto run on 20 demo pictures a class, so fine-tuning block 5 is a candidate too and
    trains epoch by epoch; built once per process."""
    if "fine_tune" not in _auto_runs:
        from core import demo_data

        data = tmp_path_factory.mktemp("demo-20") / "shapes"
        demo_data.write_demo_data(str(data), per_class=FINE_TUNE_PER_CLASS, size=32, seed=0)
        _auto_runs["fine_tune"] = remember(_train_auto(tmp_path_factory, str(data)))
    return assert_untouched(_auto_runs["fine_tune"])


def _train_auto(tmp_path_factory, data: str) -> Path:
    from core.config import TrainConfig
    from core.training import train

    config = TrainConfig.from_dict(AUTO_CONFIG)
    assert config.recipe == "auto"
    run_dir = tmp_path_factory.mktemp("auto-run") / "run"
    result = train(config, data, run_dir)
    assert result.state == "done", result
    return run_dir
