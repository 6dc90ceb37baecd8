from __future__ import annotations

from fastapi.testclient import TestClient


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


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = client.get("/nope")
    assert made.status_code == 404
    assert len(made.headers["X-Request-ID"]) == 32
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["X-Request-ID"] != "bad id\nwith newline"
