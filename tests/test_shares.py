"""core.shares: a share link has a token of its own, stored only as a hash; it resolves to exactly one run
until it is revoked or the run's model is gone, and then says which, in plain words."""
import json
from pathlib import Path

import pytest

from core import runs, sessions, shares

OWNER = "owner-token-0123456789"
OTHER = "other-token-0123456789"


def make_run(workspace: Path, run_id: str, owner: str = OWNER, state: str = "done", model: bool = True) -> Path:
    """A run folder as the job manager files it; the model files only need to exist for core.shares."""
    run_dir = workspace / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"owner": owner, "data": "", "submitted": 0}))
    (run_dir / "status.json").write_text(json.dumps({"state": state}))
    if model:
        (run_dir / "model.keras").write_bytes(b"model")
        (run_dir / "labels.json").write_text(json.dumps(["circle", "square"]))
    return run_dir


@pytest.fixture
def run_dir(isolated_workspace):
    return make_run(isolated_workspace, "20260101-000000-share00001")


def test_a_link_resolves_to_its_run_with_a_token_of_its_own(run_dir, isolated_workspace):
    token, link = shares.create(run_dir.name, OWNER)
    assert shares.TOKEN_PATTERN.match(token) and len(token) >= 32
    assert token != OWNER and OWNER not in token
    assert not sessions.is_issued(token)  # not a session: it opens nothing but the preview
    resolved = shares.resolve(token)
    assert resolved == link and resolved.run_id == run_dir.name and resolved.run_dir == run_dir
    # two links to the same run are two tokens
    second, _ = shares.create(run_dir.name, OWNER)
    assert second != token and shares.resolve(second).run_id == run_dir.name


def test_only_hashes_are_stored(run_dir, isolated_workspace):
    token, link = shares.create(run_dir.name, OWNER)
    stored = "".join(path.name + path.read_text() for path in (isolated_workspace / "shares").iterdir())
    assert token not in stored and OWNER not in stored
    assert link.id in stored and run_dir.name in stored


def test_a_session_lists_its_own_links_newest_first(isolated_workspace, run_dir):
    other_run = make_run(isolated_workspace, "20260101-000000-share00002")
    theirs = make_run(isolated_workspace, "20260101-000000-theirs0001", owner=OTHER)
    _, first = shares.create(run_dir.name, OWNER)
    _, second = shares.create(other_run.name, OWNER)
    shares.create(theirs.name, OTHER)
    assert [link.id for link in shares.links(OWNER)] == [second.id, first.id]
    assert [link.id for link in shares.links(OWNER, run_id=run_dir.name)] == [first.id]
    assert [link.run_id for link in shares.links(OTHER)] == [theirs.name]
    assert shares.links("never-seen-token-0000") == []


def test_a_revoked_link_says_so_and_stays_listed(run_dir):
    token, link = shares.create(run_dir.name, OWNER)
    with pytest.raises(PermissionError):
        shares.revoke(link.id, OTHER)  # another session cannot end it
    assert shares.resolve(token).active
    revoked = shares.revoke(link.id, OWNER)
    assert not revoked.active and revoked.revoked >= link.created
    with pytest.raises(shares.ShareError) as raised:
        shares.resolve(token)
    assert raised.value.reason == "revoked" and "revoked" in str(raised.value)
    assert shares.revoke(link.id, OWNER) == revoked  # again: nothing changes
    assert [(listed.id, listed.active) for listed in shares.links(OWNER)] == [(link.id, False)]


@pytest.mark.parametrize("token", ["", None, 12345, "x" * 200, "../../sessions/abc", "not-a-token-we-made-00000000"])
def test_an_unknown_or_malformed_token_is_unknown(run_dir, token):
    shares.create(run_dir.name, OWNER)
    with pytest.raises(shares.ShareError) as raised:
        shares.resolve(token)
    assert raised.value.reason == "unknown" and "not known" in str(raised.value)


def test_a_session_token_is_no_share_link(run_dir):
    sessions.remember(OWNER)
    shares.create(run_dir.name, OWNER)
    with pytest.raises(shares.ShareError) as raised:
        shares.resolve(OWNER)
    assert raised.value.reason == "unknown"


@pytest.mark.parametrize("removed", ["model.keras", "labels.json", None])
def test_a_link_whose_model_is_gone_says_so(run_dir, removed):
    import shutil

    token, _ = shares.create(run_dir.name, OWNER)
    if removed:
        (run_dir / removed).unlink()
    else:
        shutil.rmtree(run_dir)
    with pytest.raises(shares.ShareError) as raised:
        shares.resolve(token)
    assert raised.value.reason == "gone" and "no longer on this server" in str(raised.value)
    assert run_dir.name not in str(raised.value)


def test_only_the_owner_shares_a_run_and_only_one_with_a_model(isolated_workspace, run_dir):
    with pytest.raises(PermissionError):
        shares.create(run_dir.name, OTHER)
    with pytest.raises(PermissionError):
        shares.create("20260101-000000-nosuchrun1", OWNER)
    with pytest.raises(runs.RunIdError):
        shares.create("../" + run_dir.name, OWNER)
    running = make_run(isolated_workspace, "20260101-000000-running001", state="running", model=False)
    with pytest.raises(shares.NotShareable, match="no trained model"):
        shares.create(running.name, OWNER)
    stopped_early = make_run(isolated_workspace, "20260101-000000-stopped001", state="stopped", model=False)
    with pytest.raises(shares.NotShareable):
        shares.create(stopped_early.name, OWNER)
    stopped_with_model = make_run(isolated_workspace, "20260101-000000-stopped002", state="stopped")
    token, _ = shares.create(stopped_with_model.name, OWNER)
    assert shares.resolve(token).run_id == stopped_with_model.name
    assert not (isolated_workspace / "shares").exists() or len(list((isolated_workspace / "shares").iterdir())) == 1


def test_revoking_an_unknown_link_is_unknown(isolated_workspace):
    for link_id in ("0" * 64, "../x", None):
        with pytest.raises(shares.ShareError):
            shares.revoke(link_id, OWNER)
