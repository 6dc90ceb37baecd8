"""Every page of the dashboard and who may see it — the one place to add a page.

To add one: write its script in `views/`, add a constant for its path below, and a row to
`PAGES`. The row's `access` decides everything else (see `frontend/navigation.py`):

- `GUEST`: logged out only (log in, sign up, reset a password). A logged-in visitor who opens
  its address is taken to the dashboard.
- `ANYONE`: with or without a login (e.g. the link that confirms an e-mail address).
- `MEMBER` / `ADMIN`: logged in / logged in as an admin. A logged-out visitor who opens the
  address gets the login form ("Log in to see …") and then the page itself; a member who opens
  an admin page is told it is for administrators.

`in_menu=False` keeps a page out of the menu: pages reached by a link, such as
`/reset-password?token=…` (`url_path="reset-password"`; by default it is the script's name).
The first `in_menu` page a visitor may see is their home page ("/").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath

LOGIN = "views/login.py"
SIGNUP = "views/signup.py"
FORGOT_PASSWORD = "views/forgot_password.py"
RESET_PASSWORD = "views/reset_password.py"
VERIFY_EMAIL = "views/verify_email.py"
DASHBOARD = "views/dashboard.py"
IMAGES = "views/images.py"
JOBS = "views/jobs.py"
LOGIN_HISTORY = "views/login_history.py"
SESSIONS = "views/sessions.py"
API_KEYS = "views/api_keys.py"
ACCOUNT = "views/account.py"
ADMIN_USERS = "views/admin_users.py"
ADMIN_LOGINS = "views/admin_logins.py"
ADMIN_STATS = "views/admin_stats.py"
ADMIN_EVENTS = "views/admin_events.py"


class Access(Enum):
    GUEST = "guest"
    ANYONE = "anyone"
    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class PageSpec:
    script: str
    title: str
    icon: str
    access: Access
    section: str = ""  # the menu heading it is listed under ("" for the top group)
    in_menu: bool = True
    url_path: str | None = None  # None: the script's name

    @property
    def path(self) -> str:
        """The page's address below the dashboard's root."""
        return self.url_path or PurePosixPath(self.script).stem

    def allows(self, logged_in: bool, is_admin: bool) -> bool:
        match self.access:
            case Access.GUEST:
                return not logged_in
            case Access.ANYONE:
                return True
            case Access.MEMBER:
                return logged_in
            case Access.ADMIN:
                return logged_in and is_admin


PAGES: tuple[PageSpec, ...] = (
    PageSpec(LOGIN, "Log in", ":material/login:", Access.GUEST),
    PageSpec(SIGNUP, "Sign up", ":material/person_add:", Access.GUEST),
    # Reached by the links in mails, logged in or out (a notice's "reset it now" link may be
    # opened in a browser that is logged in).
    PageSpec(
        FORGOT_PASSWORD,
        "Forgot password",
        ":material/lock_reset:",
        Access.ANYONE,
        in_menu=False,
        url_path="forgot-password",
    ),
    PageSpec(
        RESET_PASSWORD,
        "Reset password",
        ":material/lock_reset:",
        Access.ANYONE,
        in_menu=False,
        url_path="reset-password",
    ),
    PageSpec(
        VERIFY_EMAIL,
        "Verify email",
        ":material/mark_email_read:",
        Access.ANYONE,
        in_menu=False,
        url_path="verify-email",
    ),
    PageSpec(DASHBOARD, "Dashboard", ":material/dashboard:", Access.MEMBER),
    PageSpec(IMAGES, "Images", ":material/photo_library:", Access.MEMBER),
    PageSpec(JOBS, "Jobs", ":material/pending_actions:", Access.MEMBER),
    PageSpec(LOGIN_HISTORY, "Login history", ":material/history:", Access.MEMBER, "Account"),
    PageSpec(SESSIONS, "Sessions", ":material/devices:", Access.MEMBER, "Account"),
    PageSpec(API_KEYS, "API keys", ":material/key:", Access.MEMBER, "Account"),
    PageSpec(ACCOUNT, "Account", ":material/manage_accounts:", Access.MEMBER, "Account"),
    PageSpec(ADMIN_USERS, "Users", ":material/group:", Access.ADMIN, "Admin"),
    PageSpec(ADMIN_LOGINS, "All logins", ":material/policy:", Access.ADMIN, "Admin"),
    PageSpec(ADMIN_STATS, "Statistics", ":material/monitoring:", Access.ADMIN, "Admin"),
    PageSpec(ADMIN_EVENTS, "Events", ":material/event_note:", Access.ADMIN, "Admin"),
)
