"""The API client's error handling: what reaches the page for each kind of failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from frontend.api_client import (
    SERVER_FAILED,
    UNREACHABLE,
    ApiClient,
    ApiError,
    ApiUnavailable,
    SessionExpired,
)
from frontend.auth.state import AuthState
from tests.frontend.harness import new_user, unique_name


class FailingServer(BaseHTTPRequestHandler):
    """An upstream in trouble: `/500` crashes (HTML page), `/503` is busy with a JSON detail."""

    def do_GET(self) -> None:
        if self.path.startswith("/503"):
            body = json.dumps({"detail": "The processing queue is full"}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "7")
        else:
            body = b"<html>Internal Server Error</html>"
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def failing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def anonymous(base_url: str) -> ApiClient:
    return ApiClient(AuthState(), base_url=base_url)


def test_a_500_becomes_a_friendly_message(failing_url: str) -> None:
    with pytest.raises(ApiUnavailable) as caught:
        anonymous(failing_url).request("GET", "/500", authenticated=False)
    assert caught.value.message == SERVER_FAILED
    assert "Internal" not in str(caught.value)


def test_a_503_with_a_detail_keeps_it_and_the_wait(failing_url: str) -> None:
    with pytest.raises(ApiUnavailable) as caught:
        anonymous(failing_url).request("GET", "/503", authenticated=False)
    assert caught.value.message == "The processing queue is full"
    assert caught.value.retry_after == 7


def test_an_unreachable_server_is_a_friendly_message() -> None:
    with pytest.raises(ApiUnavailable) as caught:
        anonymous("http://127.0.0.1:9").request("GET", "/health", authenticated=False)
    assert caught.value.message == UNREACHABLE


def test_a_validation_error_lists_messages_per_field(api_url: str) -> None:
    with pytest.raises(ApiError) as caught:
        anonymous(api_url).signup(
            username="ab",
            email="nope",
            name="X",
            password="Str0ng!pass",
            password_confirm="Str0ng!pass",
            agree_terms=True,
        )
    assert caught.value.status == 422
    assert set(caught.value.field_errors) == {"username", "email"}
    assert "at least 4 characters" in caught.value.field_errors["username"]


def test_a_conflict_keeps_the_servers_words(api_url: str) -> None:
    username = unique_name("twice")
    fields = {
        "username": username,
        "email": f"{username}@example.com",
        "name": "Twice",
        "password": "Str0ng!pass",
        "password_confirm": "Str0ng!pass",
        "agree_terms": True,
    }
    anonymous(api_url).signup(**fields)
    with pytest.raises(ApiError) as caught:
        anonymous(api_url).signup(**fields)
    assert caught.value.status == 409
    assert caught.value.message == "Username is already taken"


def test_calls_without_a_login_are_session_expired_not_sent(api_url: str) -> None:
    with pytest.raises(SessionExpired):
        anonymous(api_url).sessions()


def test_the_api_refresh_cookie_is_never_kept(api_url: str) -> None:
    """Tokens live in AuthState only: the client's HTTP session stores no cookie."""
    username, _ = new_user(api_url, "cookieless")
    client = anonymous(api_url)
    client.login(username, "Str0ng!pass", remember_me=True)
    assert len(client._http.cookies) == 0
    assert client.auth.remember
