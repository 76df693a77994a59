import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.config import Settings, get_settings
from app.infra.api.body_limit import BodyLimitMiddleware
from app.infra.api.current_user_fast_path import CurrentUserFastPath
from app.infra.api.docs import add_docs
from app.infra.api.errors import register_error_handlers
from app.infra.api.request_context import RequestContextMiddleware
from app.infra.api.routers import auth, health, recovery, sessions, users
from app.infra.api.routers.metrics import metrics_router, sample_periodically
from app.infra.api.services import Services
from app.infra.auth.jwt_token_issuer import JwtTokenIssuer
from app.infra.clock import SystemClock
from app.infra.composition import (
    email_sender,
    housekeeping,
    mail_dispatcher,
    recovery_limiter,
    recovery_policy,
    session_policy,
)
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.login_throttle import SqlLoginThrottle
from app.infra.db.refresh_grants import open_refresh_grants
from app.infra.db.user_reader import open_user_reader
from app.infra.metrics import Metrics
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher
from app.logger import configure_logging

# Queries the batched user reader keeps in flight (on PostgreSQL, on
# connections of its own, besides the main pool). One: lookups made while it
# runs share the next query, which under load beats more, smaller queries
# (make bench: 19.1k rps with one, 16.2k with four).
READER_CONNECTIONS = 1
# Connections of the refresh grant's own pool on PostgreSQL (besides the main
# pool): each refresh holds one for four statements, well under a millisecond.
REFRESH_CONNECTIONS = 4
# How often expired login-failure counters are deleted (at most).
LOGIN_PURGE_SECONDS = 300
# How often each process looks for mail to send.
MAIL_POLL_SECONDS = 1.0
# How often each process deletes expired sessions, tokens and sent mail.
HOUSEKEEPING_SECONDS = 600
# How often each process samples its gauges (hash queue, pool) for scrapes.
METRICS_SAMPLE_SECONDS = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, json_lines=settings.ENV == "prod")
    metrics = Metrics() if settings.METRICS_ENABLED else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One engine, pool and hashing pool per process, shared by all requests.
        engine = create_engine(settings)
        clock = SystemClock()
        hasher = BcryptPasswordHasher(
            settings.BCRYPT_ROUNDS,
            settings.HASH_WORKERS,
            settings.HASH_QUEUE_TIMEOUT_SECONDS,
            on_wait=metrics.hash_waited if metrics else None,
        )
        sessionmaker = create_sessionmaker(engine)
        reader = await open_user_reader(settings, engine, READER_CONNECTIONS)
        refresh_grants = await open_refresh_grants(settings, engine, REFRESH_CONNECTIONS)
        throttle = SqlLoginThrottle(
            sessionmaker,
            clock,
            settings.LOGIN_MAX_FAILURES,
            settings.LOGIN_LOCKOUT_SECONDS,
            turn_timeout=settings.HASH_QUEUE_TIMEOUT_SECONDS,
        )
        tokens = JwtTokenIssuer(
            settings.JWT_SECRET_KEY,
            settings.JWT_ALGORITHM,
            settings.ACCESS_TOKEN_EXPIRE_MINUTES,
            clock,
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE,
        )
        sender = email_sender(settings)
        dispatcher = mail_dispatcher(settings, sessionmaker, sender, clock)
        app.state.services = services = Services(
            engine=engine,
            sessionmaker=sessionmaker,
            reader=reader,
            refresh_grants=refresh_grants,
            hasher=hasher,
            tokens=tokens,
            throttle=throttle,
            clock=clock,
            sessions=session_policy(settings),
            recovery=recovery_policy(settings),
            limiter=recovery_limiter(settings, sessionmaker, clock),
            mail=dispatcher,
            mail_sender=sender,
            metrics=metrics,
        )
        purge_every = min(settings.LOGIN_LOCKOUT_SECONDS, LOGIN_PURGE_SECONDS)
        purger = asyncio.create_task(throttle.purge_periodically(purge_every))
        mailer = asyncio.create_task(dispatcher.run_forever(MAIL_POLL_SECONDS))
        cleaner = housekeeping(settings, sessionmaker, clock)
        sweeper = asyncio.create_task(cleaner.purge_periodically(HOUSEKEEPING_SECONDS))
        tasks = [purger, mailer, sweeper]
        if metrics:
            metrics.start()
            tasks.append(
                asyncio.create_task(sample_periodically(services, metrics, METRICS_SAMPLE_SECONDS))
            )
        # Everything made so far lives as long as the process: keep it out of
        # the cyclic collector's full passes, which otherwise stall the event
        # loop for tens of milliseconds under load (garbage is collected first).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # Each finishes its cancellation (rolls back, returns its connection)
            # before the pools close.
            await asyncio.gather(*tasks, return_exceptions=True)
            if metrics:
                metrics.close()
            hasher.close()
            await reader.close()
            await refresh_grants.close()
            await engine.dispose()

    app = FastAPI(
        # FastAPI's OpenTelemetry hooks check for a configured provider on every
        # request; this service configures none, so they stay off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="User service",
        version="1.0.0",
        description="User management with OAuth2 password-flow bearer tokens.",
        lifespan=lifespan,
        # DOCS_ENABLED=false hides Swagger UI, ReDoc and the schema (e.g. in production).
        # add_docs serves the first two, with their assets: FastAPI's load them from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.DOCS_ENABLED else None,
    )
    if settings.DOCS_ENABLED:
        add_docs(app)
    register_error_handlers(app)
    for router in (users.router, sessions.router, auth.router, recovery.router, health.router):
        app.include_router(router)
    if metrics:
        app.include_router(metrics_router(metrics, settings.METRICS_TOKEN))
    # Innermost: everything below applies to the fast path as to any route.
    app.add_middleware(CurrentUserFastPath)
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["Location", "Retry-After", "WWW-Authenticate", "X-Request-ID"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
