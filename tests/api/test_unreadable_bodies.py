"""Bodies FastAPI cannot read answer 422 in FastAPI's own shape on every route that takes one,
as the OpenAPI document says; and a literal route is never taken for an id."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

NOT_UTF8_JSON = b'{"name": "caf\xe9"}'  # Latin-1, not UTF-8
# Streamed to storage by its own parser, after authentication (tests/api/test_images.py).
UPLOAD = ("post", "/images")
NOT_JSON = b"{not json"
BROKEN_MULTIPART = b"no boundary where one was promised"


def _operations_with_a_body(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (method, path, next(iter(operation["requestBody"]["content"])))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation and (method, path) != UPLOAD
    ]


def _assert_fastapi_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"][0] == "body"
    assert problem["msg"] and problem["type"]


def test_every_route_with_a_body_answers_an_unreadable_one_with_the_declared_422(
    docs_client: TestClient,
) -> None:
    document = docs_client.get("/openapi.json").json()
    operations = _operations_with_a_body(document)
    assert len(operations) >= 11  # every JSON and form route is in the document
    for method, path, media_type in operations:
        url = re.sub(r"\{[^}]+\}", "1", path)
        declared = document["paths"][path][method]["responses"]
        assert declared["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationErrorOut"
        }, (method, path)
        if media_type == "application/json":
            for body in (NOT_UTF8_JSON, NOT_JSON):
                response = docs_client.request(
                    method, url, content=body, headers={"Content-Type": media_type}
                )
                _assert_fastapi_422(response)
        else:
            response = docs_client.request(
                method,
                url,
                content=BROKEN_MULTIPART,
                headers={"Content-Type": "multipart/form-data; boundary=zz"},
            )
            _assert_fastapi_422(response)


def test_a_body_that_is_not_utf8_says_so(docs_client: TestClient) -> None:
    response = docs_client.post(
        "/auth/login", content=NOT_UTF8_JSON, headers={"Content-Type": "application/json"}
    )
    assert response.json() == {
        "detail": [
            {
                "loc": ["body"],
                "type": "json_invalid",
                "msg": "JSON decode error: the body is not UTF-8",
            }
        ]
    }


def test_other_http_errors_keep_their_status(docs_client: TestClient) -> None:
    assert docs_client.get("/no/such/route").status_code == 404
    assert docs_client.put("/auth/login", json={}).status_code == 405


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
def test_process_batch_is_not_taken_for_an_image_id(docs_client: TestClient, method: str) -> None:
    response = docs_client.request(method, "/images/process-batch")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    paths = docs_client.get("/openapi.json").json()["paths"]
    assert set(paths["/images/process-batch"]) == {"post"}
