"""The app's frame names the device runs train on: the one core.backend finds on this machine, not just some
"CPU" or "GPU" (the Data page's test accepts either)."""
from app_helpers import app_env, start_app  # noqa: F401 (fixture)
from core import backend


def test_the_sidebar_names_the_device_this_machine_trains_on(app_env):
    at = start_app()
    device = backend.describe_device()
    assert device.startswith(("CPU", "GPU"))
    shown = [str(markdown.value).replace("\\", "") for markdown in at.sidebar.markdown]  # Markdown escapes undone
    assert f"**{device}**" in shown, shown


def test_with_the_ray_executor_the_sidebar_says_runs_go_to_the_cluster(app_env, monkeypatch):
    """The app server's own CPU is not where a Ray run trains, so the frame says where it does. (No cluster is
    needed to draw the frame: the pages reach Ray only to start or watch a run.)"""
    monkeypatch.setenv("TRANSFER_STUDIO_EXECUTOR", "ray")
    at = start_app()
    shown = [str(markdown.value).replace("\\", "") for markdown in at.sidebar.markdown]  # Markdown escapes undone
    assert "**a Ray cluster: each run on a machine with a free slot**" in shown, shown
