"""`GET /admin/events`: the outbox for admins, newest first, filtered by type and state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.core.config import Settings
from api.core.db import Database, writes
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.events.relay import EventRelay
from api.schemas.event import Event, EventType
from api.services.events import record_event
from tests.support.accounts import ADMIN_USERNAME, admin_settings, login_headers, register
from tests.support.events import app_events_settled


def _fail_one_event(settings: Settings) -> None:
    """Another process records an event, and its relay's only handler fails on it (the app's
    relay is not woken by that commit and polls only every 600 s here)."""

    def broken(event: Event, context: HandlerContext) -> None:
        raise RuntimeError("mail server down")

    database = Database(settings.database_url)
    try:
        with database.session() as db, writes(db):
            record_event(db, EventType.USER_DELETED, {"user_id": 999})
        registry = HandlerRegistry()
        registry.register(broken)
        context = HandlerContext.from_settings(settings, database)
        EventRelay(database, settings, registry, context).relay_due_events()
    finally:
        database.dispose()


def test_admins_page_through_events_newest_first_and_filter_them(
    make_client: Callable[..., Any],
) -> None:
    with make_client(**admin_settings(), events_poll_interval_s=600) as client:
        admin = login_headers(client, ADMIN_USERNAME)
        for name in ("alice", "bobby"):
            register(client, name)
        app_events_settled(client)
        _fail_one_event(client.app.state.settings)

        def events(**params: Any) -> dict[str, Any]:
            response = client.get("/admin/events", params=params, headers=admin)
            assert response.status_code == 200, response.text
            return response.json()

        everything = events()
        assert everything["total"] == 4
        assert [item["type"] for item in everything["items"]] == [
            "user.deleted",
            "user.created",
            "user.created",
            "user.created",
        ]
        newest = everything["items"][0]
        assert set(newest) >= {"id", "type", "occurred_at", "data", "state", "attempts"}
        assert (newest["state"], newest["attempts"], newest["data"]) == (
            "pending",
            1,
            {"user_id": 999},
        )
        assert newest["last_error"].endswith("RuntimeError: mail server down")
        assert events(type="user.created", limit=1, offset=1)["items"][0]["data"]["username"] == (
            "alice"
        )
        assert events(type="user.created")["total"] == 3
        assert events(state="handled")["total"] == 3
        assert events(state="pending", type="user.deleted")["total"] == 1
        assert events(state="failed")["total"] == 0

        member = register(client, "member")
        assert client.get("/admin/events", headers=member["headers"]).status_code == 403
        assert client.get("/admin/events").status_code == 401
        for bad in ({"type": "user.exploded"}, {"state": "lost"}, {"limit": 101}):
            assert client.get("/admin/events", params=bad, headers=admin).status_code == 422
