"""What the multi-process tests share: their servers' database, emptied."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.db.engine import create_engine
from tests.conftest import make_settings, truncate


@pytest.fixture
async def clean_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """The servers' database with emptied tables (PostgreSQL only, unlike
    tests/conftest.py's fixture of the same name, which runs on both)."""
    engine = create_engine(make_settings(postgres_url))
    await truncate(engine)
    yield engine
    await engine.dispose()
