# User service image: the locked dependencies in a virtualenv built with uv,
# then copied with the code into a clean slim image that runs as a non-root user.
#
#   docker build -t user-service .
#   docker run --rm -p 8000:8000 -e DB_URL=... -e JWT_SECRET_KEY=... user-service
#
# Both stages use the same base image: the venv's interpreter is a symlink to
# /usr/local/bin/python3.11, which must exist at the same path at run time.

# The base of both stages (see above); override with --build-arg PYTHON_IMAGE=.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: resolve nothing, install exactly what uv.lock says -------------
FROM ${PYTHON_IMAGE} AS builder

RUN pip install --no-cache-dir uv==0.13.9

# Compile .pyc at install time (the runtime image never writes them), copy
# files out of uv's cache instead of hard-linking, use the image's Python
# (never download one: it would live outside /app/.venv and not be copied).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes.
# The project is not a package ([tool.uv] package = false), so this installs
# the runtime dependencies only, without the dev group.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY alembic.ini ./
COPY migrations/ ./migrations/
COPY app/ ./app/

# --- runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app

# Owned by root and read-only for the service user: the process cannot rewrite its code.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/alembic.ini /app/alembic.ini
COPY --from=builder /app/migrations /app/migrations
COPY --from=builder /app/app /app/app

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENV=prod

# Server tuning, read by uvicorn itself (WEB_CONCURRENCY is its --workers
# default; UVICORN_<OPTION> sets any option CMD does not give), so each is
# overridden with `docker run -e` without restating the command:
# - WEB_CONCURRENCY: worker processes, as `make serve`'s WORKERS. Each has its
#   own database pool (DB_POOL_SIZE + DB_MAX_OVERFLOW, plus a reader
#   connection) and HASH_WORKERS hashing threads (default: the usable cores).
# - UVICORN_LIMIT_CONCURRENCY is deliberately not set: past it uvicorn answers
#   a plain-text 503 without Retry-After, outside the API's contract. Cap
#   connections and shed slow clients in the proxy in front instead (uvicorn
#   has no timeout for reading a request; e.g. nginx's client_body_timeout).
# - UVICORN_TIMEOUT_KEEP_ALIVE: seconds before an idle connection is closed;
#   behind a load balancer, make it longer than the balancer's idle timeout.
# - UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN: seconds in-flight requests get after
#   SIGTERM, within `docker stop`'s default 10 s.
# - UVICORN_HTTP: h11 refuses a request head over 16 KiB. httptools (uvicorn's
#   default, faster: about +35% requests/s on /health) buffers a header of any
#   size, copying it whole for every chunk received, so one client can grow
#   the process and stall its event loop for seconds (tests/test_limits.py).
#   Set httptools only behind a proxy that caps header size (nginx does, 8 KiB).
# - PROMETHEUS_MULTIPROC_DIR: with METRICS_ENABLED=true, where each worker
#   writes its metrics for /metrics to add up (prometheus-client's multiprocess
#   mode); the app creates it. It must start empty: under /tmp, which compose
#   mounts as a fresh tmpfs at each start.
ENV WEB_CONCURRENCY=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc \
    UVICORN_HTTP=h11 \
    UVICORN_TIMEOUT_KEEP_ALIVE=5 \
    UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN=8

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 8000

# Liveness only (/health does not touch the database; /health/ready does).
# The slim image has no curl: ask with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"]

# app.main exposes the create_app() factory (no module-level app object).
# The app logs one access line per request itself: uvicorn's is off, and so
# is its `server: uvicorn` header (it only tells an attacker what runs here).
# --proxy-headers trusts X-Forwarded-For/-Proto only from FORWARDED_ALLOW_IPS
# (default 127.0.0.1 and ::1, i.e. never from outside the container): set it to
# the reverse proxy's address when there is one.
# tests/docker/test_image_steps.py runs this command (and the HEALTHCHECK's)
# outside Docker from a venv built by the RUN above.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--proxy-headers", "--no-server-header"]
