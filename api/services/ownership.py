"""One rule for everything a user owns (images, jobs): 404 when it does not exist, 403 when it
is someone else's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import User
from api.services.errors import Forbidden, NotFound


class Owned(Protocol):
    id: Any
    owner_id: int


OwnedT = TypeVar("OwnedT", bound=Owned)


def get_owned(db: Session, model: type[OwnedT], user: User, row_id: int, noun: str) -> OwnedT:
    return _owned(db.get(model, row_id), user, noun)


def get_owned_many(
    db: Session, model: type[OwnedT], user: User, row_ids: Sequence[int], noun: str
) -> list[OwnedT]:
    """All of them or an error, read in one query; the first id (in order) that fails decides
    which error."""
    found = db.scalars(select(model).where(model.id.in_(row_ids)))  # type: ignore[attr-defined]
    rows = {row.id: row for row in found}
    return [_owned(rows.get(row_id), user, noun) for row_id in row_ids]


def _owned(row: OwnedT | None, user: User, noun: str) -> OwnedT:
    if row is None:
        raise NotFound(f"{noun.capitalize()} not found")
    if row.owner_id != user.id:
        raise Forbidden(f"This {noun} belongs to another user")
    return row
