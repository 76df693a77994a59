from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.core.exceptions import HashingBusy, TooManyAttempts
from app.core.ports import LoginThrottle


@asynccontextmanager
async def password_attempt(
    throttle: LoginThrottle, username: str, locked: str | None = None
) -> AsyncIterator[None]:
    """One attempt at `username`'s password under the LoginThrottle rule, for
    every use case that checks a password someone typed.

    Counted before the block runs; refused with TooManyAttempts (message
    `locked`) past the limit. A block that ends normally was a success and
    resets the count; one that raises was a failure and stays counted, except
    HashingBusy: nothing was checked, so the attempt is given back.
    """
    async with throttle.one_at_a_time(username):
        retry_after = await throttle.reserve(username)
        if retry_after is not None:
            raise TooManyAttempts(retry_after, locked)
        try:
            yield
        except HashingBusy:
            await throttle.release(username)
            raise
        await throttle.reset(username)
