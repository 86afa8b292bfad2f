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


def test_the_report_and_the_export_bundle_carry_no_server_path_or_token(session_with_a_run):
    """What a user downloads to send on: the report and the bundle (every file in it, and every file in the
    model.keras archive inside it) name the dataset, never the workspace, a temporary path or the token."""
    import io
    import zipfile

    from core import export, report

    import json
    import shutil

    workspace, run_dir = session_with_a_run
    # the run trained on a dataset in the session's own folder, as a real one does (the folder holds the token)
    data = workspace / "datasets" / OWNER / "20260102-000000-abc123"
    shutil.copytree(json.loads((run_dir / "dataset.json").read_text())["source"], data)
    for name, key in (("dataset.json", "source"), ("job.json", "data")):
        record = json.loads((run_dir / name).read_text())
        (run_dir / name).write_text(json.dumps({**record, key: str(data)}))
    basetemp = str(Path(str(workspace)).parents[1])
    secrets = (str(workspace), basetemp, OWNER)

    def contents(archive: bytes, name: str):
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            for member in bundle.namelist():
                data = bundle.read(member)
                yield f"{name}/{member}", member, data
                if member.endswith((".keras", ".zip")):
                    yield from contents(data, f"{name}/{member}")

    page = report.build_report(run_dir)
    assert "<h2>Data</h2>" in page and "20260102-000000-abc123" in page  # the dataset, by its folder's name
    for secret in secrets:
        assert secret not in page, f"the report shows {secret!r}"
    seen = []
    for where, member, data in contents(export.bundle_zip(run_dir), "bundle"):
        seen.append(member)
        for secret in secrets:
            assert secret.encode() not in data, f"{where} holds {secret!r}"
    assert "config.json" in seen and "labels.json" in seen
