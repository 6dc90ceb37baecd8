"""`GET /metrics` in one process: who may scrape, route templates as labels, and counters that
grow by exactly what was done. (Summing over several uvicorn workers: tests/deploy.)

The in-memory registry is shared by every app of this test process, so each test compares a
scrape after its actions with one before them; database gauges are read fresh and compared
as they are."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from fastapi.testclient import TestClient

from api.models import EventState, Job, JobStatus, OutboxEvent
from api.services.jobs import fail_jobs
from tests.support.accounts import bearer, login, register
from tests.support.databases import app_session
from tests.support.images import process, upload_image
from tests.support.metrics import METRICS_TOKEN, scrape
from tests.support.mfa import enable_mfa, mfa_token, verify_mfa, wrong_totp_code

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def metered(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client(metrics_token=METRICS_TOKEN) as client:
        yield client


def test_metrics_do_not_exist_while_no_token_is_configured(client: TestClient) -> None:
    for headers in ({}, bearer(METRICS_TOKEN)):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"],
)
def test_metrics_need_the_token(metered: TestClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = metered.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "pixelgate_" not in response.text


def test_an_access_token_is_not_a_metrics_token(metered: TestClient) -> None:
    headers = register(metered, "scraper")["headers"]
    assert metered.get("/metrics", headers=headers).status_code == 401


def test_metrics_are_prometheus_text_left_out_of_the_openapi_document(
    metered: TestClient,
) -> None:
    response = metered.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE pixelgate_http_requests_total counter" in response.text
    assert "# TYPE pixelgate_http_request_duration_seconds histogram" in response.text
    assert "/metrics" not in metered.get("/openapi.json").json()["paths"]


def test_requests_are_counted_by_route_template_never_by_raw_path(metered: TestClient) -> None:
    headers = register(metered, "labels")["headers"]
    before = scrape(metered)
    for _ in range(3):
        assert metered.get("/images/123456", headers=headers).status_code == 404
    assert metered.get("/no/such/page/987654").status_code == 404
    assert metered.request("BREW", "/health").status_code == 405
    assert metered.get("/health").status_code == 200
    after = scrape(metered)
    grown = after.minus(before)

    requests = "pixelgate_http_requests_total"
    assert grown.value(requests, route="/images/{image_id}", method="GET", status="404") == 3
    assert grown.value(requests, route="unmatched", method="GET", status="404") == 1
    assert grown.value(requests, route="/health", method="other", status="405") == 1
    assert grown.value(requests, route="/health", method="GET", status="200") == 1
    duration_count = "pixelgate_http_request_duration_seconds_count"
    assert grown.value(duration_count, route="/images/{image_id}", method="GET") == 3
    routes = after.label_values(requests, "route")
    assert not [route for route in routes if "123456" in route or "987654" in route]
    assert "BREW" not in after.label_values(requests, "method")


def test_login_outcomes_lockouts_rate_limits_refreshes_and_reuse(
    make_client: ClientFactory,
) -> None:
    with make_client(
        metrics_token=METRICS_TOKEN,
        rate_limit_enabled=True,
        login_rate_limit="6/minute",
        max_login_attempts=2,
    ) as client:
        account = register(client, "counted")  # one successful login
        before = scrape(client)
        tokens = login(client, "counted").json()  # success
        assert login(client, "counted", "Wrong!guess1").status_code == 401
        assert login(client, "counted", "Wrong!guess2").status_code == 401  # now locked
        assert login(client, "counted").status_code == 429  # locked
        assert login(client, "nobody_here", "Wrong!guess3").status_code == 401
        assert login(client, "nobody_here", "Wrong!guess4").status_code == 429  # rate limited
        rotated = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200
        reused = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reused.status_code == 401
        assert client.get("/auth/me", headers=account["headers"]).status_code == 200
        grown = scrape(client).minus(before)

    logins = "pixelgate_logins_total"
    assert grown.value(logins, outcome="success") == 1
    assert grown.value(logins, outcome="bad_credentials") == 3
    assert grown.value(logins, outcome="locked") == 1
    assert grown.value(logins, outcome="rate_limited") == 1
    assert grown.value("pixelgate_lockouts_total") == 1
    assert grown.value("pixelgate_rate_limited_total", limit="login") == 1
    assert grown.value("pixelgate_refreshes_total") == 1
    assert grown.value("pixelgate_refresh_token_reuse_total") == 1


def test_wrong_second_factor_codes_are_counted_and_can_start_a_lockout(
    make_client: ClientFactory,
) -> None:
    with make_client(metrics_token=METRICS_TOKEN, max_login_attempts=2) as client:
        account = register(client, "two_factor")
        secret = enable_mfa(client, account["headers"])["secret"]
        token = mfa_token(client, "two_factor")
        before = scrape(client)
        for _ in range(2):  # the second one locks the account
            assert verify_mfa(client, token, wrong_totp_code(secret)).status_code == 401
        assert login(client, "two_factor").status_code == 429
        grown = scrape(client).minus(before)
    assert grown.value("pixelgate_logins_total", outcome="mfa_failed") == 2
    assert grown.value("pixelgate_logins_total", outcome="locked") == 1
    assert grown.value("pixelgate_lockouts_total") == 1


@pytest.mark.local_processing  # on Celery they are counted by the workers (test_jobs_celery)
def test_finished_jobs_are_counted_with_their_run_time(metered: TestClient) -> None:
    account = register(metered, "jobs_counted")
    headers = account["headers"]
    image_id = upload_image(metered, headers).json()["id"]
    before = scrape(metered)
    for _ in range(2):
        job = process(metered, headers, image_id, [{"op": "invert"}])
        assert job.json()["status"] == "done", job.text
    with app_session(metered) as db:
        never_ran = Job(owner_id=account["user"]["id"], image_id=image_id, operations=[])
        db.add(never_ran)
        db.commit()
    fail_jobs(metered.app.state.database, [never_ran.id], "stopped by the test")
    grown = scrape(metered).minus(before)

    assert grown.value("pixelgate_jobs_total", status="done") == 2
    assert grown.value("pixelgate_jobs_total", status="failed") == 1
    # The job that never ran has no run time.
    assert grown.value("pixelgate_job_duration_seconds_count") == 2
    assert grown.value("pixelgate_job_duration_seconds_sum") > 0


def test_queue_depth_and_outbox_states_are_read_from_the_database(metered: TestClient) -> None:
    owner = register(metered, "gauged")["user"]["id"]
    with app_session(metered) as db:
        # Jobs of this live server instance: no heartbeat's sweep fails them meanwhile.
        server_id = metered.app.state.job_runner.server_id
        db.add_all(Job(owner_id=owner, operations=[], server_id=server_id) for _ in range(3))
        db.add(
            Job(
                owner_id=owner,
                operations=[],
                status=JobStatus.RUNNING.value,
                server_id=server_id,
            )
        )
        db.add(Job(owner_id=owner, operations=[], status=JobStatus.DONE.value))
        db.commit()
    first = scrape(metered)
    assert first.value("pixelgate_jobs_queued") == 3
    assert first.value("pixelgate_jobs_running") == 1
    with app_session(metered) as db:
        states = [EventState.PENDING] * 2 + [EventState.FAILED] + [EventState.HANDLED] * 4
        db.add_all(_outbox_row(state) for state in states)
        db.commit()
    grown = scrape(metered).minus(first)
    # A relay may handle pending rows meanwhile: pending and handled together grew by 6.
    events = "pixelgate_events"
    assert grown.value(events, state="pending") + grown.value(events, state="handled") == 6
    assert grown.value(events, state="failed") == 1
    assert grown.value(events, state="published") == 0


def _outbox_row(state: EventState) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.uuid4(), type="user.created", data={"user_id": 1}, state=state.value
    )


def test_the_scrape_still_answers_when_the_database_is_down(make_client: ClientFactory) -> None:
    unreachable = "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    with make_client(metrics_token=METRICS_TOKEN, database_url=unreachable) as client:
        result = scrape(client)
    names = {name for name, _labels in result.samples}
    assert "pixelgate_http_requests_total" in names
    assert not names & {"pixelgate_jobs_queued", "pixelgate_jobs_running", "pixelgate_events"}


def test_a_scrape_is_counted_like_any_request(metered: TestClient) -> None:
    first = scrape(metered)
    grown = scrape(metered).minus(first)
    requests = "pixelgate_http_requests_total"
    assert grown.value(requests, route="/metrics", method="GET", status="200") == 1
