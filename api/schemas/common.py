"""Shapes shared by every router: pages, errors, and their OpenAPI declarations."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

# Ids are 32-bit integer columns: a larger path value would overflow the driver (a 500).
MAX_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="An id")]
# Past this the database driver cannot even bind the number (a 500); no list is that long.
MAX_OFFSET = 2**31 - 1


def reject_control_characters(value: str | None) -> str | None:
    """Names and filters are text: control characters have no place in them, and PostgreSQL
    cannot store or compare NUL at all (a 500 if it got that far)."""
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


NoControlCharacters = AfterValidator(reject_control_characters)


class ErrorOut(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """FastAPI's own 422 body; rule violations raised by services use it too."""

    detail: list[ValidationErrorItem]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = (
        DEFAULT_PAGE_SIZE
    ),
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(page_params)]


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation error",
    429: "Too many requests (see Retry-After)",
    503: "Temporarily unavailable (see Retry-After)",
}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route really returns."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in status_codes:
        model: type[BaseModel] = ValidationErrorOut if code == 422 else ErrorOut
        responses[code] = {"model": model, "description": _DESCRIPTIONS[code]}
    return responses


ModelT = TypeVar("ModelT", bound=BaseModel)


def to_page(model: type[ModelT], items: list[Any], total: int, page: PageParams) -> Page[ModelT]:
    """A Page of `model` built from ORM rows."""
    return Page[model](  # type: ignore[valid-type]
        items=[model.model_validate(item, from_attributes=True) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
