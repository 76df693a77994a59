"""Sessions and refresh tokens: login, resolve, refresh, revoke, logout, listing
and ending sessions, on in-memory fakes."""

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.dtos import Caller, Credentials, TokenPair
from app.core.entities import RefreshToken, Session, SessionPolicy, User
from app.core.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    NotEnoughPermissions,
    SessionNotFound,
    UserNotFound,
)
from app.core.usecases.admin_end_sessions import AdminEndSessions
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.end_session import EndSession
from app.core.usecases.list_sessions import ListSessions
from app.core.usecases.logout import Logout
from app.core.usecases.logout_all import LogoutAll
from app.core.usecases.refresh_session import RefreshSession
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.usecases.revoke_token import RevokeToken
from app.core.value_objects import ID, Role
from tests.unit.fakes import (
    PASSWORD,
    POLICY,
    T0,
    FakeClock,
    FakeHasher,
    FakeReader,
    FakeRefreshGrants,
    FakeThrottle,
    FakeTokens,
    FakeUoW,
    a_session,
    a_user,
    an_admin,
    caller,
    dto,
)

# Shaped as OpaqueToken.new() makes them, but never issued; fixed, so that
# test ids are the same in every process (pytest-xdist compares them).
UNKNOWN_TOKEN = "q8Gz3KpX0vN5yT2mW7bR4cL9hJ6dF1sA0eU3iO8nZ5k"

ANN, BOB = "ann@example.com", "bob@example.com"
TTL_SECONDS = int(POLICY.refresh_token_ttl.total_seconds())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """The session use cases wired to one set of fakes that the test can inspect.

    Stored rows are looked up afresh each time: a unit of work's rollback
    replaces them, so a row kept from before goes stale."""

    def __init__(self, *users: User, policy: SessionPolicy = POLICY) -> None:
        self.clock = FakeClock()
        self.uow = FakeUoW(users=users)
        self.grants = FakeRefreshGrants(self.uow)
        self.hasher = FakeHasher()
        self.tokens = FakeTokens()
        self.policy = policy

    async def login(self, user: User, user_agent: str | None = None) -> TokenPair:
        usecase = AuthenticateUser(
            self.uow, self.hasher, FakeThrottle(self.clock), self.tokens, self.clock, self.policy
        )
        return await usecase.execute(Credentials(user.email.value, PASSWORD), user_agent)

    async def refresh(self, refresh_token: str) -> TokenPair:
        usecase = RefreshSession(self.grants, self.tokens, self.clock, self.policy)
        return await usecase.execute(refresh_token)

    async def resolve(self, access_token: str) -> Caller:
        usecase = ResolveCurrentUser(FakeReader(self.uow), self.tokens, self.clock)
        return await usecase.execute(access_token)

    async def revoke(self, token: str) -> None:
        await RevokeToken(self.uow, self.tokens, self.clock).execute(token)

    def session_id(self, pair: TokenPair) -> ID:
        return self.tokens.read(pair.access.token).session_id

    def session(self, session_id: ID) -> Session:
        return self.uow.sessions.rows[session_id]

    def session_of(self, pair: TokenPair) -> Session:
        return self.session(self.session_id(pair))

    def change_session(self, session_id: ID, **changes: Any) -> None:
        """As another transaction would change the row (a Session is frozen)."""
        rows = self.uow.sessions.rows
        rows[session_id] = dataclasses.replace(rows[session_id], **changes)

    def refresh_row(self, refresh_token: str) -> RefreshToken:
        return self.uow.refresh_tokens.rows[_digest(refresh_token)]

    def live(self, user: User) -> set[ID]:
        now = self.clock.now()
        return {
            s.id for s in self.uow.sessions.rows.values() if s.user_id == user.id and s.is_live(now)
        }


# AuthenticateUser starts a session


async def test_login_starts_a_live_session_of_the_user_keeping_its_user_agent() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user, "Firefox/128")
    [session] = auth.uow.sessions.rows.values()
    assert session.user_id == user.id
    assert session.created_at == session.last_used_at == T0
    assert session.expires_at == T0 + POLICY.max_lifetime
    assert session.ended_at is None
    assert session.user_agent == "Firefox/128"
    assert auth.tokens.read(pair.access.token).session_id == session.id
    assert auth.uow.committed


async def test_login_truncates_the_user_agent_to_256_characters() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user, "a" * 256 + "b" * 100)
    assert auth.session_of(pair).user_agent == "a" * 256


