from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.broker import fresh_rabbitmq_vhost
from tests.support.databases import fresh_redis_database
from tests.support.object_store import ObjectStore
from tests.support.servers import free_port


def test_health_reports_database_and_workers(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert isinstance(body["workers"], int)


def test_health_is_503_when_database_is_unreachable(make_client) -> None:
    url = "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    with make_client(database_url=url) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert response.json()["detail"] == "Not ready: database unreachable"


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = client.get("/nope")
    assert made.status_code == 404
    assert len(made.headers["X-Request-ID"]) == 32
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["X-Request-ID"] != "bad id\nwith newline"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose kernel completes every TCP handshake but whose server never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def test_health_reports_the_shared_rate_limit_store(make_client) -> None:
    with (
        fresh_redis_database() as redis_url,
        make_client(rate_limit_enabled=True, rate_limit_storage_uri=redis_url) as client,
    ):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["rate_limits"] == "ok"
    assert "detail" not in response.json()


def test_health_leaves_out_what_is_not_configured(client: TestClient) -> None:
    settings = client.app.state.settings
    expected = {"status", "database", "workers"}
    if settings.processing_backend == "celery":
        expected.add("broker")  # the jobs' broker
    if settings.storage_backend == "s3":
        expected.add("object_store")
    assert set(client.get("/health").json()) == expected


def test_an_unreachable_rate_limit_store_is_a_503_that_names_it(make_client) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with make_client(rate_limit_enabled=True, rate_limit_storage_uri=url) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["rate_limits"]) == (
        "unavailable",
        "ok",
        "unreachable",
    )
    assert body["detail"] == "Not ready: rate_limits unreachable"


def test_a_part_that_never_answers_is_unreachable_after_the_timeout(
    make_client, silent_server: int
) -> None:
    """Neither client gives up on its own here (Redis has no timeout; libpq waits 10 s): the
    answer comes because each probe is bounded by HEALTH_CHECK_TIMEOUT_S."""
    with make_client(
        database_url=f"postgresql+psycopg2://nobody@127.0.0.1:{silent_server}/none",
        rate_limit_enabled=True,
        rate_limit_storage_uri=f"redis://127.0.0.1:{silent_server}/0",
        health_check_timeout_s=0.5,
    ) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["detail"] == "Not ready: database unreachable, rate_limits unreachable"


def test_the_cache_and_the_broker_are_reported_but_not_required(make_client) -> None:
    """Without them reads go to the database and events wait in the outbox: still ready."""
    with (
        fresh_redis_database() as redis_url,
        make_client(
            cache_url=redis_url, events_broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/"
        ) as client,
    ):
        response = client.get("/health")
        under_celery = client.app.state.settings.processing_backend == "celery"
    assert response.status_code == 200
    body = response.json()
    # Under Celery `broker` is the jobs' broker; this other one is the events'.
    events_broker = body["events_broker" if under_celery else "broker"]
    assert (body["status"], body["cache"], events_broker) == ("ok", "ok", "unreachable")


def test_a_reachable_broker_is_ok(make_client) -> None:
    with fresh_rabbitmq_vhost() as broker_url, make_client(events_broker_url=broker_url) as client:
        assert client.get("/health").json()["broker"] == "ok"


def test_the_object_store_is_required(
    make_client, object_store: ObjectStore, s3_bucket: str
) -> None:
    with make_client(**object_store.settings(s3_bucket)) as client:
        assert client.get("/health").json()["object_store"] == "ok"
    # Credentials the store refuses: as good as unreachable.
    refused = {**object_store.settings(s3_bucket), "s3_secret_access_key": "not-the-secret"}
    with make_client(**refused) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["object_store"] == "unreachable"
    assert response.json()["detail"] == "Not ready: object_store unreachable"
