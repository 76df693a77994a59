"""The image's build and start-up steps, run outside Docker (no engine here).

The Dockerfile and docker-compose.yml are parsed, not restated: the files the
builder stage COPYs go through .dockerignore's rules into a scratch /app, its
`uv sync` RUN runs there with the stage's ENV, what the runtime stage keeps is
all that is left, and then the compose file's migrate command, the image's CMD
and its HEALTHCHECK command run from that environment, with the runtime ENV,
against a scratch SQLite database. What this cannot see (the base image, the
user and file ownership inside it) is checked statically, and by
`make docker-lint`.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from alembic.script import ScriptDirectory

from app.config import Settings
from app.infra.metrics import FLUSH_SECONDS
from tests.conftest import IN_CI, ROOT, alembic_config

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET = "image-steps-test-secret-0123456789-abcdefghij"
ADMIN_PASSWORD = "correct-horse-battery"
STARTUP_DEADLINE_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 120.0
DEV_ONLY = ["pytest", "mypy", "ruff", "schemathesis", "playwright", "pre_commit"]
RUNTIME_IMPORTS = ["app.main", "app.cli", "uvicorn", "alembic", "asyncpg", "aiosqlite", "bcrypt"]


# The Dockerfile, read as Docker reads it (the subset this one uses)


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name!r} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage; comment lines dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """`--from=builder a b` -> ({"from": "builder"}, ["a", "b"]); JSON arrays too."""
    flags: dict[str, str] = {}
    words = shlex.split(args)
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    rest = " ".join(words)
    if rest.startswith("["):
        return flags, [str(word) for word in json.loads(rest)]
    return flags, shlex.split(rest)


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec (JSON) form, not a shell: {args}"
    return [str(word) for word in json.loads(args)]


def env_of(stage: Stage, base: dict[str, str]) -> dict[str, str]:
    """The stage's ENV on top of `base`, with $VAR and ${VAR} expanded as Docker does."""
    env = dict(base)
    for args in stage.all("ENV"):
        words = shlex.split(args)
        pairs = (
            [tuple(word.split("=", 1)) for word in words]
            if "=" in words[0]
            else [(words[0], " ".join(words[1:]))]
        )
        for key, value in pairs:
            env[key] = re.sub(r"\$\{?(\w+)\}?", lambda match: env.get(match.group(1), ""), value)
    return env


def healthcheck_of(stage: Stage) -> tuple[dict[str, str], list[str]]:
    args = stage.last("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    flags = dict(word[2:].split("=", 1) for word in options.split())
    return flags, exec_form(command.strip())


# .dockerignore, matched as Docker matches it


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) in file order; the last rule matching a path wins."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((excludes, re.compile(regex)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the file at `path` (relative, with /) reaches the build context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = excludes
    return not excluded


# The build, outside Docker


@dataclass
class Build:
    root: Path  # the image's /app (the WORKDIR of both stages)
    runtime_env: dict[str, str]
    stages: list[Stage]

    @property
    def venv(self) -> Path:
        return self.root / ".venv"

    def which(self, program: str) -> str:
        found = shutil.which(program, path=self.runtime_env["PATH"])
        assert found, f"{program} not found on the image's PATH"
        assert Path(found).is_relative_to(self.venv), f"{program} is not the venv's: {found}"
        return found


