"""Sign up: the password policy up front, and the server's messages under their fields."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import LOGIN_FLASH_KEY, api_client
from frontend.components.feedback import (
    clear_field_errors,
    field_error,
    field_errors,
    remember_field_errors,
    show_error,
)
from frontend.components.password_rules import password_rules
from frontend.sitemap import LOGIN

FORM = "signup"
FIELDS = ("username", "email", "name", "password", "password_confirm", "agree_terms")
USERNAME_RULE = "**Username**: 4–20 letters, digits or underscores."

_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("Create your account")
    password_rules(extra=USERNAME_RULE)
    errors = field_errors(FORM)
    general = [message for name, message in errors.items() if name not in FIELDS]
    for message in general:
        st.error(message)

    with st.form("signup_form"):
        username = st.text_input("Username", key="signup_username", max_chars=20)
        field_error(FORM, "username")
        email = st.text_input("Email", key="signup_email")
        field_error(FORM, "email")
        name = st.text_input("Full name", key="signup_name", max_chars=100)
        field_error(FORM, "name")
        password = st.text_input("Password", type="password", key="signup_password")
        field_error(FORM, "password")
        password_confirm = st.text_input(
            "Confirm password", type="password", key="signup_password_confirm"
        )
        field_error(FORM, "password_confirm")
        agree_terms = st.checkbox("I agree to the terms of use", key="signup_agree_terms")
        field_error(FORM, "agree_terms")
        submitted = st.form_submit_button("Sign up", type="primary", width="stretch")

    if submitted:
        try:
            api_client().signup(
                username=username.strip(),
                email=email.strip(),
                name=name.strip(),
                password=password,
                password_confirm=password_confirm,
                agree_terms=agree_terms,
            )
        except ApiError as error:
            if error.field_errors:
                remember_field_errors(FORM, error)
                st.rerun()
            clear_field_errors(FORM)
            show_error(error)
        else:
            clear_field_errors(FORM)
            st.session_state[LOGIN_FLASH_KEY] = (
                f"Account {username.strip()} created. We mailed a link to confirm your address; "
                "log in below."
            )
            st.session_state["login_username"] = username.strip()
            st.switch_page(LOGIN)

    st.page_link(LOGIN, label="Already have an account? Log in", icon=":material/login:")
