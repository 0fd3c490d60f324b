"""Login for a team server: Streamlit's native OIDC (``st.login``) when ``[auth]`` is configured.

``.streamlit/secrets.toml`` (or any file in ``secrets.files``) with an ``[auth]`` section turns the gate
on: anonymous visitors see only a login button; signed-in users see the app, their name and a logout
button in the sidebar. Without ``[auth]`` nothing changes (local use). See docs/deploy.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st


def auth_section() -> Mapping | None:
    """The ``[auth]`` secrets section, or None when there is no secrets file or no such section."""
    try:
        if not st.secrets.load_if_toml_exists():
            return None
        section = st.secrets.get("auth")
    except Exception:  # an unreadable secrets file: Streamlit logs it; treat as not configured
        return None
    return section if isinstance(section, Mapping) and section else None


def providers(section: Mapping) -> list[str | None]:
    """Provider names for ``st.login``: None for one provider set directly in ``[auth]``, else each
    ``[auth.NAME]`` sub-section."""
    if section.get("client_id"):
        return [None]
    return [name for name, value in section.items() if isinstance(value, Mapping)]


def require_login() -> None:
    """Stop the script with a login screen for anonymous visitors when ``[auth]`` is configured;
    for signed-in users, show who they are and a logout button in the sidebar."""
    section = auth_section()
    if section is None:
        return
    if not st.user.is_logged_in:
        st.title("cnnviz")
        st.write("This server is for signed-in members of the team.")
        for provider in providers(section):
            label = "Log in" if provider is None else f"Log in with {provider}"
            st.button(label, icon=":material/login:", on_click=st.login, args=(provider,) if provider else ())
        st.stop()
    with st.sidebar:
        who = st.user.get("name") or st.user.get("email") or st.user.get("sub") or "signed in"
        st.caption(f":material/person: {who}")
        st.button("Log out", icon=":material/logout:", on_click=st.logout, key="cnnviz.logout")
