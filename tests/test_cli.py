"""`python -m app.cli create-admin`, in process (coverage) and as operators run it."""

import asyncio
import getpass
import os
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
from tests.conftest import ROOT, TEST_SECRET

PASSWORD = "correct-horse-battery"


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