@pytest.mark.parametrize("user_agent", [None, ""])
async def test_login_without_a_user_agent_stores_none(user_agent: str | None) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user, user_agent)
    assert auth.session_of(pair).user_agent is None


async def test_login_stores_the_refresh_tokens_digest_never_the_token() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    [(key, stored)] = auth.uow.refresh_tokens.rows.items()
    assert key == stored.digest == _digest(pair.refresh_token)
    assert pair.refresh_token not in repr(stored)
    assert stored.session_id == auth.session_id(pair)
    assert (stored.issued_at, stored.expires_at) == (T0, T0 + POLICY.refresh_token_ttl)
    assert stored.spent_at is None
    assert pair.refresh_token not in repr(pair)


@pytest.mark.parametrize(
    ("ttl", "lifetime", "expected"),
    [
        (timedelta(days=7), timedelta(days=30), 7 * 86400),
        (timedelta(days=7), timedelta(hours=1), 3600),
        (timedelta(minutes=5), timedelta(minutes=5), 300),
    ],
)
async def test_login_answers_the_refresh_expiry_capped_by_the_session_lifetime(
    ttl: timedelta, lifetime: timedelta, expected: int
) -> None:
    user = a_user(email=ANN)
    auth = Auth(
        user, policy=dataclasses.replace(POLICY, refresh_token_ttl=ttl, max_lifetime=lifetime)
    )
    pair = await auth.login(user)
    assert pair.refresh_expires_in == expected
    assert auth.refresh_row(pair.refresh_token).expires_at == T0 + timedelta(seconds=expected)


async def test_the_login_beyond_the_cap_ends_the_oldest_live_session() -> None:
    user, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(user, bob, policy=dataclasses.replace(POLICY, max_per_user=3))
    bobs = await auth.login(bob)
    pairs = []
    for _ in range(4):
        pairs.append(await auth.login(user))
        auth.clock.advance(1)
    oldest, *newer = (auth.session_id(p) for p in pairs)
    assert auth.session(oldest).ended_at == T0 + timedelta(seconds=3)  # at the 4th login
    assert auth.live(user) == set(newer)
    assert auth.live(bob) == {auth.session_id(bobs)}


async def test_ended_sessions_do_not_count_against_the_cap() -> None:
    user = a_user(email=ANN)
    auth = Auth(user, policy=dataclasses.replace(POLICY, max_per_user=2))
    first = await auth.login(user)
    auth.clock.advance(1)
    second = await auth.login(user)
    auth.change_session(auth.session_id(first), ended_at=auth.clock.now())  # logged out
    auth.clock.advance(1)
    third = await auth.login(user)
    assert auth.live(user) == {auth.session_id(second), auth.session_id(third)}


async def test_a_user_deactivated_while_its_password_is_checked_gets_no_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)

    def deactivated_meanwhile() -> None:
        auth.uow.users.stored(user.id).is_active = False  # the version alone stays

    auth.hasher.on_call = deactivated_meanwhile
    with pytest.raises(InvalidCredentials):
        await auth.login(user)
    assert auth.hasher.verified == [PASSWORD]  # the password itself was right
    assert auth.uow.sessions.rows == {}
    assert auth.uow.refresh_tokens.rows == {}
    assert auth.tokens.issued_to == []


async def test_a_password_changed_while_it_is_checked_starts_no_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)

    def password_changed_meanwhile() -> None:
        auth.uow.users.stored(user.id).token_version += 1

    auth.hasher.on_call = password_changed_meanwhile
    with pytest.raises(InvalidCredentials):
        await auth.login(user)
    assert auth.uow.sessions.rows == {}
    assert auth.uow.refresh_tokens.rows == {}
    assert auth.tokens.issued_to == []


# ResolveCurrentUser checks the session


async def test_resolve_answers_the_caller_and_its_live_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    session = await a_session(auth.uow, user)
    resolved = await auth.resolve(auth.tokens.issue(user, session.id).token)
    assert resolved == caller(user, session)


async def test_resolve_refuses_a_token_of_an_ended_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    assert await auth.resolve(pair.access.token)
    auth.change_session(auth.session_id(pair), ended_at=auth.clock.now())
    with pytest.raises(InvalidToken):
        await auth.resolve(pair.access.token)


