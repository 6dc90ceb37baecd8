"""Previous/next paging over the API's `limit`/`offset` lists."""

from __future__ import annotations

import math

import streamlit as st


def current_offset(key: str, page_size: int) -> int:
    """The offset to fetch for the page this pager is on (call before fetching)."""
    return st.session_state.get(f"{key}_page", 0) * page_size


def reset(key: str) -> None:
    st.session_state[f"{key}_page"] = 0


def pager(key: str, total: int, page_size: int) -> None:
    """Shows 'Page x of y' with buttons; a click moves the page and reruns."""
    pages = max(1, math.ceil(total / page_size))
    state_key = f"{key}_page"
    page = min(st.session_state.get(state_key, 0), pages - 1)
    st.session_state[state_key] = page
    if pages == 1:
        return
    back, label, forward = st.columns([1, 2, 1], vertical_alignment="center")
    if back.button(
        "Previous", key=f"{key}_previous", disabled=page == 0, icon=":material/chevron_left:"
    ):
        st.session_state[state_key] = page - 1
        st.rerun()
    label.markdown(
        f"<div style='text-align:center'>Page {page + 1} of {pages} · {total} in all</div>",
        unsafe_allow_html=True,
    )
    if forward.button(
        "Next", key=f"{key}_next", disabled=page >= pages - 1, icon=":material/chevron_right:"
    ):
        st.session_state[state_key] = page + 1
        st.rerun()
