"""Every contract event the API makes is recorded at its change, with ids and public fields only,
and handled in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.schemas.event import EventType
from tests.support.accounts import ADMIN_USERNAME, admin_settings, login_headers, register
from tests.support.events import app_events_settled
from tests.support.images import SLOW, process, upload_image

# Emitted by the account recovery and two-factor features, not by these routes (the recovery
# events are in tests/api/test_recovery_*.py).
ELSEWHERE = {
    EventType.USER_EMAIL_VERIFIED,
    EventType.USER_MFA_ENABLED,
    EventType.USER_MFA_DISABLED,
    EventType.USER_PASSWORD_RESET_REQUESTED,
    EventType.USER_EMAIL_VERIFICATION_REQUESTED,
    EventType.USER_MFA_RECOVERY_CODES_REGENERATED,
}


def test_each_change_records_its_event_with_ids_and_public_fields(
    make_client: Callable[..., Any],
) -> None:
    with make_client(**admin_settings()) as client:
        admin = login_headers(client, ADMIN_USERNAME)
        alice = register(client, "alice")
        user_id = alice["user"]["id"]
        image_id = upload_image(client, alice["headers"]).json()["id"]
        job = process(client, alice["headers"], image_id, [{"op": "grayscale"}]).json()
        assert job["status"] == "done"
        password = {"current_password": "Str0ng!pass", "new_password": "N3w!passw0rd"}
        assert client.post("/auth/change-password", json=password, headers=alice["headers"])
        for change in ({"role": "admin"}, {"is_active": False}, {"is_active": True}):
            app_events_settled(client)  # (SQLite: the relay's commits between reads and writes)
            assert client.patch(f"/users/{user_id}", json=change, headers=admin).status_code == 200
        alice_headers = login_headers(client, "alice", "N3w!passw0rd")
        app_events_settled(client)
        assert client.delete(f"/images/{image_id}", headers=alice_headers).status_code == 204
        app_events_settled(client)
        assert client.delete(f"/users/{user_id}", headers=admin).status_code == 204
        rows = app_events_settled(client)

    events = [(row.type, row.data) for row in rows[1:]]  # after the admin's own user.created
    result_id = job["result_image_id"]
    assert events[:-1] == [
        ("user.created", {"user_id": user_id, "username": "alice"}),
        ("image.uploaded", {"image_id": image_id, "user_id": user_id}),
        (
            "job.done",
            {
                "job_id": job["id"],
                "image_id": image_id,
                "user_id": user_id,
                "result_image_id": result_id,
            },
        ),
        ("user.password_changed", {"user_id": user_id}),
        ("user.role_changed", {"user_id": user_id, "role": "admin"}),
        ("user.deactivated", {"user_id": user_id}),
        ("user.reactivated", {"user_id": user_id}),
        ("image.deleted", {"image_id": image_id, "user_id": user_id}),
    ]
    deleted_type, deleted = events[-1]
    assert deleted_type == "user.deleted" and set(deleted) == {"user_id", "storage_keys"}
    assert deleted["user_id"] == user_id
    assert len(deleted["storage_keys"]) == 1  # the processing result was still hers
    assert {row.state for row in rows} == {"handled"}
    seen = {row.type for row in rows} | {EventType.JOB_FAILED.value}
    assert seen == {event_type.value for event_type in EventType} - ELSEWHERE


def test_a_failed_job_records_job_failed(make_client: Callable[..., Any]) -> None:
    with make_client(job_timeout_s=0.5) as client:
        alice = register(client, "alice")
        image_id = upload_image(client, alice["headers"]).json()["id"]
        job = process(client, alice["headers"], image_id, SLOW).json()
        assert job["status"] == "failed"
        rows = app_events_settled(client)
    (failed,) = [row for row in rows if row.type == "job.failed"]
    assert failed.data == {
        "job_id": job["id"],
        "image_id": image_id,
        "user_id": alice["user"]["id"],
        "error": job["error"],
    }
