"""No page shows a server path or the session's token (issue 11: a projector, a screenshot sent on).

One session with the demo data loaded (its dataset lives under workspace/datasets/<token>/...) and a
finished recipe-auto run of its own (trained for real, 32 px, weights none); every page is opened on that
run, and everything the page holds as text, labels and options included, is searched for the workspace,
any path under the test's temporary folders, and the token.
"""
from pathlib import Path

import pytest

from app_helpers import app_env, assert_no_exception, load_demo, start_app  # noqa: F401  (app_env: a fixture)
from candidate_fixtures import OWNER, RUN_ID, auto_run, file_run

PAGES = ["pages/1_data.py", "pages/2_model.py", "pages/3_train.py", "pages/4_autoencoder.py",
         "pages/5_evaluate.py", "pages/6_predict.py", "pages/7_experiments.py"]


def page_text(at) -> str:
    """Every element's protobuf as text: values, labels, options, help texts, captions, alerts."""
    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


@pytest.fixture
def session_with_a_run(tmp_path_factory, demo_dir, app_env):
    run_dir = file_run(auto_run(tmp_path_factory, demo_dir), app_env)
    return app_env, run_dir


def test_no_page_shows_a_server_path_or_the_session_token(session_with_a_run):
    workspace, run_dir = session_with_a_run
    at = start_app({"session": OWNER, "run": RUN_ID})
    load_demo(at)
    datasets = [path for path in (workspace / "datasets").rglob("*") if OWNER in str(path)]
    assert datasets, "the demo data should be saved under the session's own folder"
    basetemp = str(Path(str(workspace)).parents[1])  # every test folder of this pytest run lies under it
    for page in PAGES:
        at.switch_page(page).run()
        assert_no_exception(at)
        text = page_text(at)
        assert len(text) > 200, page  # the page drew something to search
        for secret in (str(workspace), basetemp, OWNER):
            assert secret not in text, f"{page} shows {secret!r}"
