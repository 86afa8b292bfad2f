"""Shared pieces of the app's AppTest tests: a tiny app environment, starting the app, reading what
it shows, and waiting for a run. The expensive parts are made tiny (4 demo pictures per class at
32 px, a 10-step learning-rate test), never faked away."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "streamlit_app.py"


@pytest.fixture
def app_env(isolated_workspace, monkeypatch):
    """Tiny demo data and range test, an isolated workspace; the job manager is shut down after."""
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_PER_CLASS", "4")
    monkeypatch.setenv("TRANSFER_STUDIO_DEMO_SIZE", "32")
    monkeypatch.setenv("TRANSFER_STUDIO_LR_STEPS", "10")
    yield isolated_workspace
    from pages import common

    if (isolated_workspace / "runs").is_dir():
        common._job_manager_for(str(isolated_workspace / "runs")).shutdown(stop_running=True, timeout=5)
    common._job_manager_for.clear()


@pytest.fixture
def no_cached_weights(monkeypatch, tmp_path):
    """An empty Keras cache (HOME is a fresh folder), no server weights file, and the network's answer
    chosen by the test: ``offline()`` or ``online()`` replace only the probe of Keras's weights host."""
    from core import weights

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(weights.SERVER_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "_probe", {"time": 0.0, "result": False})

    def answer(reachable: bool):
        def reach(timeout):  # the network, mocked: everything else is real
            if not reachable:
                raise OSError(-2, "Name or service not known")
            return True
        monkeypatch.setattr(weights, "_reach_host", reach)

    return answer


def start_app(query: dict | None = None, page: str | None = None, timeout: float = 120,
              known_session: bool = True, secrets: dict | None = None, user: dict | None = None) -> AppTest:
    """Run the app once (optionally with URL query parameters, then on ``page``).

    A ``session`` in ``query`` stands for a link from an earlier visit, so it is recorded as issued by the
    server first, unless ``known_session`` is False (a made-up token, as an attacker's link would carry).
    ``secrets`` stands for the server's secrets.toml, ``user`` for what Streamlit knows of a signed-in user.
    """
    if query and query.get("session") and known_session:
        from core import sessions

        sessions.remember(query["session"])
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    if user is not None:
        at.user = dict(user)
    at.query_params.update(query or {})
    at.run()
    assert_no_exception(at)
    if page:
        at.switch_page(page).run()
        assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def shown_text(at: AppTest) -> str:
    """Everything the app shows as text (Markdown sources, alerts, captions, metrics), one string."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts += [str(element.value) for element in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def plotly_specs(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by element key (figure JSON: data, layout)."""
    figures = {}
    for index, element in enumerate(at.get("plotly_chart")):
        key = element.key or f"#{index}"
        figures[key] = json.loads(element.proto.spec)
    return figures


def load_demo(at: AppTest) -> AppTest:
    at.button(key="use_demo").click().run()
    assert_no_exception(at)
    return at


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)