def uv_command() -> list[str]:
    if found := shutil.which("uv"):
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    message = "uv is not installed, so the image's `uv sync` step cannot run"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(f"{message} (CI=true makes this a failure)")


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, **kwargs
    )
    assert result.returncode == 0, (
        f"{shlex.join(command)} exited with {result.returncode}:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def copy_into(source: Path, target: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> int:
    """Copies what of `source` (a file or a directory) the context holds; returns the count."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    copied = 0
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if not in_context(relative, rules):
            continue
        destination = target if source.is_file() else target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        copied += 1
    return copied


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    uv = uv_command()
    stages = parse_dockerfile(DOCKERFILE.read_text())
    builder, runtime = stages[0], stages[-1]
    workdir = builder.last("WORKDIR")
    assert runtime.last("WORKDIR") == workdir
    root = tmp_path_factory.mktemp("image") / workdir.strip("/")
    root.mkdir(parents=True)

    def host(value: str) -> str:
        """The image's paths under `workdir`, moved into the scratch directory."""
        return ":".join(
            str(root) + part[len(workdir) :]
            if part == workdir or part.startswith(workdir + "/")
            else part
            for part in value.split(":")
        )

    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    base = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    build_env = {key: host(value) for key, value in env_of(builder, base).items()}
    synced = False
    for keyword, args in builder.instructions:
        if keyword == "COPY":
            flags, words = split_flags(args)
            assert not flags, f"builder COPY with flags: {args}"
            *sources, dest = words
            for source in sources:
                target = root / dest
                if (ROOT / source).is_file() and (dest.endswith("/") or len(sources) > 1):
                    target = target / Path(source).name
                count = copy_into(ROOT / source, target, rules)
                assert count, f"COPY {source}: nothing of it is in the build context"
        elif keyword == "RUN":
            command = shlex.split(args)
            if command[0] != "uv":
                continue  # installing uv itself: the test brings its own
            run(uv + command[1:], cwd=root, env=build_env)
            synced |= command[1:2] == ["sync"]
    assert synced, "the builder stage has no `uv sync` RUN"

    # The runtime stage gets only what it copies from the builder: drop the rest.
    kept = set()
    for args in runtime.all("COPY"):
        flags, (source, dest) = split_flags(args)
        assert flags.get("from") == builder.name, f"runtime COPY not from the builder: {args}"
        assert source == dest, f"runtime COPY moves {source} to {dest}"
        kept.add(Path(host(source)))
        assert Path(host(source)).exists(), f"the builder has no {source}"
    for path in root.iterdir():
        if path not in kept:
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    # The image's own environment only: no setting of ours leaks in.
    base_runtime = {
        "PATH": os.environ["PATH"],
        "HOME": str(root.parent),
        "LANG": "C.UTF-8",
    }
    runtime_env = {key: host(value) for key, value in env_of(runtime, base_runtime).items()}
    return Build(root, runtime_env, stages)


# Static checks of the two files


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2, "a multi-stage build"
    runtime = stages[-1]
    user = runtime.last("USER").split(":")
    assert user[0] not in ("root", "0"), "the image runs as root"
    assert all(part.isdigit() and int(part) != 0 for part in user), (
        "USER should be numeric (uid:gid) so runAsNonRoot can verify it"
    )
    flags, command = healthcheck_of(runtime)
    assert {"interval", "timeout", "retries"} <= set(flags)
    assert "/health" in " ".join(command)
    assert "uv" not in " ".join(runtime.all("RUN")), "the runtime stage installs nothing"
    sync = [args for args in stages[0].all("RUN") if args.startswith("uv sync")]
    assert sync, "the builder installs with uv sync"
    assert {"--frozen", "--no-dev"} <= set(sync[0].split())


def test_compose_migrates_before_the_api_starts() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    db, migrate, api = services["db"], services["migrate"], services["api"]
    assert db["healthcheck"]["test"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    assert migrate["build"] == api["build"], "migrate and api run the same image"
    assert migrate["command"][:2] == ["alembic", "upgrade"]


def test_dockerignore_admits_only_what_the_image_needs() -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    for path in ["pyproject.toml", "uv.lock", "alembic.ini", "app/main.py", "migrations/env.py"]:
        assert in_context(path, rules), path
    for path in [
        "bench/run.py",
        "examples/client.py",
        "tests/conftest.py",
        "docs/performance.md",
        "scripts/dev_env.py",
        ".env",
        "app/.env",
        "app.db",
        ".venv/bin/python",
        ".git/config",
        "app/__pycache__/main.cpython-311.pyc",
        "migrations/versions/__pycache__/x.cpython-311.pyc",
        "Makefile",
    ]:
        assert not in_context(path, rules), path


# The build and the start-up, outside Docker


def test_build_installs_the_runtime_dependencies_only(build: Build) -> None:
    python = build.which("python")
    code = (
        "import importlib, importlib.util, json, sys\n"
        f"for name in {RUNTIME_IMPORTS!r}: importlib.import_module(name)\n"
        f"print(json.dumps([n for n in {DEV_ONLY!r} if importlib.util.find_spec(n)]))\n"
    )
    result = run([python, "-c", code], cwd=build.root, env=build.runtime_env)
    assert json.loads(result.stdout) == [], "dev tools are installed in the image"
    kept = sorted(path.name for path in build.root.iterdir())
    assert kept == [".venv", "alembic.ini", "app", "migrations"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_port(words: list[str], old: int, new: int) -> list[str]:
    return [re.sub(rf"(?<=:){old}\b", str(new), word) for word in words]


@pytest.fixture
def server_env(build: Build, tmp_path: Path) -> dict[str, str]:
    """The runtime ENV, plus what compose or an operator adds, over scratch SQLite."""
    assert build.runtime_env.get("ENV") == "prod"
    # Nothing of the runtime image's settings is ours: the ones set are the image's.
    assert not set(build.runtime_env) & (set(Settings.model_fields) - {"ENV"})
    # The metrics directory must start empty: it lies on the tmpfs compose mounts.
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = [m.split(":")[0] + "/" for m in compose["services"]["api"]["tmpfs"]]
    assert any(build.runtime_env["PROMETHEUS_MULTIPROC_DIR"].startswith(m) for m in mounts)
    return build.runtime_env | {
        "DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "INFO",
        # Two workers, as `make serve` runs: the supervisor path, not the single process.
        "WEB_CONCURRENCY": "2",
        # What ENV=prod requires for mail, as compose sets it (nothing listens
        # there: the outbox keeps the mail, no request fails).
        "EMAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "SMTP_STARTTLS": "false",
        "EMAILS_FROM_EMAIL": "no-reply@example.com",
        "FRONTEND_URL": "https://app.example.com",
        # Under /tmp, which compose mounts empty at each start: an empty directory here.
        "METRICS_ENABLED": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus-multiproc"),
    }


@pytest.fixture
def started(build: Build, server_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The compose migrate command, then the image's CMD on a free port."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    migrate = [str(word) for word in compose["services"]["migrate"]["command"]]
    run([build.which(migrate[0]), *migrate[1:]], cwd=build.root, env=server_env)

    runtime = build.stages[-1]
    command = exec_form(runtime.last("CMD"))
    exposed = int(runtime.last("EXPOSE").split("/")[0])
    assert command[command.index("--port") + 1] == str(exposed), "CMD serves the EXPOSEd port"
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"  # no need to listen beyond this host
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [build.which(command[0]), *command[1:]],
            cwd=build.root,
            env=server_env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
        while True:
            assert process.poll() is None, f"CMD exited:\n{log.read_text()[-6000:]}"
            assert time.monotonic() < deadline, f"CMD never answered:\n{log.read_text()[-6000:]}"
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url, log
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, f"unclean stop:\n{log.read_text()[-6000:]}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_migrations_then_cmd_serve_and_pass_the_healthcheck(
    build: Build, server_env: dict[str, str], started: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, log = started
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    with sqlite3.connect(tmp_path / "app.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]

    assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{base_url}/health/ready", timeout=5).status_code == 200

    # The operator's command, as the README runs it in the container.
    env = server_env | {"ADMIN_PASSWORD": ADMIN_PASSWORD}
    cli = ["-m", "app.cli", "create-admin", "--email", "root@example.com", "--name", "Root"]
    run([build.which("python"), *cli], cwd=build.root, env=env)
    token = httpx.post(
        f"{base_url}/auth/token",
        data={"username": "root@example.com", "password": ADMIN_PASSWORD},
        timeout=10,
    )
    assert token.status_code == 200, token.text
    users = httpx.get(
        f"{base_url}/users",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    assert users.status_code == 200, users.text
    # Whichever worker answers, /metrics counts the requests of both (each
    # counts its own within FLUSH_SECONDS).
    listed = 'http_request_duration_seconds_count{method="GET",route="/users",status="2xx"} 1.0'
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while True:
        metrics = httpx.get(f"{base_url}/metrics", timeout=10)
        assert metrics.status_code == 200, metrics.text
        if listed in metrics.text or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert listed in metrics.text, metrics.text

    runtime = build.stages[-1]
    flags, healthcheck = healthcheck_of(runtime)
    exposed = int(runtime.last("EXPOSE").split("/")[0])
    healthcheck = with_port(healthcheck, exposed, int(base_url.rsplit(":", 1)[1]))
    timeout = float(flags["timeout"].rstrip("s"))
    check = subprocess.run(
        [build.which(healthcheck[0]), *healthcheck[1:]],
        cwd=build.root,
        env=build.runtime_env,
        capture_output=True,
        timeout=timeout + 5,
    )
    assert check.returncode == 0, check.stderr.decode(errors="replace")

    # The image's HTTP parser refuses a request head that never ends (test_limits.py).
    with socket.create_connection(("127.0.0.1", int(base_url.rsplit(":", 1)[1]))) as sock:
        sock.settimeout(3)
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 1024 * 1024)
            answer = sock.recv(64)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        except TimeoutError:
            pytest.fail("the image's server kept reading a 1 MiB header")
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer

    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-6000:]
    # The app logs its own access lines (JSON in prod); uvicorn's are off.
    assert '"GET /health HTTP/1.1" 200' not in output, output[-6000:]
    assert '"logger":"app.access","message":"GET /health 200"' in output, output[-6000:]
