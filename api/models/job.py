from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        Index("ix_jobs_owner_status", "owner_id", "status"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_image_id", "image_id"),
        Index("ix_jobs_server_id", "server_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    operations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    result_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # The API process that runs it; NULL for jobs from before instances were tracked.
    server_id: Mapped[str | None] = mapped_column(
        ForeignKey("server_instances.id", ondelete="SET NULL")
    )