async def test_resolve_refuses_a_session_past_its_absolute_limit() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    token = auth.tokens.issue(user, (await a_session(auth.uow, user)).id).token
    auth.clock.set(T0 + POLICY.max_lifetime - timedelta(seconds=1))
    assert await auth.resolve(token)
    auth.clock.advance(1)
    with pytest.raises(InvalidToken):
        await auth.resolve(token)


async def test_resolve_refuses_a_token_naming_another_users_session() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(ann, bob)
    await a_session(auth.uow, ann)
    bobs = await a_session(auth.uow, bob)
    with pytest.raises(InvalidToken):
        await auth.resolve(auth.tokens.forge(str(ann.id), 0, str(bobs.id)))


async def test_resolve_refuses_an_unknown_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    await a_session(auth.uow, user)
    with pytest.raises(InvalidToken):
        await auth.resolve(auth.tokens.forge(str(user.id), 0, str(ID.new())))


@pytest.mark.parametrize("sid", ["", "1", "not-a-uuid", "' OR 1=1 --", "\x00"])
async def test_resolve_refuses_a_session_id_that_is_not_a_uuid(sid: str) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    await a_session(auth.uow, user)
    with pytest.raises(InvalidToken):
        await auth.resolve(auth.tokens.forge(str(user.id), 0, sid))


# RefreshSession


async def test_refresh_rotates_the_pair_within_the_same_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    first = await auth.login(user)
    now = auth.clock.advance(minutes=20)
    second = await auth.refresh(first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.access.token != first.access.token
    assert auth.refresh_row(first.refresh_token).spent_at == now
    new = auth.refresh_row(second.refresh_token)
    assert (new.session_id, new.issued_at, new.spent_at) == (auth.session_id(first), now, None)
    assert auth.session_of(first).last_used_at == now
    assert auth.session_id(second) == auth.session_id(first)
    assert (await auth.resolve(second.access.token)).session_id == auth.session_id(first)
    assert second.refresh_expires_in == TTL_SECONDS
    assert await auth.refresh(second.refresh_token)  # the new one rotates in turn


@pytest.mark.parametrize("token", ["", "unknown", UNKNOWN_TOKEN, "\ud800", "x" * 5000])
async def test_refresh_refuses_an_unknown_token(token: str) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(token)
    assert auth.session_of(pair).ended_at is None
    assert len(auth.uow.refresh_tokens.rows) == 1


async def test_refresh_refuses_a_token_past_its_idle_limit() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    auth.clock.set(auth.refresh_row(pair.refresh_token).expires_at)
    assert auth.session_of(pair).is_live(auth.clock.now())  # only the token has expired
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)
    assert auth.refresh_row(pair.refresh_token).spent_at is None
    assert len(auth.uow.refresh_tokens.rows) == 1


async def test_refresh_refuses_a_token_of_an_ended_session() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    auth.change_session(auth.session_id(pair), ended_at=auth.clock.now())
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)
    assert len(auth.uow.refresh_tokens.rows) == 1
    assert auth.tokens.issued_to == [user.id]  # the login's only


async def test_refresh_refuses_a_session_past_its_absolute_limit() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    now = auth.clock.advance(minutes=5)
    auth.change_session(auth.session_id(pair), expires_at=now)  # the token itself has not expired
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)
    assert len(auth.uow.refresh_tokens.rows) == 1


async def test_refresh_refuses_an_inactive_user() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    auth.uow.users.stored(user.id).is_active = False
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)
    assert len(auth.uow.refresh_tokens.rows) == 1


async def test_refresh_refuses_a_deleted_user() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    await auth.uow.users.delete(user.id)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)
    assert len(auth.uow.refresh_tokens.rows) == 1


def stored_rows(auth: Auth) -> tuple[dict[object, tuple[object, ...]], ...]:
    """Every field of every stored user, session and refresh token (the
    entities themselves compare by id or identity)."""
    uow = auth.uow
    return (
        {key: dataclasses.astuple(row) for key, row in uow.users.rows.items()},
        {key: dataclasses.astuple(row) for key, row in uow.sessions.rows.items()},
        {key: dataclasses.astuple(row) for key, row in uow.refresh_tokens.rows.items()},
    )


async def _unknown(auth: Auth, user: User, pair: TokenPair) -> str:
    return UNKNOWN_TOKEN


