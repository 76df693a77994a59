"""Settings that must not serve stop the process before it serves.

A real `uvicorn app.main:create_app --factory`, as operators start it, with
the example secret of .env.example and no ENV (so dev): it exits non-zero
with one readable paragraph that says how to make a secret, and no
traceback. The .env that `make run` writes on a fresh checkout starts.
(v2) With ENV=prod, mail that cannot reach users (the console backend, or
SMTP without FRONTEND_URL and EMAILS_FROM_EMAIL) stops it likewise.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import EXAMPLE_SECRET
from tests import server_process
from tests.conftest import ROOT

EXIT_DEADLINE_SECONDS = 30.0
A_REAL_SECRET = "a-production-secret-that-is-long-enough-0123456789"
SMTP = {"EMAIL_BACKEND": "smtp", "SMTP_HOST": "mail.example"}
FRONTEND = {"FRONTEND_URL": "https://app.example"}
SENDER = {"EMAILS_FROM_EMAIL": "no-reply@example.com"}
CONSOLE_IN_PROD = "EMAIL_BACKEND=console prints mail (with its links) instead of sending it"
INCOMPLETE_SMTP = "FRONTEND_URL and EMAILS_FROM_EMAIL are required when ENV=prod"


def exit_code_and_output(env: dict[str, str], workdir: Path) -> tuple[int, str]:
    """Starts uvicorn in `workdir` and waits for it to exit by itself."""
    (port,) = server_process.free_ports(1)
    server = server_process.start_uvicorn(env, port, workdir)
    try:
        code = server.process.wait(EXIT_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {EXIT_DEADLINE_SECONDS}s:\n{server.output()}")
    finally:
        server_process.stop(server)
    return code, server.output()


def assert_refused_clearly(code: int, output: str) -> None:
    assert code != 0, output
    assert "Traceback" not in output, output
    # One paragraph (uvicorn logs nothing else at --log-level warning).
    message = output.strip()
    assert "\n" not in message, output
    assert message.startswith("error: invalid settings"), output
    assert "JWT_SECRET_KEY is the example value from .env.example" in message
    assert "secrets.token_urlsafe" in message  # how to make one
    assert EXAMPLE_SECRET not in message


def test_the_example_secret_with_env_unset_stops_the_server(tmp_path: Path) -> None:
    env = server_process.clean_env(JWT_SECRET_KEY=EXAMPLE_SECRET)
    assert "ENV" not in env
    assert_refused_clearly(*exit_code_and_output(env, tmp_path))


def test_env_example_copied_as_it_is_stops_the_server(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    assert_refused_clearly(*exit_code_and_output(server_process.clean_env(), tmp_path))


def test_the_env_make_run_writes_serves(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    script = ROOT / "scripts" / "dev_env.py"
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True, timeout=30)
    assert EXAMPLE_SECRET not in (tmp_path / ".env").read_text()
    (port,) = server_process.free_ports(1)
    server = server_process.start_uvicorn(server_process.clean_env(), port, tmp_path)
    try:
        server_process.wait_until_healthy(server)
    finally:
        server_process.stop(server)


def test_the_cli_refuses_the_example_secret_too(tmp_path: Path) -> None:
    """create-admin issues no token, but it is the same deployment's settings:
    one rule for every entry point, told before anything is written."""
    env = server_process.clean_env(
        JWT_SECRET_KEY=EXAMPLE_SECRET,
        ADMIN_PASSWORD="correct-horse-battery",
        PYTHONPATH=str(ROOT),
        DB_URL=f"sqlite:///{tmp_path}/never-made.db",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "create-admin",
            "--email",
            "a@example.com",
            "--name",
            "A",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert_refused_clearly(done.returncode, done.stderr)
    assert not (tmp_path / "never-made.db").exists()


def production_env(tmp_path: Path, mail: dict[str, str]) -> dict[str, str]:
    return server_process.clean_env(
        ENV="prod",
        JWT_SECRET_KEY=A_REAL_SECRET,
        DB_URL=f"sqlite+aiosqlite:///{tmp_path}/prod.db",
        **mail,
    )


@pytest.mark.parametrize(
    ("mail", "reason"),
    [
        pytest.param({}, CONSOLE_IN_PROD, id="console-by-default"),
        pytest.param(
            {"EMAIL_BACKEND": "console", **FRONTEND, **SENDER}, CONSOLE_IN_PROD, id="console"
        ),
        pytest.param({**SMTP, **SENDER}, INCOMPLETE_SMTP, id="smtp-without-frontend-url"),
        pytest.param({**SMTP, **FRONTEND}, INCOMPLETE_SMTP, id="smtp-without-sender"),
    ],
)
def test_production_refuses_mail_that_cannot_reach_users(
    tmp_path: Path, mail: dict[str, str], reason: str
) -> None:
    code, output = exit_code_and_output(production_env(tmp_path, mail), tmp_path)

    assert code != 0, output
    assert "Traceback" not in output, output
    message = output.strip()
    assert "\n" not in message, output
    assert message.startswith("error: invalid settings"), output
    assert reason in message, output


def test_production_with_complete_smtp_settings_serves(tmp_path: Path) -> None:
    """The control: the same environment, with what the refusals ask for."""
    (port,) = server_process.free_ports(1)
    env = production_env(tmp_path, {**SMTP, **FRONTEND, **SENDER})
    server = server_process.start_uvicorn(env, port, tmp_path)
    try:
        server_process.wait_until_healthy(server)
    finally:
        server_process.stop(server)
