"""In-memory fakes of the core's ports, and builders, for use-case tests."""

import asyncio
import dataclasses
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from app.core.dtos import AccessToken, Caller, EmailMessage, TokenClaims, UserDTO
from app.core.entities import (
    OneTimeToken,
    RecoveryPolicy,
    RefreshToken,
    Session,
    SessionPolicy,
    TokenPurpose,
    User,
)
from app.core.exceptions import EmailTaken, InvalidToken
from app.core.ports import RefreshGrant
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
        # Set by FakeUoW: what ON DELETE CASCADE removes with a user.
        self.on_delete: Callable[[ID], None] | None = None
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
        if self.on_delete is not None:
            self.on_delete(user_id)

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


class InMemorySessionRepo:
    """Sessions as rows, under the SessionRepo rule (live = `Session.is_live`)."""

    def __init__(self) -> None:
        self.rows: dict[ID, Session] = {}

    def snapshot(self) -> dict[ID, Session]:
        return {key: dataclasses.replace(s) for key, s in self.rows.items()}

    def restore(self, rows: dict[ID, Session]) -> None:
        self.rows = {key: dataclasses.replace(s) for key, s in rows.items()}

    async def add(self, session: Session) -> None:
        self.rows[session.id] = dataclasses.replace(session)

    async def get(self, session_id: ID) -> Session | None:
        session = self.rows.get(session_id)
        return dataclasses.replace(session) if session else None

    async def list_live(self, user_id: ID, now: datetime) -> list[Session]:
        live = [s for s in self.rows.values() if s.user_id == user_id and s.is_live(now)]
        live.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return [dataclasses.replace(s) for s in live]

    async def end(self, session_id: ID, now: datetime) -> None:
        session = self.rows.get(session_id)
        if session is not None and session.ended_at is None:
            self.rows[session_id] = dataclasses.replace(session, ended_at=now)

    async def end_all(self, user_id: ID, now: datetime) -> None:
        for key, session in self.rows.items():
            if session.user_id == user_id and session.ended_at is None:
                self.rows[key] = dataclasses.replace(session, ended_at=now)

    async def end_beyond(self, user_id: ID, keep: int, now: datetime) -> None:
        for session in (await self.list_live(user_id, now))[keep:]:
            await self.end(session.id, now)

    def delete_of(self, user_id: ID) -> None:
        """As ON DELETE CASCADE does when the user's row goes."""
        self.rows = {k: s for k, s in self.rows.items() if s.user_id != user_id}


class InMemoryRefreshTokenRepo:
    def __init__(self) -> None:
        self.rows: dict[str, RefreshToken] = {}

    def snapshot(self) -> dict[str, RefreshToken]:
        return {key: dataclasses.replace(t) for key, t in self.rows.items()}

    def restore(self, rows: dict[str, RefreshToken]) -> None:
        self.rows = {key: dataclasses.replace(t) for key, t in rows.items()}

    async def add(self, token: RefreshToken) -> None:
        self.rows[token.digest] = dataclasses.replace(token)

    async def get(self, digest: str) -> RefreshToken | None:
        token = self.rows.get(digest)
        return dataclasses.replace(token) if token else None


class InMemoryOneTimeTokenRepo:
    """One-time tokens by digest, under the OneTimeTokenRepo rule."""

    def __init__(self) -> None:
        self.rows: dict[str, OneTimeToken] = {}

    def snapshot(self) -> dict[str, OneTimeToken]:
        return {key: dataclasses.replace(t) for key, t in self.rows.items()}

    def restore(self, rows: dict[str, OneTimeToken]) -> None:
        self.rows = {key: dataclasses.replace(t) for key, t in rows.items()}

    def of(self, user_id: ID, purpose: TokenPurpose | None = None) -> list[OneTimeToken]:
        """The user's stored tokens (of one purpose, or all), oldest first, for assertions."""
        return [
            t
            for t in sorted(self.rows.values(), key=lambda t: t.created_at)
            if t.user_id == user_id and (purpose is None or t.purpose is purpose)
        ]

    async def add(self, token: OneTimeToken) -> None:
        if token.digest in self.rows:
            raise ValueError("duplicate token digest")
        self.rows[token.digest] = dataclasses.replace(token)

    async def get(self, digest: str, purpose: TokenPurpose) -> OneTimeToken | None:
        token = self.rows.get(digest)
        return dataclasses.replace(token) if token and token.purpose is purpose else None

    async def use(self, digest: str, now: datetime) -> bool:
        token = self.rows.get(digest)
        if token is None or token.used_at is not None or token.voided_at is not None:
            return False
        token.used_at = now
        return True

    async def void_all(self, user_id: ID, purpose: TokenPurpose | None, now: datetime) -> None:
        for token in self.rows.values():
            if (
                token.user_id == user_id
                and (purpose is None or token.purpose is purpose)
                and token.used_at is None
                and token.voided_at is None
            ):
                token.voided_at = now

    def delete_of(self, user_id: ID) -> None:
        """As ON DELETE CASCADE does when the user's row goes."""
        self.rows = {k: t for k, t in self.rows.items() if t.user_id != user_id}


