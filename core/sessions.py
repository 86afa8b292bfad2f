"""Session tokens: minted by the server and recorded in the workspace, so a link can only carry a token
this server gave out (a token an attacker made up and handed to a victim is refused: session fixation).

Only a hash of each token is stored: a listing of the workspace does not reveal anyone's link.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from core import runs

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{12,64}$")


def _folder(root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else runs.workspace() / "sessions"


def _record(token: str, root=None) -> Path:
    return _folder(root) / hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(root: str | os.PathLike | None = None) -> str:
    """A new unguessable token, recorded as issued."""
    return remember(secrets.token_urlsafe(18), root)


def remember(token: str, root: str | os.PathLike | None = None) -> str:
    """Record a token as issued by this server (issue_token's second half; also for an operator's script or
    a test that stands for an earlier visit). Raises ValueError for a malformed token."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise ValueError("a session token has 12-64 letters, digits, '-' or '_'")
    path = _record(token, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_bytes_atomic(path, str(round(time.time())).encode("ascii"))
    return token


def is_issued(token, root: str | os.PathLike | None = None) -> bool:
    """True for a well-formed token that this server issued."""
    return isinstance(token, str) and bool(TOKEN_PATTERN.match(token)) and _record(token, root).is_file()


def for_user(identity: str, secret: str) -> str:
    """The session token of a signed-in user (pages.login_gate): the same for the same account on every
    visit, so their runs and datasets follow them; derived with ``secret`` (the server's cookie secret),
    so nobody can compute another user's token from their identity. Recorded as issued."""
    if not identity or not secret:
        raise ValueError("a signed-in user's token needs the identity and the server's secret")
    digest = hmac.new(secret.encode("utf-8"), identity.encode("utf-8"), hashlib.sha256).digest()
    token = "u" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")[:31]
    return token if is_issued(token) else remember(token)
