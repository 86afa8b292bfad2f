"""A session's training settings kept in the workspace beside its datasets and runs, so a reload or a deep
link (a new browser session carrying the same ``?session=`` token) finds them as they were.

One JSON file a session, ``workspace/settings/<owner>.json``: ``{"config": {...TrainConfig fields...},
"weights_file": {"path", "name"} or null}``. Settings are kept as the user left them, valid or not (the
pages validate on use); what cannot have come from this app (unknown fields, a weights file outside the
session's own uploads) is dropped on reading.
"""
from __future__ import annotations

from pathlib import Path

from core import runs, sessions
from core.config import TrainConfig, field_names


def _path(owner: str) -> Path:
    if not isinstance(owner, str) or not sessions.TOKEN_PATTERN.match(owner):
        raise ValueError("a session token has 12-64 letters, digits, '-' or '_'")
    return runs.workspace() / "settings" / f"{owner}.json"


def save(owner: str, config: dict, weights_file: dict | None = None) -> None:
    """Keep ``config`` (TrainConfig fields) and the session's uploaded weights file, replacing what was kept."""
    runs.write_json_atomic(_path(owner), {"config": dict(config), "weights_file": weights_file})


def load(owner: str, uploads: Path | None = None) -> dict | None:
    """What ``save`` kept for ``owner``: {"config": the defaults with the kept fields over them,
    "weights_file": {"path", "name"} or None}, or None when nothing was kept (or it cannot be read).

    ``uploads`` is the session's folder of uploaded weights: a kept weights file elsewhere, or gone, is
    not restored (and neither is a config weights path outside it)."""
    record = runs.read_json(_path(owner))
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        return None
    known = set(field_names())
    config = {**TrainConfig().to_dict(),
              **{name: value for name, value in record["config"].items() if name in known}}
    weights_file = record.get("weights_file")
    if not (isinstance(weights_file, dict) and _inside(weights_file.get("path"), uploads)
            and isinstance(weights_file.get("name"), str)):
        weights_file = None
    weights = config.get("weights")
    if weights not in ("imagenet", "none", "") and not _inside(weights, uploads):
        config["weights"] = ""  # a file was chosen and is gone: the choice stays "a weights file"
    return {"config": config, "weights_file": weights_file}


def _inside(path, folder: Path | None) -> bool:
    if not isinstance(path, str) or not path or folder is None:
        return False
    candidate = Path(path)
    try:
        return candidate.is_file() and candidate.resolve().parent == folder.resolve()
    except OSError:
        return False
