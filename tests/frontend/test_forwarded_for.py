"""The dashboard's server is one proxy hop: it forwards the chain it received plus the peer it
saw, and the API (not the dashboard) decides how far to believe it."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontend.api_client import ApiClient
from frontend.auth.session import forwarded_for
from frontend.auth.state import AuthState
from tests.support.accounts import DEFAULT_PASSWORD, register
from tests.support.databases import migrate
from tests.support.servers import LiveClient, api_env, api_server


@pytest.mark.parametrize(
    ("received", "peer", "sent"),
    [
        (None, "203.0.113.5", "203.0.113.5"),  # a browser straight to the dashboard
        ("203.0.113.5", "172.28.0.10", "203.0.113.5, 172.28.0.10"),  # behind nginx
        (" 198.51.100.1 ,203.0.113.5 ", "172.28.0.10", "198.51.100.1, 203.0.113.5, 172.28.0.10"),
        ("", None, None),
    ],
)
def test_the_chain_received_is_forwarded_with_the_peer_appended(
    received: str | None, peer: str | None, sent: str | None
) -> None:
    assert forwarded_for(received, peer) == sent


def test_the_api_sees_the_browser_behind_nginx_and_the_dashboard(tmp_path: Path) -> None:
    """As in docker compose: browser → nginx (127.0.0.2 here) → dashboard (127.0.0.1) → API,
    which trusts exactly those two hops. A forged leftmost address gains nothing."""
    database_url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(database_url)
    env = api_env(database_url, tmp_path / "images", FORWARDED_ALLOW_IPS="127.0.0.1,127.0.0.2")
    with api_server(env, tmp_path / "api.log") as base_url:
        register(LiveClient(base_url), "walker")
        chain = forwarded_for("10.9.9.9, 203.0.113.5", "127.0.0.2")  # forged hop, then nginx's
        client = ApiClient(
            AuthState(), base_url=base_url, forwarded_headers={"X-Forwarded-For": chain or ""}
        )
        client.login("walker", DEFAULT_PASSWORD, remember_me=False)
        history = client.login_history()
    assert history["items"][0]["ip_address"] == "203.0.113.5"
