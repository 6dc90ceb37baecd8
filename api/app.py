"""The app factory: every app, the default one and each test's, is built here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from api.core.config import Settings, load_settings
from api.core.credentials import password_hasher_from_settings, token_codec_from_settings
from api.core.db import Database
from api.core.error_tracking import init_error_tracking
from api.core.logging import configure_logging
from api.core.mail import build_mailer
from api.core.metrics import API_PROCESSES, WORKER_PROCESSES
from api.core.metrics_exposition import MetricsSource, forget_this_process
from api.core.rate_limit import RateLimiter
from api.core.readiness import Dependency, ReadinessChecker, tcp_probe
from api.core.request_context import RequestContextMiddleware
from api.core.secret_box import SecretBox
from api.core.security import PasswordHasher
from api.errors import install_error_handlers
from api.events.context import HandlerContext
from api.events.relay import EventRelay
from api.processing.celery_app import make_celery
from api.processing.engine import ProcessingEngine
from api.routers import (
    account,
    admin,
    api_keys,
    events,
    health,
    images,
    jobs,
    metrics,
    mfa,
    password_policy,
    recovery,
    tokens,
    users,
)
from api.services.auth import AuthService
from api.services.authentication import Authenticator
from api.services.celery_job_runner import CeleryJobRunner
from api.services.event_handlers import build_handler_registry
from api.services.job_runner import JobRunner, LocalJobRunner
from api.services.operations import DatabaseStateCollector
from api.services.server_instances import fail_stale_jobs, register_server
from api.services.storage_sweep import sweep_storage, sweep_storage_forever
from api.services.user_cache import UserCache
from api.services.users import AdminAccountTaken, ensure_admin
from api.storage import Storage, StorageUnavailable
from api.storage.factory import storage_from_settings
from api.storage.s3 import S3Storage

log = logging.getLogger("pixelgate.app")

DESCRIPTION = """
Accounts with JWT access tokens and rotating refresh tokens, login history and sessions,
and a private image library processed by a pool of worker processes.

