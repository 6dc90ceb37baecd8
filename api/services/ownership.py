"""One rule for everything a user owns (images, jobs): 404 when it does not exist, 403 when it
is someone else's."""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from api.models import User
from api.services.errors import Forbidden, NotFound


class Owned(Protocol):
    owner_id: int


OwnedT = TypeVar("OwnedT", bound=Owned)


def get_owned(db: Session, model: type[OwnedT], user: User, row_id: int, noun: str) -> OwnedT:
    row = db.get(model, row_id)
    if row is None:
        raise NotFound(f"{noun.capitalize()} not found")
    if row.owner_id != user.id:
        raise Forbidden(f"This {noun} belongs to another user")
    return row
