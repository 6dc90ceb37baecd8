"""`GET /admin/operations`: the figures of the dashboard's Operations page, for admins only."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from api.models import Job, JobStatus, utcnow
from tests.support.accounts import ADMIN_USERNAME, login, login_headers, register
from tests.support.databases import app_session


def test_only_admins_see_operations(admin_client: TestClient) -> None:
    assert admin_client.get("/admin/operations").status_code == 401
    member = register(admin_client, "plain_member")["headers"]
    assert admin_client.get("/admin/operations", headers=member).status_code == 403


def test_the_window_is_checked(admin_client: TestClient) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    for minutes in (0, 11, 24 * 60 + 1):
        response = admin_client.get(f"/admin/operations?window_minutes={minutes}", headers=admin)
        assert response.status_code == 422


def test_jobs_logins_queue_and_outbox_over_the_window(admin_client: TestClient) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    owner = register(admin_client, "worker_bee")["user"]["id"]
    assert login(admin_client, "worker_bee", "Wrong!guess1").status_code == 401
    assert login(admin_client, "nobody_at_all", "Wrong!guess2").status_code == 401
    now = utcnow()
    with app_session(admin_client) as db:
        for status, minutes_ago in (
            (JobStatus.DONE, 1),
            (JobStatus.DONE, 50),
            (JobStatus.FAILED, 2),
        ):
            finished = now - timedelta(minutes=minutes_ago)
            db.add(Job(owner_id=owner, operations=[], status=status.value, finished_at=finished))
        # Outside the window: not in the series.
        old = now - timedelta(hours=3)
        db.add(Job(owner_id=owner, operations=[], status=JobStatus.DONE.value, finished_at=old))
        # Of this live server instance: no heartbeat's sweep fails them meanwhile.
        server_id = admin_client.app.state.job_runner.server_id
        db.add_all(Job(owner_id=owner, operations=[], server_id=server_id) for _ in range(2))
        db.commit()

    body = admin_client.get("/admin/operations", headers=admin).json()
    assert body["window_minutes"] == 60 and body["bucket_seconds"] == 300
    assert len(body["jobs"]) == len(body["logins"]) == 12
    assert [point["start"] for point in body["jobs"]] == sorted(p["start"] for p in body["jobs"])
    assert sum(point["counts"]["done"] for point in body["jobs"]) == 2
    assert sum(point["counts"]["failed"] for point in body["jobs"]) == 1
    assert body["jobs"][-1]["counts"] == {"done": 1, "failed": 1}  # the last five minutes
    assert (body["jobs_queued"], body["jobs_running"]) == (2, 0)
    # The admin's login and the member's (register logs in), and the two wrong passwords.
    assert sum(point["counts"]["failed"] for point in body["logins"]) == 2
    assert sum(point["counts"]["succeeded"] for point in body["logins"]) == 2
    assert body["login_failures"] == {"bad_credentials": 2}
    assert set(body["events"]) == {"pending", "published", "handled", "failed"}
    assert body["api_processes"] == 1


def test_request_totals_grow_between_two_answers(admin_client: TestClient) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    first = admin_client.get("/admin/operations", headers=admin).json()["requests"]
    for _ in range(3):
        assert admin_client.get("/no/such/page").status_code == 404
    second = admin_client.get("/admin/operations", headers=admin).json()["requests"]
    # The three 404s and the first /admin/operations itself.
    assert second["requests"] - first["requests"] == 4
    assert second["client_errors"] - first["client_errors"] == 3
    assert second["server_errors"] - first["server_errors"] == 0
    routes = {(r["route"], r["method"]): r for r in second["routes"]}
    assert routes[("/admin/operations", "GET")]["requests"] >= 1
    assert ("unmatched", "GET") in routes
