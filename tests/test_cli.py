"""`python -m app.cli create-admin` and `send-emails`, in process (coverage)
and as operators run them."""

import asyncio
import getpass
import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import cli
from app.config import get_settings
from app.core.dtos import RegisterInput
from app.core.entities import TokenPurpose
from app.core.usecases.register_user import RegisterUser
from app.core.value_objects import Email
from app.infra.clock import SystemClock
from app.infra.composition import recovery_policy
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher
from tests.conftest import ROOT, TEST_SECRET, make_settings
from tests.integration.helpers import a_user, save, uow_for

PASSWORD = "correct-horse-battery"
FRONTEND_URL = "https://app.example"


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "ENV": "test",
        "DB_URL": database_url,
        "JWT_SECRET_KEY": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "ADMIN_PASSWORD": PASSWORD,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


async def run_cli(*argv: str) -> int:
    # asyncio.run inside the CLI needs a thread without a running loop.
    return await asyncio.to_thread(cli.main, ["create-admin", *argv])


async def run_send_emails() -> int:
    return await asyncio.to_thread(cli.main, ["send-emails"])


async def stored(engine: AsyncEngine, email: str) -> tuple[str, bool, str] | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT role, is_active, hashed_password FROM users WHERE email = :e"),
                {"e": email},
            )
        ).first()
    return None if row is None else (row[0], bool(row[1]), row[2])