async def _expired(auth: Auth, user: User, pair: TokenPair) -> str:
    auth.clock.set(auth.refresh_row(pair.refresh_token).expires_at)
    return pair.refresh_token


async def _session_ended(auth: Auth, user: User, pair: TokenPair) -> str:
    auth.change_session(auth.session_id(pair), ended_at=auth.clock.now())
    return pair.refresh_token


async def _session_past_its_limit(auth: Auth, user: User, pair: TokenPair) -> str:
    auth.change_session(auth.session_id(pair), expires_at=auth.clock.now())
    return pair.refresh_token


async def _user_inactive(auth: Auth, user: User, pair: TokenPair) -> str:
    auth.uow.users.stored(user.id).is_active = False
    return pair.refresh_token


async def _user_deleted(auth: Auth, user: User, pair: TokenPair) -> str:
    await auth.uow.users.delete(user.id)
    return pair.refresh_token


@pytest.mark.parametrize(
    "refused",
    [_unknown, _expired, _session_ended, _session_past_its_limit, _user_inactive, _user_deleted],
    ids=lambda refused: refused.__name__.lstrip("_"),
)
async def test_a_refused_refresh_writes_nothing(
    refused: Callable[[Auth, User, TokenPair], Awaitable[str]],
) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    auth.clock.advance(minutes=1)
    presented = await refused(auth, user, pair)
    before, commits = stored_rows(auth), auth.uow.commits

    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(presented)

    assert stored_rows(auth) == before
    assert auth.uow.commits == commits
    assert auth.tokens.issued_to == [user.id]  # the login's only


async def test_reuse_after_the_grace_window_ends_the_session_and_is_audited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    first = await auth.login(user)
    second = await auth.refresh(first.refresh_token)
    now = auth.clock.advance(POLICY.reuse_interval.total_seconds() + 1)

    with caplog.at_level("INFO", logger="app.audit"), pytest.raises(InvalidRefreshToken):
        await auth.refresh(first.refresh_token)

    assert auth.session_of(first).ended_at == now
    with pytest.raises(InvalidToken):
        await auth.resolve(second.access.token)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(second.refresh_token)  # the thief's or the victim's: both end
    [record] = [r for r in caplog.records if r.getMessage() == "session.refresh_token_reused"]
    assert record.__dict__["session_id"] == str(auth.session_id(first))
    assert record.__dict__["user_id"] == str(user.id)


async def test_reuse_ends_only_the_session_of_the_reused_token() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    stolen, other = await auth.login(user), await auth.login(user)
    await auth.refresh(stolen.refresh_token)
    auth.clock.advance(minutes=1)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(stolen.refresh_token)
    assert auth.live(user) == {auth.session_id(other)}
    assert await auth.resolve(other.access.token)


async def test_within_the_grace_window_one_more_presentation_yields_a_pair(
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    first = await auth.login(user)
    second = await auth.refresh(first.refresh_token)
    auth.clock.advance(POLICY.reuse_interval.total_seconds() / 2)

    with caplog.at_level("INFO", logger="app.audit"):
        other_tab = await auth.refresh(first.refresh_token)
    assert other_tab.refresh_token != second.refresh_token
    assert auth.session_id(other_tab) == auth.session_id(first)
    assert (await auth.resolve(other_tab.access.token)).session_id == auth.session_id(first)
    assert await auth.resolve(second.access.token)
    assert "session.refresh_token_reused" not in [r.getMessage() for r in caplog.records]

    auth.clock.advance(1)  # still within the window
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(first.refresh_token)
    assert auth.session_of(first).ended_at == auth.clock.now()


async def test_a_zero_reuse_interval_makes_the_second_presentation_reuse() -> None:
    user = a_user(email=ANN)
    auth = Auth(user, policy=dataclasses.replace(POLICY, reuse_interval=timedelta(0)))
    first = await auth.login(user)
    await auth.refresh(first.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(first.refresh_token)  # at the very same moment
    assert auth.session_of(first).ended_at == T0


async def test_a_refresh_token_never_outlives_the_sessions_absolute_limit() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)  # 7-day tokens, 30-day sessions
    pair = await auth.login(user)
    for _ in range(4):
        auth.clock.advance(days=6)
        pair = await auth.refresh(pair.refresh_token)
    assert auth.clock.now() == T0 + timedelta(days=24)
    limit = auth.session_of(pair).expires_at
    assert auth.refresh_row(pair.refresh_token).expires_at == limit == T0 + timedelta(days=30)
    assert pair.refresh_expires_in == 6 * 86400

    auth.clock.set(limit)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)


