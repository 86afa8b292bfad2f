"""Optional sign-in for deployments, with Streamlit's built-in authentication (``st.login``, OpenID Connect).

Off unless the server's ``.streamlit/secrets.toml`` has an ``[auth]`` section (see the README, "Signing
in"). When it is on, every page except a share link's preview asks a visitor to sign in first and shows
nothing else; a signed-in user's runs and datasets are filed under a session token derived from who they
are (``core.sessions.for_user``), so they find their work again from any browser, and a ``?session=`` in
a link no longer decides whose work a visitor sees. When it is off, nothing changes.
"""
from __future__ import annotations

import streamlit as st

from core import sessions


def configured() -> bool:
    """True when the server's secrets configure Streamlit's authentication."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file, or one that does not parse: not configured
        return False


def needs_sign_in() -> bool:
    """True when sign-in is configured and nobody is signed in in this browser."""
    return configured() and not st.user.is_logged_in


def sign_in_screen() -> None:
    """The only thing a visitor sees before signing in (no page content, no navigation); ends the run."""
    st.title("Transfer Studio")
    st.write("This server asks you to sign in first. Your trained models and datasets are kept under "
             "your account, so you find them again from any browser.")
    st.button("Sign in", type="primary", key="sign_in", on_click=_sign_in)
    st.stop()


def adopt_user() -> None:
    """With a signed-in user: their session token becomes this browser session's owner, and the sidebar
    says who is signed in. Does nothing when sign-in is not configured."""
    if not configured():
        return
    try:
        secret = str(st.secrets["auth"].get("cookie_secret", ""))
        if not secret:
            raise RuntimeError("the server's sign-in settings have no cookie_secret: ask its operator to add "
                               "one to the [auth] section of .streamlit/secrets.toml")
        st.session_state["owner"] = sessions.for_user(_identity(), secret)
    except Exception as error:  # noqa: BLE001 - a half-configured sign-in is explained, never a traceback
        st.title("Transfer Studio")
        st.error(f"Signing in cannot work yet: {error}")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {_shown_name()}")
        st.button("Sign out", key="sign_out", on_click=st.logout)


def _sign_in() -> None:
    st.login()


def _identity() -> str:
    """Who the identity provider says this is: its issuer and subject (stable per account), else the email."""
    user = st.user
    subject = user.get("sub") or user.get("email")
    if not subject:
        raise RuntimeError("the sign-in provider did not say who you are (no subject or email): ask the "
                           "server's operator to check its OpenID Connect settings")
    return f"{user.get('iss', '')}|{subject}"


def _shown_name() -> str:
    user = st.user
    return str(user.get("name") or user.get("email") or "you")[:80]
