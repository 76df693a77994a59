import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.config import (
    DEV_EMAILS_FROM,
    DEV_FRONTEND_URL,
    EXAMPLE_SECRET,
    SQLITE_DEFAULT_URL,
    STARTUP_FAILURE,
    Settings,
    async_driver_url,
    get_settings,
    settings_problem,
    usable_cores,
)
from tests.conftest import ROOT

SECRET = "a-real-secret-of-at-least-32-characters-xyz"
PG_URL = "postgresql+asyncpg://app:pw@db.internal:5432/users"
# What production needs to send mail, besides a database and a secret.
PROD_MAIL: dict[str, Any] = {
    "EMAIL_BACKEND": "smtp",
    "SMTP_HOST": "smtp.internal",
    "FRONTEND_URL": "https://app.example",
    "EMAILS_FROM_EMAIL": "no-reply@example.com",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the developer's environment nor conftest's ENV leaks into these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def test_defaults_with_only_a_secret() -> None:
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET)
    assert settings.ENV == "dev"
    assert settings.DB_URL is None
    assert settings.database_url == SQLITE_DEFAULT_URL
    assert settings.JWT_ALGORITHM == "HS256"
    assert settings.ACCESS_TOKEN_EXPIRE_MINUTES == 30
    assert settings.JWT_ISSUER is None
    assert settings.JWT_AUDIENCE is None
    assert settings.HASH_QUEUE_TIMEOUT_SECONDS == 30
    assert (settings.LOGIN_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS) == (5, 900)
    assert settings.CORS_ORIGINS == []


def test_the_secret_is_required() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET_KEY"):
        Settings(_env_file=None)


def test_production_requires_db_url() -> None:
    with pytest.raises(ValidationError, match="DB_URL is required"):
        Settings(_env_file=None, ENV="prod", JWT_SECRET_KEY=SECRET)


@pytest.mark.parametrize("blank", ["", "   "])
def test_production_treats_a_blank_db_url_as_missing(
    blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_URL", blank)
    with pytest.raises(ValidationError, match="DB_URL is required"):
        Settings(_env_file=None, ENV="prod", JWT_SECRET_KEY=SECRET)


def test_production_with_a_db_url_a_real_secret_and_smtp_is_fine() -> None:
    settings = Settings(
        _env_file=None, ENV="prod", DB_URL=PG_URL, JWT_SECRET_KEY=SECRET, **PROD_MAIL
    )
    assert settings.database_url == PG_URL
    assert settings.frontend_url == "https://app.example"
    assert settings.emails_from == "no-reply@example.com"


def test_production_refuses_the_console_mail_backend() -> None:
    with pytest.raises(ValidationError, match="EMAIL_BACKEND=console"):
        Settings(_env_file=None, ENV="prod", DB_URL=PG_URL, JWT_SECRET_KEY=SECRET)


@pytest.mark.parametrize("missing", ["FRONTEND_URL", "EMAILS_FROM_EMAIL"])
def test_production_with_smtp_requires_the_links_and_the_sender(missing: str) -> None:
    mail = {**PROD_MAIL, missing: "  "}  # blank is unset
    with pytest.raises(ValidationError, match="FRONTEND_URL and EMAILS_FROM_EMAIL are required"):
        Settings(_env_file=None, ENV="prod", DB_URL=PG_URL, JWT_SECRET_KEY=SECRET, **mail)


def test_smtp_needs_a_host_and_one_of_starttls_or_ssl() -> None:
    with pytest.raises(ValidationError, match="needs SMTP_HOST"):
        Settings(_env_file=None, JWT_SECRET_KEY=SECRET, EMAIL_BACKEND="smtp")
    with pytest.raises(ValidationError, match="exclude each other"):
        Settings(
            _env_file=None,
            JWT_SECRET_KEY=SECRET,
            EMAIL_BACKEND="smtp",
            SMTP_HOST="smtp.internal",
            SMTP_SSL=True,
        )


def test_in_development_mail_links_and_sender_have_defaults() -> None:
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET)
    assert settings.EMAIL_BACKEND == "console"
    assert settings.frontend_url == DEV_FRONTEND_URL
    assert settings.emails_from == DEV_EMAILS_FROM