# RevokeToken


async def test_revoking_a_refresh_token_ends_its_session_only() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair, other = await auth.login(user), await auth.login(user)
    now = auth.clock.advance(minutes=1)
    await auth.revoke(pair.refresh_token)
    assert auth.session_of(pair).ended_at == now
    assert auth.live(user) == {auth.session_id(other)}
    with pytest.raises(InvalidToken):
        await auth.resolve(pair.access.token)
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)


async def test_revoking_an_access_token_ends_its_session_only() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair, other = await auth.login(user), await auth.login(user)
    now = auth.clock.advance(minutes=1)
    await auth.revoke(pair.access.token)
    assert auth.session_of(pair).ended_at == now
    assert auth.live(user) == {auth.session_id(other)}
    with pytest.raises(InvalidRefreshToken):
        await auth.refresh(pair.refresh_token)


@pytest.mark.parametrize("token", ["", "junk", "a.b.c", UNKNOWN_TOKEN, "\ud800", "x" * 5000])
async def test_revoking_junk_or_an_unknown_token_ends_nothing(token: str) -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    commits = auth.uow.commits
    await auth.revoke(token)
    assert auth.live(user) == {auth.session_id(pair)}
    assert auth.uow.commits == commits


async def test_revoking_an_access_token_of_an_unknown_session_ends_nothing() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    await auth.revoke(auth.tokens.forge(str(user.id), 0, str(ID.new())))
    assert auth.live(user) == {auth.session_id(pair)}


async def test_revoking_an_expired_refresh_token_ends_nothing() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    auth.clock.set(auth.refresh_row(pair.refresh_token).expires_at)
    await auth.revoke(pair.refresh_token)
    assert auth.live(user) == {auth.session_id(pair)}


async def test_revoking_a_spent_refresh_token_ends_nothing() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    first = await auth.login(user)
    second = await auth.refresh(first.refresh_token)
    auth.clock.advance(minutes=1)
    await auth.revoke(first.refresh_token)
    assert auth.live(user) == {auth.session_id(first)}
    assert await auth.resolve(second.access.token)


async def test_revoking_twice_is_harmless() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    pair = await auth.login(user)
    ended = auth.clock.advance(minutes=1)
    await auth.revoke(pair.refresh_token)
    auth.clock.advance(minutes=1)
    await auth.revoke(pair.refresh_token)
    await auth.revoke(pair.access.token)
    assert auth.session_of(pair).ended_at == ended


# Logout and LogoutAll


async def test_logout_ends_only_the_callers_session() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(ann, bob)
    mine, other = await a_session(auth.uow, ann), await a_session(auth.uow, ann)
    bobs = await a_session(auth.uow, bob)
    now = auth.clock.advance(minutes=1)
    await Logout(auth.uow, auth.clock).execute(caller(ann, mine))
    assert auth.session(mine.id).ended_at == now
    assert auth.live(ann) == {other.id}
    assert auth.live(bob) == {bobs.id}


async def test_logout_all_ends_every_session_of_the_caller_only() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(ann, bob)
    mine = [await a_session(auth.uow, ann) for _ in range(3)]
    bobs = await a_session(auth.uow, bob)
    now = auth.clock.advance(minutes=1)
    await LogoutAll(auth.uow, auth.clock).execute(caller(ann, mine[0]))
    assert [auth.session(s.id).ended_at for s in mine] == [now] * 3
    assert auth.live(bob) == {bobs.id}


# ListSessions


async def test_list_sessions_answers_the_live_ones_newest_first_marking_the_current() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(ann, bob)
    oldest = await a_session(auth.uow, ann, T0)
    current = await a_session(auth.uow, ann, T0 + timedelta(minutes=10))
    newest = await a_session(auth.uow, ann, T0 + timedelta(minutes=20))
    ended = await a_session(auth.uow, ann, T0 + timedelta(minutes=30))
    auth.change_session(ended.id, ended_at=T0 + timedelta(minutes=40))
    await a_session(auth.uow, ann, T0 - POLICY.max_lifetime)  # past its limit at T0
    await a_session(auth.uow, bob, T0 + timedelta(minutes=5))
    auth.clock.set(T0 + timedelta(hours=1))

    listed = await ListSessions(auth.uow, auth.clock).execute(caller(ann, current))

    assert [(s.id, s.current) for s in listed] == [
        (newest.id.value, False),
        (current.id.value, True),
        (oldest.id.value, False),
    ]
    assert listed[1].created_at == T0 + timedelta(minutes=10)
    assert listed[1].expires_at == current.expires_at
    assert listed[1].user_agent == "test-agent"


