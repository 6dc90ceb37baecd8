"""The OpenAPI document of Health and Auth is true: routes, error statuses, bodies, security."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

# Every status each route can answer (the contract's rows, plus 422 wherever there is input).
EXPECTED_STATUSES = {
    ("get", "/health"): {"200", "503"},
    ("post", "/auth/signup"): {"201", "409", "422", "429"},
    ("post", "/auth/login"): {"200", "401", "403", "422", "429"},
    ("post", "/auth/token"): {"200", "401", "403", "422", "429"},
    ("post", "/auth/refresh"): {"200", "401", "422", "429"},
    ("post", "/auth/logout"): {"204", "422"},
    ("post", "/auth/logout-all"): {"204", "401"},
    ("get", "/auth/me"): {"200", "401"},
    ("patch", "/auth/me"): {"200", "401", "422"},
    ("post", "/auth/change-password"): {"204", "400", "401", "422"},
    ("get", "/auth/sessions"): {"200", "401"},
    ("delete", "/auth/sessions/{session_id}"): {"204", "401", "404", "422"},
    ("get", "/auth/login-history"): {"200", "401", "422"},
    ("get", "/auth/password-policy"): {"200"},
    ("post", "/auth/password-reset/request"): {"202", "422", "429"},
    ("post", "/auth/password-reset/confirm"): {"204", "400", "422"},
    ("post", "/auth/verify-email/request"): {"202", "401", "409", "429"},
    ("post", "/auth/verify-email/confirm"): {"200", "400", "422"},
    ("get", "/auth/mfa"): {"200", "401"},
    ("post", "/auth/mfa/totp/setup"): {"200", "401", "409"},
    ("post", "/auth/mfa/totp/enable"): {"200", "400", "401", "409", "422", "429"},
    ("post", "/auth/mfa/disable"): {"204", "400", "401", "409", "422", "429"},
    ("post", "/auth/mfa/recovery-codes"): {"200", "400", "401", "409", "422", "429"},
    ("post", "/auth/mfa/verify"): {"200", "401", "403", "422", "429"},
}
NEEDS_BEARER = {
    ("post", "/auth/logout-all"),
    ("get", "/auth/me"),
    ("patch", "/auth/me"),
    ("post", "/auth/change-password"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/{session_id}"),
    ("get", "/auth/login-history"),
    ("post", "/auth/verify-email/request"),
    ("get", "/auth/mfa"),
    ("post", "/auth/mfa/totp/setup"),
    ("post", "/auth/mfa/totp/enable"),
    ("post", "/auth/mfa/disable"),
    ("post", "/auth/mfa/recovery-codes"),
}


@pytest.fixture(scope="module")
def openapi(docs_client: TestClient) -> dict[str, Any]:
    response = docs_client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_swagger_ui_is_served(docs_client: TestClient) -> None:
    response = docs_client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()
    assert "/openapi.json" in response.text


@pytest.mark.parametrize(("method", "path"), list(EXPECTED_STATUSES))
def test_every_route_declares_the_statuses_it_answers(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    operation = openapi["paths"][path][method]
    declared = set(operation["responses"])
    missing = EXPECTED_STATUSES[(method, path)] - declared
    assert not missing, f"{method.upper()} {path} does not declare {sorted(missing)}"


@pytest.mark.parametrize(("method", "path"), list(EXPECTED_STATUSES))
def test_error_bodies_are_declared_with_their_real_shape(
    openapi: dict[str, Any], method: str, path: str
) -> None:
    for status, response in openapi["paths"][path][method]["responses"].items():
        if not status.startswith(("4", "5")) or path == "/health":
            continue
        schema = _resolve(openapi, response["content"]["application/json"]["schema"])
        detail = _resolve(openapi, schema["properties"]["detail"])
        if status == "422":
            # FastAPI's own validation errors and rule violations share this shape.
            item = _resolve(openapi, detail["items"])
            assert detail["type"] == "array"
            assert {"loc", "msg", "type"} <= set(item["properties"])
        else:
            assert detail["type"] == "string", (method, path, status)


def test_bearer_scheme_is_the_oauth2_password_flow_on_auth_token(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    oauth2 = [s for s in schemes.values() if s["type"] == "oauth2"]
    assert len(oauth2) == 1
    assert oauth2[0]["flows"]["password"]["tokenUrl"] == "/auth/token"
    name = next(n for n, s in schemes.items() if s["type"] == "oauth2")
    for method, path in NEEDS_BEARER:
        security = openapi["paths"][path][method].get("security", [])
        assert {name: []} in security, (method, path)
    for method, path in set(EXPECTED_STATUSES) - NEEDS_BEARER:
        assert "security" not in openapi["paths"][path][method], (method, path)


def test_token_route_takes_a_form(openapi: dict[str, Any]) -> None:
    body = openapi["paths"]["/auth/token"]["post"]["requestBody"]["content"]
    form = _resolve(openapi, body["application/x-www-form-urlencoded"]["schema"])
    assert {"username", "password"} <= set(form["required"])


def test_login_declares_both_of_its_answers(openapi: dict[str, Any]) -> None:
    schema = openapi["paths"]["/auth/login"]["post"]["responses"]["200"]["content"]
    variants = {
        _resolve(openapi, variant)["title"]
        for variant in schema["application/json"]["schema"]["anyOf"]
    }
    assert variants == {"TokenPair", "MfaRequiredOut"}
    challenge = openapi["components"]["schemas"]["MfaRequiredOut"]
    assert {"mfa_required", "mfa_token", "expires_in"} <= set(challenge["properties"])


def test_token_route_says_where_the_second_factor_goes(openapi: dict[str, Any]) -> None:
    assert "client_secret" in openapi["paths"]["/auth/token"]["post"]["description"]


def test_no_secret_field_is_in_any_response_schema(openapi: dict[str, Any]) -> None:
    for name in ("UserOut", "SessionOut", "LoginEventOut"):
        properties = set(openapi["components"]["schemas"][name]["properties"])
        assert not {p for p in properties if "hash" in p or "password" in p}, name
