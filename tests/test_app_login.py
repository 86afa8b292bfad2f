"""Optional sign-in (issue 13): with an [auth] section in the server's secrets, a visitor sees the sign-in
screen and nothing else until signed in; a signed-in user's work is filed under a token of their account;
share links still open without signing in; without [auth], nothing changes (every other app test).

The identity provider cannot run here: AppTest stands in for it with ``at.user`` (what Streamlit would put
there after a real OpenID Connect sign-in) and ``at.secrets`` (the server's secrets.toml); the app itself,
its pages and the workspace are real.
"""
import pytest

from app_helpers import shown_text, start_app
from core import sessions, shares

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "a-long-random-cookie-secret-0123",
        "client_id": "transfer-studio", "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://id.example.org/.well-known/openid-configuration"}
ADA = {"is_logged_in": True, "iss": "https://id.example.org", "sub": "ada-0001", "email": "ada@example.org",
       "name": "Ada Lovelace"}
PAGES = ["pages/1_data.py", "pages/5_evaluate.py", "pages/6_predict.py"]


def open_app(user: dict, query: dict | None = None, page: str | None = None):
    return start_app(query, page=page, secrets={"auth": dict(AUTH)}, user=user)


@pytest.mark.parametrize("page", [None, *PAGES])
def test_before_signing_in_a_visitor_sees_the_sign_in_screen_alone(isolated_workspace, page):
    at = open_app({"is_logged_in": False}, page=page)
    assert [button.label for button in at.button] == ["Sign in"]
    text = shown_text(at)
    assert "asks you to sign in" in text
    for page_content in ("Use the demo data", "Predict", "Evaluate", "Trains on", "Dataset"):
        assert page_content not in text, page_content
    assert not at.sidebar.children  # no navigation, no frame
    assert not (isolated_workspace / "sessions").exists()  # nobody got a session


def test_a_signed_in_user_works_under_a_token_of_their_account(isolated_workspace):
    someone_else = sessions.issue_token()
    at = open_app(ADA, query={"session": someone_else})
    assert "Use the demo data" in [button.label for button in at.button]
    mine = sessions.for_user(f"{ADA['iss']}|{ADA['sub']}", AUTH["cookie_secret"])
    assert at.session_state["owner"] == mine != someone_else  # the link's token does not decide whose work
    assert "Signed in as Ada Lovelace" in [str(caption.value) for caption in at.sidebar.caption]
    assert "Sign out" in [button.label for button in at.sidebar.button]
    again = open_app(ADA)  # another browser, the same account: the same work
    assert again.session_state["owner"] == mine
    other = open_app({**ADA, "sub": "grace-0002", "name": "Grace"})
    assert other.session_state["owner"] != mine


def test_a_share_link_needs_no_sign_in(isolated_workspace):
    at = open_app({"is_logged_in": False}, query={"share": "x" * 30})
    assert "Sign in" not in [button.label for button in at.button]
    assert [str(warning.value) for warning in at.warning] == [shares.REASONS["unknown"]]


def test_a_half_configured_sign_in_says_what_is_missing(isolated_workspace):
    at = start_app(secrets={"auth": {key: value for key, value in AUTH.items() if key != "cookie_secret"}}, user=ADA)
    assert ["cookie_secret" in str(error.value) for error in at.error] == [True]
    assert "Use the demo data" not in [button.label for button in at.button]


def test_tokens_of_accounts_are_stable_secret_dependent_and_issued(isolated_workspace):
    token = sessions.for_user("https://id|ada", "secret-one")
    assert token == sessions.for_user("https://id|ada", "secret-one") and sessions.is_issued(token)
    assert token != sessions.for_user("https://id|ada", "secret-two")
    assert token != sessions.for_user("https://id|grace", "secret-one")
    with pytest.raises(ValueError):
        sessions.for_user("https://id|ada", "")
