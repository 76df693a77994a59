"""In-memory fakes of the core's ports, and builders, for use-case tests."""

import dataclasses
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from app.core.dtos import AccessToken, TokenClaims, UserDTO
from app.core.entities import User
from app.core.exceptions import EmailTaken, InvalidToken
from app.core.value_objects import ID, Email, HashedPassword, Name, Password, Role
from app.core.value_objects.page_cursor import PageCursor
from app.infra.keyed_lock import KeyedLock

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct-horse-9"
HASH_PREFIX = "hashed:"


def _copy(user: User) -> User:
    # Stored rows and loaded entities never share state, as with a real database.
    return dataclasses.replace(user)


class InMemoryUserRepo:
    def __init__(self, users: Iterable[User] = ()) -> None:
        self.rows: dict[ID, User] = {}
        self.locked: list[ID] = []
        self.replaced: list[tuple[ID, HashedPassword, HashedPassword]] = []
        for user in users:
            self._ensure_email_free(user)
            self.rows[user.id] = _copy(user)

    def snapshot(self) -> dict[ID, User]:
        return {user_id: _copy(user) for user_id, user in self.rows.items()}

    def restore(self, rows: dict[ID, User]) -> None:
        self.rows = {user_id: _copy(user) for user_id, user in rows.items()}

    def stored(self, user_id: ID) -> User:
        """The committed-or-pending row itself, for assertions and for simulating other writers."""
        return self.rows[user_id]

    async def get_by_id(self, user_id: ID) -> User | None:
        user = self.rows.get(user_id)
        return _copy(user) if user else None

    async def get_for_update(self, user_id: ID) -> User | None:
        self.locked.append(user_id)
        return await self.get_by_id(user_id)

    async def get_by_email(self, email: Email) -> User | None:
        found = next((u for u in self.rows.values() if u.email == email), None)
        return _copy(found) if found else None

    async def add(self, user: User) -> None:
        if user.id in self.rows:
            raise ValueError(f"duplicate id {user.id}")
        self._ensure_email_free(user)
        self.rows[user.id] = _copy(user)

    async def update(self, user: User) -> None:
        if user.id not in self.rows:
            raise LookupError(f"no user {user.id}")
        self._ensure_email_free(user)
        self.rows[user.id] = _copy(user)

    async def replace_hash(self, user_id: ID, old: HashedPassword, new: HashedPassword) -> None:
        self.replaced.append((user_id, old, new))
        user = self.rows.get(user_id)
        if user is not None and user.hashed_password == old:
            # Like the SQL UPDATE: one column; token_version and updated_at stay.
            user.hashed_password = new

    async def delete(self, user_id: ID) -> None:
        self.rows.pop(user_id, None)

    async def lock_active_admins(self) -> list[ID]:
        admins = sorted(u.id for u in self.rows.values() if u.is_active_admin)
        self.locked.extend(admins)
        return admins

    async def list_page(
        self, limit: int, after: PageCursor | None, email_prefix: str | None
    ) -> list[User]:
        users = sorted(self.rows.values(), key=lambda u: (u.created_at, u.id))
        if after is not None:
            users = [u for u in users if (u.created_at, u.id) > (after.created_at, after.id)]
        if email_prefix:
            users = [u for u in users if u.email.value.startswith(email_prefix)]
        return [_copy(u) for u in users[:limit]]

    def _ensure_email_free(self, user: User) -> None:
        if any(u.email == user.email and u.id != user.id for u in self.rows.values()):
            raise EmailTaken()


class FakeUoW:
    """Leaving a block without commit() restores what the block started from."""

    def __init__(self, users: Iterable[User] = ()) -> None:
        self.users = InMemoryUserRepo(users)
        self.committed = False
        self.is_open = False
        self._snapshot: dict[ID, User] = {}

    async def __aenter__(self) -> Self:
        self.is_open = True
        self._snapshot = self.users.snapshot()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.is_open = False
        await self.rollback()  # to the last commit in the block, else to where it started

    async def commit(self) -> None:
        self.committed = True
        self._snapshot = self.users.snapshot()

    async def rollback(self) -> None:
        self.users.restore(self._snapshot)


