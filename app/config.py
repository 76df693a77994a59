import os
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The value shipped in .env.example: fine to try things, refused in production.
EXAMPLE_SECRET = "change-me-to-a-random-string-of-at-least-32-characters"  # noqa: S105
SQLITE_DEFAULT_URL = "sqlite+aiosqlite:///./app.db"


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

    MAX_BODY_BYTES: int = Field(default=64 * 1024, ge=1024)
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []
    DOCS_ENABLED: bool = True
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("JWT_ISSUER", "JWT_AUDIENCE", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _real_secret_in_production(self) -> Self:
        if self.ENV == "prod" and self.JWT_SECRET_KEY == EXAMPLE_SECRET:
            raise ValueError("JWT_SECRET_KEY is the example value; generate a real secret")
        return self


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
    return Settings()