class InMemoryOutbox:
    """The mail queued, in order; what a dispatcher would send after the commit."""

    def __init__(self) -> None:
        self.rows: list[EmailMessage] = []

    def snapshot(self) -> list[EmailMessage]:
        return list(self.rows)  # EmailMessage is frozen

    def restore(self, rows: list[EmailMessage]) -> None:
        self.rows = list(rows)

    async def add(self, message: EmailMessage, now: datetime) -> None:
        self.rows.append(message)


_Request = tuple[TokenPurpose, Email, datetime]


class InMemoryMailRequests:
    """Recorded requests taken oldest first, and the per-address cooldowns,
    under the MailRequests rule."""

    def __init__(self) -> None:
        self.rows: list[_Request] = []
        self.cooldowns: dict[str, datetime] = {}  # address -> when its last mail went

    def snapshot(self) -> tuple[list[_Request], dict[str, datetime]]:
        return list(self.rows), dict(self.cooldowns)

    def restore(self, state: tuple[list[_Request], dict[str, datetime]]) -> None:
        self.rows, self.cooldowns = list(state[0]), dict(state[1])

    async def add(self, purpose: TokenPurpose, email: Email, now: datetime) -> None:
        self.rows.append((purpose, email, now))

    async def take(self) -> tuple[TokenPurpose, Email] | None:
        if not self.rows:
            return None
        # Oldest by requested_at; among equal times, the first recorded (sorted is stable).
        oldest = sorted(self.rows, key=lambda r: r[2])[0]
        self.rows.remove(oldest)
        return oldest[0], oldest[1]

    async def claim_cooldown(self, email: Email, now: datetime, cooldown: timedelta) -> bool:
        last = self.cooldowns.get(email.value)
        if last is not None and last > now - cooldown:
            return False
        self.cooldowns[email.value] = now
        return True


_Snapshot = tuple[
    dict[ID, User],
    dict[ID, Session],
    dict[str, RefreshToken],
    dict[str, OneTimeToken],
    list[EmailMessage],
    tuple[list[_Request], dict[str, datetime]],
]


class FakeUoW:
    """Leaving a block without commit() restores what the block started from."""

    def __init__(self, users: Iterable[User] = ()) -> None:
        self.users = InMemoryUserRepo(users)
        self.sessions = InMemorySessionRepo()
        self.refresh_tokens = InMemoryRefreshTokenRepo()
        self.one_time_tokens = InMemoryOneTimeTokenRepo()
        self.outbox = InMemoryOutbox()
        self.mail_requests = InMemoryMailRequests()
        self.users.on_delete = self._cascade
        self.committed = False
        self.commits = 0
        self.is_open = False
        self._snapshot: _Snapshot = self._take()

    async def __aenter__(self) -> Self:
        self.is_open = True
        self._snapshot = self._take()
        return self

    def _take(self) -> _Snapshot:
        return (
            self.users.snapshot(),
            self.sessions.snapshot(),
            self.refresh_tokens.snapshot(),
            self.one_time_tokens.snapshot(),
            self.outbox.snapshot(),
            self.mail_requests.snapshot(),
        )

    def _cascade(self, user_id: ID) -> None:
        self.sessions.delete_of(user_id)
        self.one_time_tokens.delete_of(user_id)

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
        self.commits += 1
        self._snapshot = self._take()

    async def rollback(self) -> None:
        users, sessions, refresh_tokens, one_time_tokens, outbox, mail_requests = self._snapshot
        self.users.restore(users)
        self.sessions.restore(sessions)
        self.refresh_tokens.restore(refresh_tokens)
        self.one_time_tokens.restore(one_time_tokens)
        self.outbox.restore(outbox)
        self.mail_requests.restore(mail_requests)


class FakeReader:
    """The UserReader over a FakeUoW's rows (what is stored now)."""

    def __init__(self, uow: FakeUoW) -> None:
        self._uow = uow

    async def get_with_session(self, session_id: ID) -> tuple[User, Session] | None:
        session = await self._uow.sessions.get(session_id)
        user = await self._uow.users.get_by_id(session.user_id) if session else None
        return (user, session) if user and session else None


