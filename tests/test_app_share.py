"""A share link through AppTest: the preview of a real recipe-auto run (core.training, 32 px, weights none;
shared with the other run tests through run_fixtures) shows the model card and predicts, and nothing of the
owner's session; a revoked, unknown or dangling link says so plainly; the owner's panel on the Predict page
makes, lists and revokes links."""
import json
from pathlib import Path

import pytest

from app_helpers import APP, assert_no_exception, plotly_specs, shown_text, start_app
from core import shares
from run_fixtures import cached_run, own_copy

OWNER = "share-owner-token-0123456789"
RUN_ID = "20260101-000000-shared0001"


@pytest.fixture
def owner_run(demo_dir, tmp_path_factory, isolated_workspace):
    """The shared auto run filed in this test's workspace as OWNER's, as the job manager files it (a copy of
    its own: what the app or the test writes there stays in this test)."""
    run_dir = own_copy(cached_run(tmp_path_factory, demo_dir, "auto"), isolated_workspace / "runs" / RUN_ID)
    (run_dir / "job.json").write_text(json.dumps({"owner": OWNER, "data": str(demo_dir), "submitted": 0}))
    yield run_dir
    from pages import common

    if "runs" in [p.name for p in isolated_workspace.iterdir()]:
        common._job_manager_for(str(isolated_workspace / "runs")).shutdown()
    common._job_manager_for.clear()


def open_link(token: str):
    """The app as a visitor who opened the share link sees it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["share"] = token
    at.run()
    assert_no_exception(at)
    return at


def everything_shown(at) -> str:
    """All the text of the page, widget labels and chart data included."""
    labels = [str(getattr(widget, "label", "")) for kind in ("button", "file_uploader", "toggle", "selectbox",
                                                             "radio", "text_input", "number_input", "slider")
              for widget in at.get(kind)]
    return "\n".join([shown_text(at), *labels, json.dumps(plotly_specs(at))])


def assert_nothing_of_the_owner(at, workspace: Path, demo_dir: str) -> None:
    text = everything_shown(at)
    for secret in (OWNER, RUN_ID, str(workspace), str(demo_dir), Path(demo_dir).name):
        assert secret not in text, secret
    assert dict(at.query_params) == {"share": at.query_params["share"]}  # no session in the URL
    assert not at.sidebar.children  # no frame: no device, dataset or run
    assert not (workspace / "sessions").exists()  # no session was minted for the visitor


def test_a_share_link_shows_the_model_card_and_predicts(owner_run, isolated_workspace, demo_dir):
    token, _ = shares.create(RUN_ID, OWNER)
    at = open_link(token)
    text = shown_text(at)
    classes = json.loads((owner_run / "labels.json").read_text())
    metrics = json.loads((owner_run / "metrics.json").read_text())
    assert at.title[0].value == "Shared model"
    assert all(name in text for name in classes)
    [metric] = at.metric
    assert metric.label == "Cross-validated accuracy" and metric.value == f"{metrics['accuracy']:.0%}"
    assert "each picture was predicted by a model that did not see it" in text  # how it was measured
    assert "Automatic:" in text and "32 px" in text  # the settings in words
    figures = plotly_specs(at)
    assert figures["share_counts"]["data"][0]["x"] == [8, 8, 8, 8]  # pictures per class
    assert figures["share_confusion"]["data"][0]["z"] == metrics["confusion_matrix"]
    assert not at.error, [e.value for e in at.error]
    assert_nothing_of_the_owner(at, isolated_workspace, demo_dir)

    picture = sorted(Path(demo_dir).rglob("*.png"))[0]
    at.file_uploader(key="share_files").set_value([("mine.png", picture.read_bytes(), "image/png"),
                                                    ("broken.png", b"not a picture", "image/png")]).run()
    assert_no_exception(at)
    bars = plotly_specs(at)["share_bars::0"]["data"][0]
    assert sorted(bars["y"]) == sorted(classes) and abs(sum(bars["x"]) - 1) < 1e-3
    assert "sure)" in shown_text(at)
    [warning] = [str(w.value) for w in at.warning]
    assert warning.startswith("broken") and "was not predicted" in warning
    assert list(at.dataframe[0].value["picture"]) == ["mine.png", "broken.png"]
    assert_nothing_of_the_owner(at, isolated_workspace, demo_dir)


@pytest.mark.parametrize("case", ["revoked", "unknown", "gone"])
def test_a_link_that_leads_nowhere_says_why(owner_run, isolated_workspace, demo_dir, case):
    token, link = shares.create(RUN_ID, OWNER)
    if case == "revoked":
        shares.revoke(link.id, OWNER)
    elif case == "unknown":
        token = token[:-4] + "abcd"
    else:
        (owner_run / "model.keras").unlink()
    at = open_link(token)
    [warning] = at.warning
    assert str(warning.value) == shares.REASONS[case]
    assert not at.error and not at.get("file_uploader") and not at.metric
    assert_nothing_of_the_owner(at, isolated_workspace, demo_dir)


def test_a_link_revoked_while_open_stops_at_the_next_click(owner_run, demo_dir):
    token, link = shares.create(RUN_ID, OWNER)
    at = open_link(token)
    assert at.file_uploader(key="share_files")
    shares.revoke(link.id, OWNER)
    picture = sorted(Path(demo_dir).rglob("*.png"))[0]
    at.file_uploader(key="share_files").set_value(("mine.png", picture.read_bytes(), "image/png")).run()
    assert_no_exception(at)
    assert "revoked" in str(at.warning[0].value) and "share_bars::0" not in plotly_specs(at)


def test_a_share_link_that_carries_a_session_too_is_the_preview_alone(owner_run, isolated_workspace, demo_dir):
    """A share link pasted onto the owner's URL (?session=...&run=...&share=...) still opens only the preview,
    and the session and run leave the URL, so a forwarded copy of it carries no session."""
    from core import sessions
    from streamlit.testing.v1 import AppTest

    sessions.remember(OWNER)
    token, _ = shares.create(RUN_ID, OWNER)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"session": OWNER, "run": RUN_ID, "share": token})
    at.run()
    assert_no_exception(at)
    assert at.title[0].value == "Shared model" and at.file_uploader(key="share_files")
    assert dict(at.query_params) == {"share": token}
    text = everything_shown(at)
    assert OWNER not in text and RUN_ID not in text and not at.sidebar.children


def test_the_owner_shares_lists_and_revokes_on_the_predict_page(owner_run):
    at = start_app({"session": OWNER, "run": RUN_ID}, page="pages/6_predict.py")
    assert "No share links to this model yet." in shown_text(at)
    at.button(key="share_make").click().run()
    assert_no_exception(at)
    [link] = shares.links(OWNER, run_id=RUN_ID)
    [url] = [str(code.value) for code in at.code]
    assert url.endswith("/?share=" + url.rsplit("=", 1)[1]) and OWNER not in url
    token = url.rsplit("=", 1)[1]
    assert shares.resolve(token).run_id == RUN_ID  # the URL shown is the link's
    assert "active" in shown_text(at)

    at.button(key=f"share_revoke::{link.id}").click().run()
    assert_no_exception(at)
    with pytest.raises(shares.ShareError):
        shares.resolve(token)
    assert "revoked" in shown_text(at) and not at.get("code")
    assert not at.button(key="share_make").disabled  # another link can be made
