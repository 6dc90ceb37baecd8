"""The pipeline builder offers exactly what the API accepts: the same operations, parameters,
ranges, choices and step limit as the `Pipeline` schema of the API's OpenAPI document (built by
`create_app(settings).openapi()`, which starts nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.core.config import Settings
from frontend.components.operations import MAX_OPERATIONS, OPERATIONS, Param


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir: Path = tmp_path_factory.mktemp("openapi")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{workdir / 'app.db'}",
        storage_dir=workdir / "images",
    )
    return create_app(settings).openapi()["components"]["schemas"]


def resolve(schemas: dict[str, Any], ref: str) -> dict[str, Any]:
    return schemas[ref.removeprefix("#/components/schemas/")]


def pipeline_of(schemas: dict[str, Any], request: str) -> dict[str, Any]:
    return schemas[request]["properties"]["operations"]


def api_operations(schemas: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """op name -> its schema, from the discriminator of the process request's pipeline."""
    mapping = pipeline_of(schemas, "ProcessRequest")["items"]["discriminator"]["mapping"]
    return {name: resolve(schemas, ref) for name, ref in mapping.items()}


def without_null(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """An `X | None` property as (X's schema, True); any other as (itself, False)."""
    variants = prop.get("anyOf")
    if variants is None:
        return prop, False
    (value,) = [variant for variant in variants if variant.get("type") != "null"]
    return value, True


def test_the_same_operations_are_offered(schemas: dict[str, Any]) -> None:
    assert set(OPERATIONS) == set(api_operations(schemas))


@pytest.mark.parametrize("op_name", sorted(OPERATIONS))
def test_each_operation_has_the_apis_parameters_and_ranges(
    schemas: dict[str, Any], op_name: str
) -> None:
    schema = api_operations(schemas)[op_name]
    api_params = {name: prop for name, prop in schema["properties"].items() if name != "op"}
    ours: dict[str, Param] = {param.name: param for param in OPERATIONS[op_name].params}
    assert set(ours) == set(api_params)
    required = set(schema.get("required", [])) - {"op"}
    for name, param in ours.items():
        prop, nullable = without_null(api_params[name])
        assert param.optional == (name not in required) == nullable, name
        if "enum" in prop:
            assert param.options == tuple(prop["enum"]), name
            assert param.default in param.options, name
            continue
        assert not param.options, name
        assert param.minimum == prop["minimum"], name
        assert param.maximum == prop["maximum"], name
        integer = prop["type"] == "integer"
        assert isinstance(param.default, int) == integer, name
        assert isinstance(param.step, int) == integer, name
        if not param.optional or param.default != 0:  # 0 stands for "not given"
            assert param.minimum <= param.default <= param.maximum, name


def test_the_step_limit_is_the_apis(schemas: dict[str, Any]) -> None:
    for request in ("ProcessRequest", "BatchProcessRequest"):
        assert pipeline_of(schemas, request)["maxItems"] == MAX_OPERATIONS
