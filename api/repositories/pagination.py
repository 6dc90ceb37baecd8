from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.schemas.common import PageParams

RowT = TypeVar("RowT")


def fetch_page(db: Session, statement: Select[Any], page: PageParams) -> tuple[list[Any], int]:
    """One page of `statement` (already ordered newest first) and the total count."""
    total = db.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    items = list(db.scalars(statement.limit(page.limit).offset(page.offset)))
    return items, total
