import os
import sys
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The value shipped in .env.example: anyone can read it, so anyone could sign
# tokens with it. Refused in every ENV but test.
EXAMPLE_SECRET = "change-me-to-a-random-string-of-at-least-32-characters"  # noqa: S105
NEW_SECRET_COMMAND = 'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'  # noqa: S105
# uvicorn's exit code for a worker that would fail alike on every start: its
# supervisor (--workers) then stops rather than restarting workers forever.
STARTUP_FAILURE = 3
SQLITE_DEFAULT_URL = "sqlite+aiosqlite:///./app.db"
# Where examples/frontend is served in development (its README).
DEV_FRONTEND_URL = "http://localhost:5173"
DEV_EMAILS_FROM = "no-reply@localhost"


class DatabaseSettings(BaseSettings):
    """What migrations need: no secrets."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    ENV: Literal["test", "dev", "prod"] = "dev"
    DB_URL: str | None = None
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    DB_MAX_OVERFLOW: int = Field(default=10, ge=0)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=10, gt=0)
    DB_POOL_PRE_PING: bool = True
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=5, gt=0)
    DB_STATEMENT_CACHE: bool = True

    @field_validator("DB_URL", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _database_in_production(self) -> Self:
        if self.ENV == "prod" and self.DB_URL is None:
            raise ValueError("DB_URL is required when ENV=prod")
        return self

    @property
    def database_url(self) -> str:
        return async_driver_url(self.DB_URL or SQLITE_DEFAULT_URL)


class Settings(DatabaseSettings):
    """Read from the environment and `.env`; every field is documented in .env.example."""

    JWT_SECRET_KEY: str = Field(min_length=32, repr=False)
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)
    JWT_ISSUER: str | None = None
    JWT_AUDIENCE: str | None = None

    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=31)
    HASH_WORKERS: int = Field(default_factory=lambda: usable_cores(), ge=1)
    HASH_QUEUE_TIMEOUT_SECONDS: float = Field(default=30, gt=0)
    LOGIN_MAX_FAILURES: int = Field(default=5, ge=1)
    LOGIN_LOCKOUT_SECONDS: int = Field(default=900, ge=1)

    REFRESH_TOKEN_EXPIRE_MINUTES: int = Field(default=7 * 24 * 60, ge=1)
    SESSION_MAX_LIFETIME_MINUTES: int = Field(default=30 * 24 * 60, ge=1)
    REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: int = Field(default=10, ge=0, le=300)
    MAX_SESSIONS_PER_USER: int = Field(default=100, ge=1)

    FRONTEND_URL: str | None = None  # links in mail; dev default DEV_FRONTEND_URL
    PASSWORD_RESET_TOKEN_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)
    EMAIL_VERIFICATION_TOKEN_EXPIRE_MINUTES: int = Field(default=24 * 60, ge=1)
    RECOVERY_EMAIL_COOLDOWN_SECONDS: int = Field(default=60, ge=0)
    RECOVERY_REQUESTS_PER_HOUR: int = Field(default=20, ge=1)
    REQUIRE_VERIFIED_EMAIL: bool = False

    CLEANUP_BATCH_SIZE: int = Field(default=500, ge=1, le=100_000)

    EMAIL_BACKEND: Literal["console", "smtp", "memory"] = "console"
    EMAIL_MAX_ATTEMPTS: int = Field(default=8, ge=1)
    EMAILS_FROM_EMAIL: str | None = None
    EMAILS_FROM_NAME: str | None = None
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = Field(default=None, repr=False)
    SMTP_STARTTLS: bool = True
    SMTP_SSL: bool = False
    SMTP_TIMEOUT_SECONDS: float = Field(default=10, gt=0)

    MAX_BODY_BYTES: int = Field(default=64 * 1024, ge=1024)
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []
    DOCS_ENABLED: bool = True
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    METRICS_ENABLED: bool = False
    METRICS_TOKEN: str | None = Field(default=None, min_length=16, repr=False)

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator(
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "FRONTEND_URL",
        "EMAILS_FROM_EMAIL",
        "EMAILS_FROM_NAME",
        "SMTP_HOST",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "METRICS_TOKEN",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _no_public_secret(self) -> Self:
        # Not only in prod: ENV defaults to dev, and a forgotten ENV must not
        # make a forged admin token valid.
        if self.ENV != "test" and self.JWT_SECRET_KEY == EXAMPLE_SECRET:
            raise ValueError(
                "JWT_SECRET_KEY is the example value from .env.example, which anyone can "
                "read, so anyone could forge tokens with it. Set JWT_SECRET_KEY, in the "
                "environment or .env, to a secret of your own, e.g. the output of "
                f"`{NEW_SECRET_COMMAND}` (`make run` writes a .env with one when there is none)"
            )
        return self

    @model_validator(mode="after")
    def _mail_settings(self) -> Self:
        if self.SMTP_STARTTLS and self.SMTP_SSL and self.EMAIL_BACKEND == "smtp":
            raise ValueError("SMTP_STARTTLS and SMTP_SSL exclude each other: set one to false")
        if self.EMAIL_BACKEND == "smtp" and not self.SMTP_HOST:
            raise ValueError("EMAIL_BACKEND=smtp needs SMTP_HOST")
        if self.ENV == "prod":
            if self.EMAIL_BACKEND == "console":
                raise ValueError(
                    "EMAIL_BACKEND=console prints mail (with its links) instead of sending "
                    "it: set EMAIL_BACKEND=smtp and the SMTP_* settings when ENV=prod"
                )
            if self.EMAIL_BACKEND == "smtp" and not (self.FRONTEND_URL and self.EMAILS_FROM_EMAIL):
                raise ValueError("FRONTEND_URL and EMAILS_FROM_EMAIL are required when ENV=prod")
        return self

    @property
    def frontend_url(self) -> str:
        return self.FRONTEND_URL or DEV_FRONTEND_URL

    @property
    def emails_from(self) -> str:
        return self.EMAILS_FROM_EMAIL or DEV_EMAILS_FROM


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroup cpusets), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def async_driver_url(url: str) -> str:
    """Accepts the URLs operators usually have and picks the async driver."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


@lru_cache
def get_settings() -> Settings:
    """The process's settings. Invalid ones end the process (the server, the
    CLI) with one paragraph on stderr and uvicorn's start-up failure code:
    no traceback, and no input values, which may hold secrets."""
    try:
        return Settings()
    except ValidationError as exc:
        print(settings_problem(exc), file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None


def settings_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return f"error: invalid settings, not starting. {'. '.join(problems)}."