async def test_creates_an_active_admin_and_prints_its_id_last(
    cli_env: dict[str, str], clean_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("--email", " Root@Example.com ", "--name", "Root") == 0

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    uuid.UUID(last_line)
    row = await stored(clean_engine, "root@example.com")
    assert row is not None
    role, is_active, hashed = row
    assert (role, is_active) == ("admin", True)
    assert hashed.startswith("$2b$04$")
    assert PASSWORD not in hashed
    # Admins start verified: no verification mail, no token.
    async with clean_engine.connect() as connection:
        verified = await connection.execute(
            text("SELECT email_verified FROM users WHERE email = 'root@example.com'")
        )
        assert bool(verified.scalar_one()) is True
        for table in ("outbox", "one_time_tokens"):
            count = await connection.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
            assert count.scalar_one() == 0, table


async def test_an_existing_email_exits_non_zero_with_a_message(
    cli_env: dict[str, str], clean_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("--email", "root@example.com", "--name", "Root") == 0
    capsys.readouterr()

    assert await run_cli("--email", "ROOT@example.com", "--name", "Other") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "error: User already exists"


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "error: Invalid email address"),
        ("root@example.com", "short", "error: Password must be at least 8 characters"),
        ("root@example.com", "password123", "error: Password is too common"),
    ],
)
async def test_invalid_input_exits_non_zero_and_creates_nobody(
    cli_env: dict[str, str],
    clean_engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    email: str,
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("ADMIN_PASSWORD", password)

    assert await run_cli("--email", email, "--name", "Root") == 1
    assert capsys.readouterr().err.strip() == message
    async with clean_engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0


async def test_an_unmigrated_database_asks_for_make_migrate(
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_URL", f"sqlite+aiosqlite:///{tmp_path}/empty.db")

    assert await run_cli("--email", "root@example.com", "--name", "Root") == 1
    assert "run `make migrate` first" in capsys.readouterr().err


async def test_an_unreachable_database_is_one_line_not_a_traceback(
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 1.
    monkeypatch.setenv("DB_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/test")

    assert await run_cli("--email", "root@example.com", "--name", "Root") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: database unavailable"), err
    assert "Traceback" not in err


def test_without_admin_password_and_no_terminal_it_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)

    with pytest.raises(SystemExit, match="set ADMIN_PASSWORD"):
        cli.main(["create-admin", "--email", "root@example.com", "--name", "Root"])


def test_the_prompt_asks_twice_and_refuses_different_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda _prompt: next(answers))

    with pytest.raises(SystemExit, match="the passwords differ"):
        cli.main(["create-admin", "--email", "root@example.com", "--name", "Root"])


async def test_the_prompted_password_is_used(
    cli_env: dict[str, str], clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_PASSWORD")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda _prompt: "prompted-pass-phrase")

    assert await run_cli("--email", "root@example.com", "--name", "Root") == 0
    assert await stored(clean_engine, "root@example.com") is not None


def test_a_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["create-admin", "--email", "root@example.com"])
    assert exit_info.value.code == 2
    assert "--name" in capsys.readouterr().err


async def test_python_dash_m_app_cli_as_operators_run_it(
    cli_env: dict[str, str], clean_engine: AsyncEngine
) -> None:
    args = [sys.executable, "-m", "app.cli", "create-admin", "--email", "ops@example.com"]
    result = await asyncio.to_thread(
        subprocess.run,
        [*args, "--name", "Ops"],
        cwd=ROOT,
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    uuid.UUID(result.stdout.strip().splitlines()[-1])
    assert await stored(clean_engine, "ops@example.com") is not None


# send-emails


@pytest.fixture
def mail_env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment with mail printed to stderr (console)."""
    env = {**cli_env, "EMAIL_BACKEND": "console", "FRONTEND_URL": FRONTEND_URL}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return env


async def register_user(database_url: str, engine: AsyncEngine, email: str) -> None:
    """Registers as POST /users does (its verification mail queued in the
    outbox) without a server, whose own dispatcher would send it first."""
    policy = recovery_policy(make_settings(database_url, FRONTEND_URL=FRONTEND_URL))
    hasher = BcryptPasswordHasher(4, 1, 10)
    try:
        usecase = RegisterUser(uow_for(engine), hasher, SystemClock(), policy)
        await usecase.execute(RegisterInput(email, PASSWORD, "Ann"))
    finally:
        hasher.close()


async def outbox(engine: AsyncEngine) -> list[tuple[str, bool, str | None]]:
    """(recipient, sent, text body) of every outbox row."""
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT to_email, sent_at, text_body FROM outbox"))
        return [(row[0], row[1] is not None, row[2]) for row in rows]


async def token_digests(engine: AsyncEngine, purpose: TokenPurpose) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT token_hash FROM one_time_tokens WHERE purpose = :p"), {"p": purpose.value}
        )
        return list(rows.scalars())


def mailed_tokens(stderr: str, page: str) -> list[str]:
    return re.findall(rf"{re.escape(FRONTEND_URL)}/{page}#token=([A-Za-z0-9_-]+)", stderr)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_send_emails_prints_the_registration_mail_and_marks_it_sent(
    mail_env: dict[str, str],
    database_url: str,
    clean_engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await register_user(database_url, clean_engine, "ann@example.com")
    [(to, sent, body)] = await outbox(clean_engine)
    assert (to, sent) == ("ann@example.com", False)
    assert body is not None
    capsys.readouterr()

    assert await run_send_emails() == 0

    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == "Sent 1 email(s)"
    assert "To: Ann <ann@example.com>" in captured.err
    [token] = mailed_tokens(captured.err, "verify-email")
    assert token not in captured.out
    # The link printed is the one stored (by its digest) for Ann's address.
    assert await token_digests(clean_engine, TokenPurpose.EMAIL_VERIFICATION) == [digest(token)]
    # Sent: kept as metadata, without its body (the link).
    assert await outbox(clean_engine) == [("ann@example.com", True, None)]

    # Nothing is due any more: a second run sends nothing.
    assert await run_send_emails() == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == "Sent 0 email(s)"
    assert "#token=" not in captured.err


async def test_send_emails_turns_a_recorded_forgot_request_into_a_reset_mail(
    mail_env: dict[str, str], clean_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    await save(clean_engine, a_user("ann@example.com"))
    async with uow_for(clean_engine) as uow:  # what POST /auth/password/forgot records
        await uow.mail_requests.add(
            TokenPurpose.PASSWORD_RESET, Email("ann@example.com"), SystemClock().now()
        )
        await uow.commit()

    assert await run_send_emails() == 0

    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == "Sent 1 email(s)"
    [token] = mailed_tokens(captured.err, "reset-password")
    assert await token_digests(clean_engine, TokenPurpose.PASSWORD_RESET) == [digest(token)]
    assert await outbox(clean_engine) == [("ann@example.com", True, None)]
    async with clean_engine.connect() as connection:
        waiting = await connection.execute(text("SELECT count(*) FROM mail_requests"))
        assert waiting.scalar_one() == 0


async def test_python_dash_m_app_cli_send_emails_as_operators_run_it(
    mail_env: dict[str, str], database_url: str, clean_engine: AsyncEngine
) -> None:
    await register_user(database_url, clean_engine, "ann@example.com")

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "send-emails"],
        cwd=ROOT,
        env={**os.environ, **mail_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "Sent 1 email(s)"
    [token] = mailed_tokens(result.stderr, "verify-email")
    assert await token_digests(clean_engine, TokenPurpose.EMAIL_VERIFICATION) == [digest(token)]
    assert await outbox(clean_engine) == [("ann@example.com", True, None)]


async def test_send_emails_with_an_unreachable_database_is_one_line_not_a_traceback(
    mail_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/test")

    assert await run_send_emails() == 1
    err = capsys.readouterr().err
    assert err.startswith("error: database unavailable"), err
    assert "Traceback" not in err
