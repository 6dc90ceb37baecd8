"""Server instances: every API process registers, beats, and fails the jobs of instances that
stopped or went silent, so a crashed process's jobs never stay queued or running."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.core.db import Database, writes
from api.models import Job, JobStatus, ServerInstance, utcnow
from api.services.jobs import fail_unfinished_jobs, update_jobs

log = logging.getLogger("pixelgate.jobs")

STALE_JOB_ERROR = "The server stopped before this job finished; submit it again"
# A server instance missing this many heartbeats in a row is taken for dead.
MISSED_HEARTBEATS = 3
# Rows of instances silent for this long are forgotten (their jobs were failed long before).
FORGET_INSTANCES_AFTER = timedelta(days=1)


# Under Celery a queued job waits in the broker, not in any process: its row names this
# instance, which every process of the cluster (API and worker) beats, so the jobs of the
# queue are never taken for a dead server's while anything of the cluster runs.
BROKER_QUEUE_INSTANCE_ID = "celery-broker-queue"
BROKER_QUEUE_HOSTNAME = "(the Celery broker's queue)"


def register_server(database: Database) -> str:
    """Records this API process as a live server instance; returns its id."""
    server_id = uuid.uuid4().hex
    with database.session() as db, writes(db):
        db.add(ServerInstance(id=server_id, hostname=socket.gethostname()[:255], pid=os.getpid()))
    return server_id


def beat(database: Database, server_id: str, hostname: str | None = None) -> None:
    """Proves the instance alive; an instance whose row was forgotten meanwhile (silent for a
    day, e.g. a suspended host) is recorded again."""
    try:
        with database.session() as db, writes(db):
            result = db.execute(
                update(ServerInstance)
                .where(ServerInstance.id == server_id)
                .values(heartbeat_at=utcnow())
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                db.add(
                    ServerInstance(
                        id=server_id,
                        hostname=(hostname or socket.gethostname())[:255],
                        pid=os.getpid(),
                    )
                )
    except IntegrityError:  # another process recorded it first: alive either way
        pass


def mark_server_stopped(database: Database, server_id: str) -> None:
    with database.session() as db, writes(db):
        db.execute(
            update(ServerInstance).where(ServerInstance.id == server_id).values(stopped_at=utcnow())
        )


def fail_stale_jobs(db: Session, heartbeat_s: float) -> int:
    """Fails queued or running jobs whose server stopped or missed its heartbeats.

    Jobs of live instances (this one, sibling workers, other hosts) are left alone, so any
    process may run this at start-up and then periodically. Jobs naming no instance predate
    instance tracking, or lost theirs, and are failed too.
    """
    now = utcnow()
    dead_servers = select(ServerInstance.id).where(
        or_(
            ServerInstance.stopped_at.is_not(None),
            ServerInstance.heartbeat_at < now - timedelta(seconds=heartbeat_s * MISSED_HEARTBEATS),
        )
    )
    with writes(db):
        failed = fail_unfinished_jobs(
            db, STALE_JOB_ERROR, or_(Job.server_id.is_(None), Job.server_id.in_(dead_servers))
        )
        db.execute(
            delete(ServerInstance).where(ServerInstance.heartbeat_at < now - FORGET_INSTANCES_AFTER)
        )
    count = len(failed)
    if count:
        log.warning("failed %s job(s) left unfinished by a server that stopped", count)
    return count


def hand_over_to_broker_queue(database: Database, job_ids: Sequence[int], server_id: str) -> None:
    """The broker has these jobs' tasks: they wait in its queue now, not in this process, and
    outlive it. (Until this runs they name the process that queued them, so one that died
    between writing them and sending their tasks has them failed, never stuck.)"""
    with database.session() as db, writes(db):
        db.execute(
            update_jobs(
                Job.id.in_(job_ids),
                Job.status == JobStatus.QUEUED.value,
                Job.server_id == server_id,
            ).values(server_id=BROKER_QUEUE_INSTANCE_ID)
        )
