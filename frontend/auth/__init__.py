"""The dashboard's login, in one place.

- `state`: who is logged in for one browser session (tokens, user), plain objects;
- `session`: that state and the one API client bound to it, kept in `st.session_state`;
- `cookie`: the remember-me cookie — the route that sets it and `sync_cookie()` that feeds it;
- `restore`: continuing a remembered login in a new browser session;
- `login`: the login form (the login page, and the stand-in at any page that needs a login);
- `logout`: every way to log out.

A step of the login (a second factor, say) belongs in `login`; a page reachable while logged out
(reset password, confirm an e-mail address) is a row of `frontend/sitemap.py`.
"""