**Authorize** with username and password (OAuth2 password flow on `/auth/token`), or with an
`X-API-Key` on image and job routes.
"""


def _bootstrap_admin(database: Database, settings: Settings, hasher: PasswordHasher) -> None:
    try:
        with database.session() as db:
            ensure_admin(db, settings, hasher)
    except AdminAccountTaken as exc:
        log.warning("first admin not created: %s", exc)


def _start_server_instance(database: Database, storage: Storage, settings: Settings) -> str | None:
    """Registers this process as a job-running instance, then fails jobs of dead instances
    and sweeps storage. Best effort: with the database (or the store) unreachable the app
    still starts (and /health says so), without instance tracking."""
    try:
        server_id = register_server(database)
        with database.session() as db:
            fail_stale_jobs(db, settings.job_heartbeat_s)
    except SQLAlchemyError as exc:
        log.warning("start-up recovery skipped: database unavailable (%s)", type(exc).__name__)
        return None
    try:
        if isinstance(storage, S3Storage):
            storage.ensure_bucket()
        with database.session() as db:
            sweep_storage(db, storage, settings.storage_orphan_grace_s)
    except (SQLAlchemyError, StorageUnavailable) as exc:
        log.warning("start-up storage sweep skipped (%s)", type(exc).__name__)
    return server_id


def _job_runner(
    settings: Settings, database: Database, storage: Storage, server_id: str | None
) -> JobRunner:
    if settings.processing_backend == "celery":
        return CeleryJobRunner(database, storage, settings, make_celery(settings), server_id)
    engine = ProcessingEngine.from_settings(settings, storage)
    engine.warm_up()
    return LocalJobRunner(database, storage, settings, engine, server_id)


def _readiness_checker(settings: Settings, state: State) -> ReadinessChecker:
    """What /health probes. Required (a 503 without them): the database, the shared
    rate-limit store, the object store. Reported only: the cache (reads fall back to the
    database), the brokers (jobs and events wait in their tables). Each only when configured."""
    dependencies = [Dependency("database", state.database.is_reachable)]
    if state.rate_limiter.shared_storage:
        dependencies.append(Dependency("rate_limits", state.rate_limiter.is_reachable))
    if isinstance(state.storage, S3Storage):
        dependencies.append(Dependency("object_store", state.storage.is_reachable))
    if state.user_cache is not None:
        dependencies.append(Dependency("cache", state.user_cache.is_reachable, required=False))
    jobs_url = ""
    if isinstance(state.job_runner, CeleryJobRunner) and settings.celery_broker_url:
        jobs_url = settings.celery_broker_url.get_secret_value()
        dependencies.append(Dependency("broker", state.job_runner.broker_reachable, required=False))
    events_url = settings.events_broker_url.get_secret_value()
    if events_url and events_url != jobs_url:  # one broker for both is probed once
        name = "events_broker" if jobs_url else "broker"
        dependencies.append(Dependency(name, tcp_probe(events_url), required=False))
    return ReadinessChecker(dependencies, settings.health_check_timeout_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    init_error_tracking(settings, "api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database, storage = app.state.database, app.state.storage
        await run_in_threadpool(_bootstrap_admin, database, settings, app.state.password_hasher)
        server_id = await run_in_threadpool(_start_server_instance, database, storage, settings)
        app.state.job_runner = _job_runner(settings, database, storage, server_id)
        if isinstance(app.state.job_runner, LocalJobRunner):
            app.state.processing = app.state.job_runner.engine
        await run_in_threadpool(app.state.job_runner.prepare)
        app.state.job_runner.start_heartbeat()
        await app.state.event_relay.start()
        sweeper = asyncio.create_task(sweep_storage_forever(database, storage, settings))
        app.state.readiness = _readiness_checker(settings, app.state)
        API_PROCESSES.set(1)
        WORKER_PROCESSES.set(app.state.job_runner.processing_workers)
        try:
            yield
        finally:
            API_PROCESSES.set(0)
            WORKER_PROCESSES.set(0)
            forget_this_process()
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await app.state.job_runner.shutdown()
            await app.state.event_relay.stop()
            await app.state.database.dispose_lookup_engine()
            app.state.database.dispose()
            if app.state.user_cache is not None:
                app.state.user_cache.close()

    app = FastAPI(
        title="Pixelgate API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.database = Database(settings.database_url)
    app.state.mailer = build_mailer(settings)
    app.state.storage = storage_from_settings(settings)
    app.state.token_codec = token_codec_from_settings(settings)
    app.state.password_hasher = password_hasher_from_settings(settings)
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_storage_uri, settings.rate_limit_enabled
    )
    app.state.secret_box = SecretBox.from_settings(settings)
    app.state.auth_service = AuthService(
        settings,
        app.state.rate_limiter,
        app.state.password_hasher,
        app.state.token_codec,
        app.state.secret_box,
    )
    app.state.user_cache = UserCache.from_settings(settings)
    app.state.authenticator = Authenticator(
        app.state.token_codec, app.state.database, app.state.user_cache
    )
    if app.state.user_cache is not None:
        app.state.user_cache.watch(app.state.database.session_factory)
    app.state.event_relay = EventRelay(
        app.state.database,
        settings,
        build_handler_registry(),
        HandlerContext(settings, app.state.database, app.state.storage, app.state.mailer),
    )
    app.state.metrics = MetricsSource([DatabaseStateCollector(app.state.database)])

    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(RequestContextMiddleware, settings=settings)

    for router in (
        health.router,
        tokens.router,
        account.router,
        password_policy.router,
        mfa.router,
        recovery.router,
        users.router,
        admin.router,
        events.router,
        api_keys.router,
        images.router,
        jobs.router,
        metrics.router,
    ):
        app.include_router(router)
    return app
