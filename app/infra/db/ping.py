from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping(engine: AsyncEngine) -> None:
    """Returns once the database answers a trivial query; raises (an outage
    as DatabaseUnavailable) when it does not."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
