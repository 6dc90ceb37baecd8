"""The navigation of one run, built from the sitemap (`frontend/sitemap.py`) and the login.

Every page of the sitemap is registered on every run, so an address the visitor bookmarked
never meets Streamlit's "Page not found". A page the visitor may not see is registered only as
a hidden stand-in under the same address — its script never runs, whatever URL is typed:

- logged out: the stand-in is the login form, saying "Log in to see …". The address stays the
  page's, so the run after the login (same address) shows the page itself;
- a member on an admin page: a note that the page is for administrators;
- logged in, on a logged-out-only page (log in, sign up): a switch to the home page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NoReturn

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from frontend.auth.login import login_form
from frontend.auth.state import AuthState
from frontend.sitemap import PAGES, Access, PageSpec

REGISTERED_KEY = "navigation_pages"  # script -> the page registered for it in this run


def _for_admins_only(spec: PageSpec, home: StreamlitPage) -> None:
    st.info(f"**{spec.title}** is for administrators.", icon=":material/lock:")
    st.page_link(home, label=f"Go to {home.title}", icon=":material/home:")


def _stand_in(spec: PageSpec, auth: AuthState, home: StreamlitPage) -> Callable[[], None]:
    """What runs at the address of a page this visitor may not see."""
    if not auth.logged_in:
        return partial(login_form, wanted=spec.title)
    if spec.access is Access.GUEST:
        return partial(st.switch_page, home)
    return partial(_for_admins_only, spec, home)


def _page(
    source: str | Callable[[], None], spec: PageSpec, *, visible: bool, default: bool = False
) -> StreamlitPage:
    return st.Page(
        source,
        title=spec.title,
        icon=spec.icon,
        url_path=spec.path,
        default=default,
        visibility="visible" if visible else "hidden",
    )


def navigate(auth: AuthState) -> StreamlitPage:
    """Registers this run's pages with `st.navigation`; returns the one to run."""
    allowed = [spec for spec in PAGES if spec.allows(auth.logged_in, auth.is_admin)]
    home_spec = next(spec for spec in allowed if spec.in_menu)
    home = _page(home_spec.script, home_spec, visible=True, default=True)
    registered: dict[str, StreamlitPage] = {}
    sections: dict[str, list[StreamlitPage]] = {"": []}
    for spec in PAGES:
        if spec is home_spec:
            page = home
        elif spec in allowed:
            page = _page(spec.script, spec, visible=spec.in_menu)
        else:
            page = _page(_stand_in(spec, auth, home), spec, visible=False)
        registered[spec.script] = page
        # Hidden pages join the top group: a heading over hidden pages only would show empty.
        listed = page.visibility == "visible"
        sections.setdefault(spec.section if listed else "", []).append(page)
    st.session_state[REGISTERED_KEY] = registered
    return st.navigation(sections)


def switch_to(script: str) -> NoReturn:
    """Goes to a page of the sitemap, in whichever form this run registered it (after a
    logout, the login page's stand-in leads to the login page itself)."""
    st.switch_page(st.session_state[REGISTERED_KEY][script])