@pytest.mark.parametrize("env", [None, "dev", "prod"])
def test_the_example_secret_is_refused_but_in_tests(
    env: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who read .env.example could forge tokens; ENV unset means dev."""
    if env is not None:
        monkeypatch.setenv("ENV", env)
    with pytest.raises(ValidationError, match=r"example value from \.env\.example") as refused:
        Settings(_env_file=None, DB_URL=PG_URL, JWT_SECRET_KEY=EXAMPLE_SECRET)
    assert "secrets.token_urlsafe" in str(refused.value)  # how to make a real one


def test_the_example_secret_is_fine_in_tests() -> None:
    settings = Settings(_env_file=None, ENV="test", JWT_SECRET_KEY=EXAMPLE_SECRET)
    assert settings.JWT_SECRET_KEY == EXAMPLE_SECRET


def test_the_example_secret_in_env_example_is_the_refused_one() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert f"JWT_SECRET_KEY={EXAMPLE_SECRET}" in lines


def test_invalid_settings_end_the_process_with_one_readable_paragraph(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("JWT_SECRET_KEY", EXAMPLE_SECRET)
    monkeypatch.setenv("DB_URL", "postgresql://app:db-password@db/users")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert stopped.value.code == STARTUP_FAILURE  # uvicorn's --workers stop, not restart
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert message.startswith("error: invalid settings")
    assert "JWT_SECRET_KEY is the example value" in message
    assert "\n" not in message
    # No input values: they may hold secrets.
    assert EXAMPLE_SECRET not in message
    assert "db-password" not in message


def test_each_problem_is_named_by_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCRYPT_ROUNDS", "3")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, JWT_SECRET_KEY="short-secret")
    message = settings_problem(refused.value)
    assert "JWT_SECRET_KEY: String should have at least 32 characters" in message
    assert "BCRYPT_ROUNDS: Input should be greater than or equal to 4" in message
    assert "short-secret" not in message


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_a_secret_shorter_than_32_characters_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET_KEY"):
        Settings(_env_file=None, JWT_SECRET_KEY=secret)


def test_a_secret_of_32_characters_is_accepted() -> None:
    assert Settings(_env_file=None, JWT_SECRET_KEY="x" * 32).JWT_SECRET_KEY == "x" * 32


def test_the_secret_never_shows_in_repr() -> None:
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    monkeypatch.setenv("ENV", "prod")
    monkeypatch.setenv("DB_URL", "postgres://app:pw@db/users")
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "15")
    for name, value in PROD_MAIL.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.ENV == "prod"
    assert settings.ACCESS_TOKEN_EXPIRE_MINUTES == 15
    assert settings.database_url == "postgresql+asyncpg://app:pw@db/users"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://a.example", ["https://a.example"]),
        ("https://a.example,https://b.example", ["https://a.example", "https://b.example"]),
        (" https://a.example , https://b.example ,, ", ["https://a.example", "https://b.example"]),
        ("", []),
        (" , ", []),
    ],
)
def test_cors_origins_are_comma_separated(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", raw)
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET)
    assert expected == settings.CORS_ORIGINS


def test_cors_origins_given_as_a_list_are_kept() -> None:
    origins = ["https://a.example", "https://b.example"]
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET, CORS_ORIGINS=origins)
    assert origins == settings.CORS_ORIGINS


@pytest.mark.parametrize("name", ["JWT_ISSUER", "JWT_AUDIENCE"])
@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_blank_issuer_or_audience_is_none(
    name: str, blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, blank)
    assert getattr(Settings(_env_file=None, JWT_SECRET_KEY=SECRET), name) is None


def test_issuer_and_audience_are_kept_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "users")
    settings = Settings(_env_file=None, JWT_SECRET_KEY=SECRET)
    assert (settings.JWT_ISSUER, settings.JWT_AUDIENCE) == ("https://issuer.example", "users")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_ALGORITHM", "none"),
        ("JWT_ALGORITHM", "RS256"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", str(24 * 60 + 1)),
        ("BCRYPT_ROUNDS", "3"),
        ("BCRYPT_ROUNDS", "32"),
        ("HASH_WORKERS", "0"),
        ("HASH_QUEUE_TIMEOUT_SECONDS", "0"),
        ("LOGIN_MAX_FAILURES", "0"),
        ("LOGIN_LOCKOUT_SECONDS", "0"),
        ("ENV", "production"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_out_of_range_values_are_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None, JWT_SECRET_KEY=SECRET)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql+asyncpg://u:p@h/db?sslmode=require"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("sqlite:///./app.db", "sqlite+aiosqlite:///./app.db"),
        ("sqlite:////tmp/app.db", "sqlite+aiosqlite:////tmp/app.db"),
        ("sqlite+aiosqlite:///./app.db", "sqlite+aiosqlite:///./app.db"),
        ("mysql://u:p@h/db", "mysql://u:p@h/db"),
    ],
)
def test_async_driver_url(url: str, expected: str) -> None:
    assert async_driver_url(url) == expected


def test_database_url_applies_the_async_driver() -> None:
    settings = Settings(_env_file=None, DB_URL="postgres://u:p@h/db", JWT_SECRET_KEY=SECRET)
    assert settings.database_url == "postgresql+asyncpg://u:p@h/db"
    assert settings.DB_URL == "postgres://u:p@h/db"


def test_hash_workers_default_to_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinned to one core of many (taskset), one hashing thread is enough.
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {3}, raising=False)
    assert usable_cores() == 1
    assert Settings(_env_file=None, JWT_SECRET_KEY=SECRET).HASH_WORKERS == 1
