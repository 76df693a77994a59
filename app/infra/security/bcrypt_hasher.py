import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

from app.core.exceptions import HashingBusy
from app.core.value_objects import HashedPassword, Password

_T = TypeVar("_T")

# Hashing threads run at a lower priority than the event loop, so a burst of
# logins queues behind the loop instead of starving every other request.
_HASHING_NICENESS = 10


def _lower_thread_priority() -> None:
    # Linux applies setpriority to one thread when given its native id.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HASHING_NICENESS)


class BcryptPasswordHasher:
    """bcrypt through passlib, off the event loop, on a bounded pool.

    A request that waits longer than `queue_timeout` for a hashing slot gets
    HashingBusy (503 with Retry-After) instead of waiting forever. `waiting`
    is how many wait now; `on_wait`, if given, is told each wait's seconds.
    """

    def __init__(
        self,
        rounds: int,
        workers: int,
        queue_timeout: float,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        # A hash of any other cost "needs update", so the next login rehashes it.
        self._ctx = CryptContext(
            schemes=["bcrypt"],
            bcrypt__default_rounds=rounds,
            bcrypt__min_rounds=rounds,
            bcrypt__max_rounds=rounds,
        )
        self._rounds = rounds
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="bcrypt", initializer=_lower_thread_priority
        )
        self._slots = asyncio.Semaphore(workers)
        self._queue_timeout = queue_timeout
        self._on_wait = on_wait
        self.waiting = 0
        self._dummy_hash = self._ctx.hash(secrets.token_urlsafe(16))

    async def hash(self, password: Password) -> HashedPassword:
        return HashedPassword(await self._run(self._ctx.hash, password.value))

    async def verify(self, candidate: str, hashed: HashedPassword) -> bool:
        return await self._run(self._verify, candidate, hashed.value)

    async def needs_rehash(self, hashed: HashedPassword) -> bool:
        return self._ctx.needs_update(hashed.value)

    async def verify_dummy(self, candidate: str) -> None:
        await self._run(self._check, candidate, self._dummy_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _verify(self, candidate: str, hashed: str) -> bool:
        if self._check(candidate, hashed):
            return True
        if self._cost(hashed) < self._rounds:
            # A cheaper hash fails sooner: spend the difference, so a failure
            # takes as long whatever the account's hash (a costlier one cannot
            # be sped up; it is rehashed at the account's next login).
            self._check(candidate, self._dummy_hash)
        return False

    def _check(self, candidate: str, hashed: str) -> bool:
        try:
            return self._ctx.verify(candidate, hashed)
        except ValueError:  # malformed hash, or a secret bcrypt refuses
            return False

    def _cost(self, hashed: str) -> int:
        try:
            return int(self._ctx.handler().from_string(hashed).rounds)
        except ValueError:  # malformed: costs nothing to refuse
            return 0

    async def _run(self, fn: Callable[..., _T], *args: str) -> _T:
        started = time.perf_counter()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
        except TimeoutError:
            raise HashingBusy() from None
        finally:
            self.waiting -= 1
            if self._on_wait is not None:
                self._on_wait(time.perf_counter() - started)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._slots.release()
