import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # holding or waiting


class KeyedLock:
    """One holder per key at a time in this process, first come first served.

    A waiter that gets no turn within `wait_seconds` (None: no limit) gets
    `busy()` raised instead. A key that nobody holds or waits for takes no
    memory.
    """

    def __init__(
        self,
        wait_seconds: float | None = None,
        busy: Callable[[], BaseException] = TimeoutError,
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._wait, self._busy = wait_seconds, busy

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.holders += 1
        try:
            try:
                await asyncio.wait_for(entry.lock.acquire(), self._wait)
            except TimeoutError:
                raise self._busy() from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.holders -= 1
            if not entry.holders:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