class FakeRefreshGrants:
    """RefreshGrants over a FakeUoW's rows, so the other use cases see what a
    refresh wrote. One hold at a time, as on SQLite's write lock; the block
    commits when it ends normally and rolls back when it raises."""

    def __init__(self, uow: FakeUoW) -> None:
        self._uow = uow
        self._one_at_a_time = asyncio.Lock()

    @asynccontextmanager
    async def hold(self, digest: str) -> AsyncIterator["_FakeHeld"]:
        async with self._one_at_a_time, self._uow as uow:
            yield _FakeHeld(uow, await _grant(uow, digest))
            await uow.commit()  # not reached when the block raises: FakeUoW rolls back


async def _grant(uow: FakeUoW, digest: str) -> RefreshGrant | None:
    """The token joined with its session and the session's user, as the SQL
    join finds it: None when any of the three is missing."""
    token = await uow.refresh_tokens.get(digest)
    session = await uow.sessions.get(token.session_id) if token else None
    user = await uow.users.get_by_id(session.user_id) if session else None
    if token is None or session is None or user is None:
        return None
    return RefreshGrant(token=token, session=session, user=user)


class _FakeHeld:
    def __init__(self, uow: FakeUoW, grant: RefreshGrant | None) -> None:
        self._uow, self._grant = uow, grant

    @property
    def grant(self) -> RefreshGrant | None:
        return self._grant

    async def rotate(self, new: RefreshToken, now: datetime) -> None:
        assert self._grant is not None, "no refresh token is held"
        token = self._grant.token
        stored = self._uow.refresh_tokens.rows[token.digest]
        if token.spent_at is None:
            stored.spent_at = now
        else:
            stored.respent = True
        sessions = self._uow.sessions.rows
        sessions[token.session_id] = dataclasses.replace(
            sessions[token.session_id], last_used_at=now
        )
        await self._uow.refresh_tokens.add(new)

    async def end_session(self, now: datetime) -> None:
        assert self._grant is not None, "no refresh token is held"
        await self._uow.sessions.end(self._grant.session.id, now)


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


class FakeLimiter:
    """A RequestLimiter whose window never ends within a test: the first
    `limit` hits of a key pass, every later one gets `retry_after`."""

    def __init__(self, limit: int = 1000, retry_after: int = 3600) -> None:
        self.limit, self.retry_after = limit, retry_after
        self.hits: Counter[str] = Counter()

    async def hit(self, key: str) -> int | None:
        self.hits[key] += 1
        return None if self.hits[key] <= self.limit else self.retry_after


class FakeTokens:
    """Tokens are opaque keys into the claims they were issued with."""

    def __init__(self, expires_in: int = 1800) -> None:
        self.expires_in = expires_in
        self.claims: dict[str, tuple[str, int, str]] = {}
        self.issued_to: list[ID] = []

    def issue(self, user: User, session_id: ID) -> AccessToken:
        self.issued_to.append(user.id)
        token = self.forge(str(user.id), user.token_version, str(session_id))
        return AccessToken(token=token, expires_in=self.expires_in)

    def forge(self, subject: str, token_version: int = 0, session_id: str | None = None) -> str:
        """A token that reads as these claims, as if signed by us."""
        token = f"token-{len(self.claims)}"
        sid = session_id if session_id is not None else str(ID.new())
        self.claims[token] = (subject, token_version, sid)
        return token

    def read(self, token: str) -> TokenClaims:
        """As the real issuer reads: claims that are not ids are an invalid token."""
        try:
            subject, token_version, sid = self.claims[token]
            return TokenClaims(ID.parse(subject), token_version, ID.parse(sid))
        except (KeyError, ValueError):
            raise InvalidToken() from None


def a_user(
    email: str = "ann@example.com",
    name: str = "Ann",
    role: Role | str = Role.USER,
    is_active: bool = True,
    password: str = PASSWORD,
    created_at: datetime = T0,
    token_version: int = 0,
    email_verified: bool = False,
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
        email_verified=email_verified,
    )


def an_admin(email: str = "root@example.com", name: str = "Root", is_active: bool = True) -> User:
    return a_user(email=email, name=name, role=Role.ADMIN, is_active=is_active)


def dto(user: User) -> UserDTO:
    return UserDTO.from_entity(user)


POLICY = SessionPolicy(
    refresh_token_ttl=timedelta(days=7),
    max_lifetime=timedelta(days=30),
    reuse_interval=timedelta(seconds=10),
    max_per_user=100,
)

RECOVERY = RecoveryPolicy(
    frontend_url="https://app.example",
    reset_ttl=timedelta(minutes=30),
    verification_ttl=timedelta(days=1),
    cooldown=timedelta(seconds=60),
)


async def a_session(uow: FakeUoW, user: User, now: datetime = T0) -> Session:
    """A live session of `user`, stored (committed) in `uow`."""
    session = Session.start(user.id, now, POLICY, "test-agent")
    await uow.sessions.add(session)
    return session


def caller(user: User, session: Session) -> Caller:
    return Caller(dto(user), session.id)
