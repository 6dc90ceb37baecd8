from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, utcnow


class ServerInstance(Base):
    """One running API process that queues and runs jobs, proven alive by its heartbeat.

    Jobs name the instance that runs them, so a process starting up (or any live one) fails
    only the jobs of instances that stopped or went silent, never a sibling worker's.
    """

    __tablename__ = "server_instances"
    __table_args__ = (Index("ix_server_instances_heartbeat_at", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
