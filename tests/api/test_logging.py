"""Request logging: one access line per request, slow requests, 500s, and no secret in any log."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.dependencies import DbSession
from api.models import User
from tests.support.accounts import bearer, login, register, signup
from tests.support.databases import app_session

ACCESS_LINE = re.compile(
    r"^(?P<method>[A-Z]+) (?P<path>\S+) route=(?P<route>\S+) client=(?P<client>\S+) "
    r"status=(?P<status>\d{3}) duration_ms=(?P<duration>\d+\.\d) "
    r"request_id=(?P<request_id>\S+?) user_id=(?P<user_id>\d+|-)(?P<slow> slow)?$"
)


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, dict[str, Any]]]:
    lines = []
    for record in caplog.records:
        if record.name == "pixelgate.access":
            match = ACCESS_LINE.match(record.getMessage())
            assert match, record.getMessage()
            lines.append((record.levelno, match.groupdict()))
    return lines


def test_one_access_line_per_request(
    make_client: Callable[..., AbstractContextManager[TestClient]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The threshold is out of reach so that a stall of a loaded machine (a garbage collection,
    # another process's burst) cannot flag a line: slowness has its own test below.
    with make_client(slow_request_ms=60_000) as client:
        client.get("/health?verbose=1", headers={"X-Request-ID": "req-0001"})
        client.post("/auth/login", json={"username": "nobody_1", "password": "x"})
        client.post("/auth/login", json={})
        client.get("/no/such/route")

    lines = _access_lines(caplog)
    assert [(line["method"], line["path"], line["route"], line["status"]) for _, line in lines] == [
        ("GET", "/health", "/health", "200"),
        ("POST", "/auth/login", "/auth/login", "401"),
        ("POST", "/auth/login", "/auth/login", "422"),
        ("GET", "/no/such/route", "unmatched", "404"),
    ]
    assert all(line["user_id"] == "-" for _, line in lines)
    assert lines[0][1]["request_id"] == "req-0001"
    assert all(level == logging.INFO and line["slow"] is None for level, line in lines)
    assert all(line["client"] == "testclient" for _, line in lines)
    assert len({line["request_id"] for _, line in lines}) == 4


def _app_with_routes(settings: Any) -> FastAPI:
    """The real app plus routes that misbehave on purpose."""
    app = create_app(settings)

    @app.get("/test/slow")
    def slow() -> dict[str, str]:
        time.sleep(0.01)  # longer than the 1 ms threshold below, however fast the machine
        return {"ok": "yes"}

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("something broke")

    @app.post("/test/db-error")
    def db_error(db: DbSession, secret: Annotated[str, Body(embed=True)]) -> None:
        # A unique violation (think: a lost signup race) on a row carrying a secret.
        for _ in range(2):
            db.add(User(username="dup", email="d@x.io", name="d", password_hash=secret))
            db.commit()

    return app


def test_slow_requests_are_logged_at_warning(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(_app_with_routes(make_settings(slow_request_ms=1))) as client:
        assert client.get("/test/slow").status_code == 200
    with TestClient(_app_with_routes(make_settings(slow_request_ms=60_000))) as client:
        assert client.get("/test/slow").status_code == 200
    (slow_level, slow), (fast_level, fast) = _access_lines(caplog)
    assert slow_level == logging.WARNING and slow["slow"] == " slow"
    assert float(slow["duration"]) >= 10
    assert fast_level == logging.INFO and fast["slow"] is None


def test_unhandled_errors_are_500_json_with_a_request_id(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(_app_with_routes(make_settings())) as client:
        response = client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error"}
        assert response.headers["X-Request-ID"] == "boom-1"
        assert "something broke" not in response.text
        made_up = client.get("/test/boom")
        assert re.fullmatch(r"[0-9a-f]{32}", made_up.headers["X-Request-ID"])
        # The app keeps serving.
        assert client.get("/health").status_code == 200
    errors = [r for r in caplog.records if r.name == "pixelgate.error"]
    assert len(errors) == 2
    assert "request_id=boom-1" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    statuses = [line["status"] for _, line in _access_lines(caplog)]
    assert statuses == ["500", "500", "200"]


def test_database_errors_do_not_log_statement_parameters(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "$2b$04$" + uuid.uuid4().hex  # made here: the traceback shows source lines
    with TestClient(_app_with_routes(make_settings())) as client:
        response = client.post("/test/db-error", json={"secret": secret})
    assert response.status_code == 500
    assert "IntegrityError" in caplog.text
    assert secret not in caplog.text


def test_error_statuses_carry_the_request_id(client: TestClient) -> None:
    for response in (
        client.post("/auth/login", json={}),
        client.get("/auth/me"),
        client.post("/auth/login", json={"username": "nobody_2", "password": "x"}),
        client.get("/missing"),
    ):
        assert response.status_code >= 400
        assert response.headers["X-Request-ID"]


def test_no_secret_reaches_any_log(
    make_client: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A whole signup/login/refresh/logout life, logged at DEBUG: nothing secret in any line."""
    caplog.set_level(logging.DEBUG)
    password, new_password = "Flow!pass123", "Flow!pass456"
    secrets: list[str] = [password, new_password]
    with make_client(rate_limit_enabled=True, max_login_attempts=2) as client:
        assert signup(client, "flow_001", password).status_code == 201
        assert login(client, "flow_001", "Wrong!guess9").status_code == 401
        first = login(client, "flow_001", password, remember_me=True)
        tokens = first.json()
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        secrets += first.headers.get_list("set-cookie")
        form = client.post("/auth/token", data={"username": "flow_001", "password": password})
        secrets += [form.json()["access_token"], form.json()["refresh_token"]]
        rotated = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        secrets += [rotated.json()["access_token"], rotated.json()["refresh_token"]]
        by_cookie = client.post("/auth/refresh")
        secrets += [by_cookie.json()["access_token"], by_cookie.json()["refresh_token"]]
        # Reuse of a rotated token: logged as a warning, without the token.
        assert (
            client.post(
                "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            ).status_code
            == 401
        )
        headers = bearer(form.json()["access_token"])
        assert client.get("/auth/me", headers=headers).status_code == 200
        changed = client.post(
            "/auth/change-password",
            headers=headers,
            json={"current_password": password, "new_password": new_password},
        )
        assert changed.status_code == 204
        logout = {"refresh_token": form.json()["refresh_token"]}
        assert client.post("/auth/logout", json=logout).status_code == 204
        assert login(client, "flow_001", "Wrong!guess9").status_code == 401
        assert login(client, "flow_001", "Wrong!guess9").status_code == 401
        assert login(client, "flow_001", new_password).status_code == 429
        with app_session(client) as db:
            secrets.append(db.scalars(select(User.password_hash)).one())

    output = caplog.text + "\n".join(capfd.readouterr())
    assert "pixelgate.access" in caplog.text and "refresh token reuse" in caplog.text
    for secret in secrets:
        # Cookie headers are checked whole and by their value.
        for part in {secret, secret.split(";")[0].partition("=")[2]} - {""}:
            assert part not in output, f"a secret reached the logs: {part[:12]}…"


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line that looks like JSON must parse; the others (pytest's own) are skipped."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_lines_carry_request_id_user_id_route_status_and_duration(
    make_client: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    with make_client(log_format="json") as client:
        account = register(client, "jsonlog")
        capfd.readouterr()
        me = client.get("/auth/me", headers={**account["headers"], "X-Request-ID": "json-1"})
        image = client.get("/images/424242", headers=account["headers"])
        tokens = account["tokens"]
        client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        client.post(
            "/auth/refresh",
            json={"refresh_token": tokens["refresh_token"]},
            headers={"X-Request-ID": "reuse-1"},
        )
        lines = _json_lines(capfd.readouterr().err)
    assert me.status_code == 200 and image.status_code == 404

    access = [line for line in lines if line["logger"] == "pixelgate.access"]
    assert [(line["route"], line["status"]) for line in access] == [
        ("/auth/me", 200),
        ("/images/{image_id}", 404),
        ("/auth/refresh", 200),
        ("/auth/refresh", 401),
    ]
    first = access[0]
    assert first["request_id"] == "json-1"
    assert first["user_id"] == account["user"]["id"]
    assert first["method"] == "GET" and first["path"] == "/auth/me"
    assert isinstance(first["duration_ms"], float)
    assert first["level"] == "INFO" and first["time"]
    assert "user_id" not in access[2], "a refresh is not an authenticated request"
    # A line written inside the request carries the request's id too.
    [reuse] = [line for line in lines if "refresh token reuse" in line["message"]]
    assert reuse["request_id"] == "reuse-1"
    assert reuse["level"] == "WARNING"
    output = json.dumps(lines)
    assert tokens["refresh_token"] not in output and tokens["access_token"] not in output