class FakeHasher:
    """hash = "hashed:" + password; counts every call; `on_call` runs before each.

    `scheme` replaces "hashed" in new hashes, so a rehash is visible; verify
    compares the part after the scheme, whatever the scheme.
    """

    def __init__(self, needs_rehash: bool = False, scheme: str = "hashed") -> None:
        self.rehash_needed, self.scheme = needs_rehash, scheme
        self.hashed: list[str] = []
        self.verified: list[str] = []
        self.dummies: list[str] = []
        self.on_call: Callable[[], None] | None = None

    @property
    def calls(self) -> int:
        """Slow operations: hash, verify and verify_dummy."""
        return len(self.hashed) + len(self.verified) + len(self.dummies)

    async def hash(self, password: Password) -> HashedPassword:
        self._notify()
        self.hashed.append(password.value)
        return HashedPassword(f"{self.scheme}:{password.value}")

    async def verify(self, candidate: str, hashed: HashedPassword) -> bool:
        self._notify()
        self.verified.append(candidate)
        return hashed.value.partition(":")[2] == candidate

    async def needs_rehash(self, hashed: HashedPassword) -> bool:
        return self.rehash_needed

    async def verify_dummy(self, candidate: str) -> None:
        self._notify()
        self.dummies.append(candidate)

    def _notify(self) -> None:
        if self.on_call is not None:
            self.on_call()


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        self._now += timedelta(seconds=seconds, **delta)
        return self._now


@dataclasses.dataclass
class _Counter:
    count: int
    window_start: float  # epoch seconds
    locked_until: float | None = None


class FakeThrottle:
    """The LoginThrottle rule (see its docstring) in memory; the behaviour cases
    in tests/integration/test_login_throttle.py hold it to the SQL adapter."""

    def __init__(
        self, clock: FakeClock | None = None, max_failures: int = 5, lockout_seconds: int = 900
    ) -> None:
        self.clock = clock or FakeClock()
        self.max_failures, self.lockout_seconds = max_failures, lockout_seconds
        self.counters: dict[str, _Counter] = {}
        self.resets: list[str] = []
        self.in_flight = KeyedLock()

    def one_at_a_time(self, username: str) -> AbstractAsyncContextManager[None]:
        return self.in_flight.hold(username)

    def failure_count(self, username: str) -> int:
        """Attempts counted in the open window (refused ones included)."""
        counter = self.counters.get(username)
        if counter is None or self._window_over(counter, self.clock.now().timestamp()):
            return 0
        return counter.count

    async def reserve(self, username: str) -> int | None:
        now = self.clock.now().timestamp()
        counter = self.counters.get(username)
        locked = counter is not None and (counter.locked_until or 0) > now
        if counter is None or (self._window_over(counter, now) and not locked):
            counter = self.counters[username] = _Counter(count=0, window_start=now)
        counter.count += 1
        if not locked and counter.count >= self.max_failures:
            counter.locked_until = now + self.lockout_seconds
        if counter.count <= self.max_failures:
            return None
        assert counter.locked_until is not None
        return max(1, math.ceil(counter.locked_until - now))

    async def release(self, username: str) -> None:
        counter = self.counters.get(username)
        if counter is not None and counter.count > 0:
            if counter.count <= self.max_failures:
                counter.locked_until = None
            counter.count -= 1

    async def reset(self, username: str) -> None:
        self.resets.append(username)
        self.counters.pop(username, None)

    def _window_over(self, counter: _Counter, now: float) -> bool:
        return counter.window_start <= now - self.lockout_seconds


class FakeTokens:
    """Tokens are opaque keys into the claims they were issued with."""

    def __init__(self, expires_in: int = 1800) -> None:
        self.expires_in = expires_in
        self.claims: dict[str, TokenClaims] = {}
        self.issued_to: list[ID] = []

    def issue(self, user: User) -> AccessToken:
        self.issued_to.append(user.id)
        token = self.forge(str(user.id), user.token_version)
        return AccessToken(token=token, expires_in=self.expires_in)

    def forge(self, subject: str, token_version: int = 0) -> str:
        """A token that reads as these claims, as if signed by us."""
        token = f"token-{len(self.claims)}"
        self.claims[token] = TokenClaims(subject=subject, token_version=token_version)
        return token

    def read(self, token: str) -> TokenClaims:
        try:
            return self.claims[token]
        except KeyError:
            raise InvalidToken() from None


def a_user(
    email: str = "ann@example.com",
    name: str = "Ann",
    role: Role | str = Role.USER,
    is_active: bool = True,
    password: str = PASSWORD,
    created_at: datetime = T0,
    token_version: int = 0,
) -> User:
    return User(
        id=ID.new(),
        email=Email(email),
        name=Name(name),
        hashed_password=HashedPassword(HASH_PREFIX + password),
        role=Role(role),
        is_active=is_active,
        created_at=created_at,
        updated_at=created_at,
        token_version=token_version,
    )


def an_admin(email: str = "root@example.com", name: str = "Root", is_active: bool = True) -> User:
    return a_user(email=email, name=name, role=Role.ADMIN, is_active=is_active)


def dto(user: User) -> UserDTO:
    return UserDTO.from_entity(user)