# EndSession


async def test_end_session_ends_the_named_session_only() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    mine, lost_phone = await a_session(auth.uow, user), await a_session(auth.uow, user)
    now = auth.clock.advance(minutes=1)
    await EndSession(auth.uow, auth.clock).execute(caller(user, mine), lost_phone.id)
    assert auth.session(lost_phone.id).ended_at == now
    assert auth.live(user) == {mine.id}


async def test_end_session_treats_another_users_session_as_not_found() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(ann, bob)
    mine, bobs = await a_session(auth.uow, ann), await a_session(auth.uow, bob)
    with pytest.raises(SessionNotFound):
        await EndSession(auth.uow, auth.clock).execute(caller(ann, mine), bobs.id)
    assert auth.live(bob) == {bobs.id}
    assert auth.live(ann) == {mine.id}
    assert not auth.uow.committed


async def test_end_session_treats_an_ended_session_as_not_found() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    mine, old = await a_session(auth.uow, user), await a_session(auth.uow, user)
    auth.change_session(old.id, ended_at=T0)
    auth.clock.advance(minutes=1)
    with pytest.raises(SessionNotFound):
        await EndSession(auth.uow, auth.clock).execute(caller(user, mine), old.id)
    assert auth.session(old.id).ended_at == T0
    assert auth.live(user) == {mine.id}
    assert not auth.uow.committed


async def test_end_session_treats_an_unknown_id_as_not_found() -> None:
    user = a_user(email=ANN)
    auth = Auth(user)
    mine = await a_session(auth.uow, user)
    with pytest.raises(SessionNotFound):
        await EndSession(auth.uow, auth.clock).execute(caller(user, mine), ID.new())
    assert auth.live(user) == {mine.id}
    assert not auth.uow.committed


# AdminEndSessions


async def test_admin_ends_every_session_of_the_target_only() -> None:
    admin, ann, bob = an_admin(), a_user(email=ANN), a_user(email=BOB)
    auth = Auth(admin, ann, bob)
    anns = [await a_session(auth.uow, ann) for _ in range(2)]
    admins, bobs = await a_session(auth.uow, admin), await a_session(auth.uow, bob)
    now = auth.clock.advance(minutes=1)
    await AdminEndSessions(auth.uow, auth.clock).execute(dto(admin), ann.id)
    assert [auth.session(s.id).ended_at for s in anns] == [now, now]
    assert auth.live(admin) == {admins.id}
    assert auth.live(bob) == {bobs.id}


async def test_admin_end_sessions_refuses_a_non_admin_without_locking_anything() -> None:
    ann, bob = a_user(email=ANN), a_user(email=BOB)
    auth = Auth(an_admin(), ann, bob)
    bobs = await a_session(auth.uow, bob)
    with pytest.raises(NotEnoughPermissions):
        await AdminEndSessions(auth.uow, auth.clock).execute(dto(ann), bob.id)
    assert auth.live(bob) == {bobs.id}
    assert auth.uow.users.locked == []
    assert not auth.uow.committed


async def test_admin_end_sessions_of_an_unknown_user_is_not_found() -> None:
    admin = an_admin()
    auth = Auth(admin)
    admins = await a_session(auth.uow, admin)
    with pytest.raises(UserNotFound):
        await AdminEndSessions(auth.uow, auth.clock).execute(dto(admin), ID.new())
    assert auth.live(admin) == {admins.id}
    assert not auth.uow.committed


async def test_an_admin_demoted_in_flight_ends_no_session() -> None:
    admin, other, ann = an_admin(), an_admin("other@example.com"), a_user(email=ANN)
    auth = Auth(admin, other, ann)
    anns = await a_session(auth.uow, ann)
    actor = dto(admin)  # resolved as an admin
    auth.uow.users.stored(admin.id).change_role(Role.USER, T0)
    with pytest.raises(NotEnoughPermissions):
        await AdminEndSessions(auth.uow, auth.clock).execute(actor, ann.id)
    assert auth.live(ann) == {anns.id}
    assert not auth.uow.committed
