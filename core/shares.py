"""Share links: a read-only link to one trained model, so a session can show its model to someone without
handing over the session (whose token lets its holder see every dataset and start and stop runs).

A share link carries a token of its own, minted here and never the session's. As with session tokens, only
hashes are stored (workspace/shares/<sha256 of the token>.json, naming the run, the owner's hash, when it
was made and, once revoked, when): a listing of the workspace reveals no working link and no session.
A revoked record is kept, so its link says it was revoked instead of "unknown".

The life of a link reads top to bottom: ``create`` it for a finished run, ``links`` lists a session's,
``revoke`` ends one, ``resolve`` turns a token into its run or a plain reason why not.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from core import runs

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LINK_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")  # a record's name: the sha256 of its token
TOKEN_BYTES = 24                                   # 192 random bits, 32 URL-safe characters
SHAREABLE_STATES = ("done", "stopped")             # a stopped run keeps its best epoch's model
MODEL_FILES = ("model.keras", "labels.json")       # what a preview needs to predict

REASONS = {  # ShareError.reason -> what the person who opened the link reads
    "unknown": "This share link is not known on this server. Check that the whole link was copied, or ask the "
               "person who shared it for a new one.",
    "revoked": "This share link was revoked by the person who shared it, so the model is no longer shown here. "
               "Ask them for a new link if you still need it.",
    "gone": "The model behind this share link is no longer on this server. Ask the person who shared it for a "
            "new link.",
}


class ShareError(LookupError):
    """A share token that leads to no model. ``reason`` is "unknown", "revoked" or "gone"; the message says
    it in plain words, naming no run, path or token."""

    def __init__(self, reason: str):
        super().__init__(REASONS[reason])
        self.reason = reason


class NotShareable(ValueError):
    """The run cannot be shared (not finished, or no model kept); the message says why and what to do."""


@dataclass(frozen=True)
class ShareLink:
    """One share link as its owner sees it: everything but the token itself."""

    id: str                      # the record's name (the token's sha256): names the link, cannot open it
    run_id: str
    created: float               # seconds since the epoch
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    @property
    def run_dir(self) -> Path:
        return runs.run_path(self.run_id)


# ---------------------------------------------------------------------- storage

def _folder(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else runs.workspace() / "shares"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write(link: ShareLink, owner_hash: str, root) -> None:
    record = {"run": link.run_id, "owner": owner_hash, "created": link.created, "revoked": link.revoked}
    runs.write_json_atomic(_folder(root) / f"{link.id}.json", record)


def _read(link_id: str, root) -> tuple[ShareLink, str] | None:
    """(link, owner hash) of a stored record, or None when there is none or it cannot be read."""
    record = runs.read_json(_folder(root) / f"{link_id}.json")
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        return None
    revoked = record.get("revoked")
    link = ShareLink(id=link_id, run_id=record["run"], created=float(record.get("created") or 0),
                     revoked=float(revoked) if isinstance(revoked, (int, float)) else None)
    return link, str(record.get("owner", ""))


# ---------------------------------------------------------------------- the life of a link

def create(run_id: str, owner: str, root: str | os.PathLike | None = None) -> tuple[str, ShareLink]:
    """A new share link to ``owner``'s run ``run_id``: returns (token, link).

    The token is returned once and never stored; the caller shows it (in a URL) to the owner. Raises
    RunIdError for a malformed run id, PermissionError when the run is not ``owner``'s (or does not exist:
    the two are not told apart), NotShareable when the run has no model to show yet.
    """
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner={owner!r}; expected a non-empty string (the session's token)")
    run_dir = runs.run_path(run_id)  # validates the id
    job = runs.read_json(run_dir / "job.json")
    if not isinstance(job, dict) or job.get("owner") != owner:
        raise PermissionError(f"run {run_id} is not one of this session's runs")
    state = (runs.read_status(run_dir) or {}).get("state")
    if state not in SHAREABLE_STATES or not all((run_dir / name).is_file() for name in MODEL_FILES):
        raise NotShareable(f"run {run_id} has no trained model to share yet (its state is {state or 'unknown'}): "
                           "share it once it has finished, or was stopped after an epoch")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(id=_hash(token), run_id=run_id, created=time.time())
    _write(link, _hash(owner), root)
    return token, link


def links(owner: str, run_id: str | None = None, root: str | os.PathLike | None = None) -> list[ShareLink]:
    """``owner``'s share links (of ``run_id`` only, when given), revoked ones included, newest first."""
    folder = _folder(root)
    if not folder.is_dir() or not owner:
        return []
    owner_hash, found = _hash(owner), []
    for path in folder.glob("*.json"):
        if not LINK_ID_PATTERN.match(path.stem):
            continue  # a temporary file mid-write, or something that is not ours
        stored = _read(path.stem, root)
        if stored and stored[1] == owner_hash and (run_id is None or stored[0].run_id == run_id):
            found.append(stored[0])
    return sorted(found, key=lambda link: link.created, reverse=True)


def revoke(link_id: str, owner: str, root: str | os.PathLike | None = None) -> ShareLink:
    """End one of ``owner``'s links (by ``ShareLink.id``): from now on it says it was revoked. Revoking a
    revoked link changes nothing. Raises ShareError("unknown") for no such link, PermissionError for a link
    of another session."""
    stored = _read(link_id, root) if isinstance(link_id, str) and LINK_ID_PATTERN.match(link_id) else None
    if stored is None:
        raise ShareError("unknown")
    link, owner_hash = stored
    if not owner or owner_hash != _hash(owner):
        raise PermissionError("that share link belongs to another session")
    if link.active:
        link = ShareLink(id=link.id, run_id=link.run_id, created=link.created, revoked=time.time())
        _write(link, owner_hash, root)
    return link


def resolve(token, root: str | os.PathLike | None = None) -> ShareLink:
    """The active link of ``token``, whose run still has its model; else ShareError with the reason:
    "unknown" (never issued here, or malformed), "revoked", or "gone" (the run or its model was removed)."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise ShareError("unknown")
    stored = _read(_hash(token), root)
    if stored is None:
        raise ShareError("unknown")
    link = stored[0]
    if not link.active:
        raise ShareError("revoked")
    try:
        run_dir = link.run_dir
    except runs.RunIdError:  # a record edited by hand
        raise ShareError("gone") from None
    if not all((run_dir / name).is_file() for name in MODEL_FILES):
        raise ShareError("gone")
    return link
