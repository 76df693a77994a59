"""UpdateProfile and ChangePassword on in-memory fakes."""

from datetime import timedelta
from unittest.mock import AsyncMock

import pytest

from app.core.dtos import Credentials, PasswordChange, ProfileChanges
from app.core.entities import User
from app.core.exceptions import (
    EmailTaken,
    InvalidEmail,
    InvalidName,
    InvalidToken,
    TooManyAttempts,
    WeakPassword,
    WrongPassword,
)
from app.core.ports import PasswordHasher
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.change_password import ChangePassword
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.usecases.update_profile import UpdateProfile
from app.core.value_objects import Email, HashedPassword, Name
from tests.unit.fakes import (
    HASH_PREFIX,
    PASSWORD,
    POLICY,
    RECOVERY,
    T0,
    FakeClock,
    FakeHasher,
    FakeReader,
    FakeThrottle,
    FakeTokens,
    FakeUoW,
    a_session,
    a_user,
    dto,
)

ANN = "ann@example.com"
NEW_PASSWORD = "brand-new-secret-7"


def _later() -> FakeClock:
    return FakeClock(T0 + timedelta(hours=1))


# UpdateProfile


async def test_update_profile_changes_name_and_email() -> None:
    user = a_user(email=ANN, name="Ann")
    uow, clock = FakeUoW(users=[user]), _later()
    updated = await UpdateProfile(uow, clock, RECOVERY).execute(
        dto(user), ProfileChanges(name="  Anna Lee ", email=" Anna@Example.COM ")
    )
    assert (updated.name, updated.email) == ("Anna Lee", "anna@example.com")
    assert updated.updated_at == clock.now()
    assert updated.created_at == T0
    stored = uow.users.stored(user.id)
    assert (stored.name, stored.email) == (Name("Anna Lee"), Email("anna@example.com"))
    assert uow.committed


async def test_update_profile_leaves_out_fields_unchanged() -> None:
    user = a_user(email=ANN, name="Ann")
    uow = FakeUoW(users=[user])
    updated = await UpdateProfile(uow, _later(), RECOVERY).execute(
        dto(user), ProfileChanges(name="Bo")
    )
    assert (updated.name, updated.email) == ("Bo", ANN)
    updated = await UpdateProfile(uow, _later(), RECOVERY).execute(
        dto(user), ProfileChanges(email="bo@example.com")
    )
    assert (updated.name, updated.email) == ("Bo", "bo@example.com")


async def test_update_profile_with_no_changes_changes_nothing() -> None:
    user = a_user(email=ANN, name="Ann")
    uow = FakeUoW(users=[user])
    updated = await UpdateProfile(uow, _later(), RECOVERY).execute(dto(user), ProfileChanges())
    assert updated == dto(user)
    assert uow.users.stored(user.id).updated_at == T0


async def test_update_profile_to_the_same_values_keeps_updated_at() -> None:
    user = a_user(email=ANN, name="Ann")
    uow = FakeUoW(users=[user])
    updated = await UpdateProfile(uow, _later(), RECOVERY).execute(
        dto(user), ProfileChanges(name=" Ann ", email="ANN@example.com")
    )
    assert updated.updated_at == T0


async def test_update_profile_refuses_an_email_taken_by_someone_else() -> None:
    user, bob = a_user(email=ANN, name="Ann"), a_user(email="bob@example.com")
    uow = FakeUoW(users=[user, bob])
    with pytest.raises(EmailTaken):
        await UpdateProfile(uow, _later(), RECOVERY).execute(
            dto(user), ProfileChanges(name="Renamed", email="BOB@example.com")
        )
    assert not uow.committed
    stored = uow.users.stored(user.id)
    assert (stored.name, stored.email) == (Name("Ann"), Email(ANN))  # the rename rolled back too


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (ProfileChanges(name=""), InvalidName),
        (ProfileChanges(name="   "), InvalidName),
        (ProfileChanges(name="x" * 101), InvalidName),
        (ProfileChanges(name="Ann\nLee"), InvalidName),
        (ProfileChanges(email=""), InvalidEmail),
        (ProfileChanges(email="not-an-email"), InvalidEmail),
        (ProfileChanges(name="Fine", email="bad@"), InvalidEmail),
    ],
)
async def test_update_profile_refuses_invalid_values(
    changes: ProfileChanges, error: type[Exception]
) -> None:
    user = a_user(email=ANN, name="Ann")
    uow = FakeUoW(users=[user])
    with pytest.raises(error):
        await UpdateProfile(uow, _later(), RECOVERY).execute(dto(user), changes)
    assert not uow.committed
    assert uow.users.stored(user.id).name == Name("Ann")


async def test_update_profile_of_a_deleted_user_is_unauthenticated() -> None:
    user = a_user()
    uow = FakeUoW()
    with pytest.raises(InvalidToken):
        await UpdateProfile(uow, _later(), RECOVERY).execute(dto(user), ProfileChanges(name="Bo"))
    assert not uow.committed


async def test_update_profile_locks_the_row_it_changes() -> None:
    user = a_user()
    uow = FakeUoW(users=[user])
    await UpdateProfile(uow, _later(), RECOVERY).execute(dto(user), ProfileChanges(name="Bo"))
    assert uow.users.locked == [user.id]


async def test_update_profile_keeps_role_active_flag_and_password() -> None:
    user = a_user(email=ANN, token_version=4)
    uow = FakeUoW(users=[user])
    updated = await UpdateProfile(uow, _later(), RECOVERY).execute(
        dto(user), ProfileChanges(email="new@example.com")
    )
    assert (updated.role, updated.is_active) == ("user", True)
    stored = uow.users.stored(user.id)
    assert stored.hashed_password == user.hashed_password
    assert stored.token_version == 4


# ChangePassword


class Change:
    """A ChangePassword wired to fakes that the test can inspect."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.uow = FakeUoW(users=[user])
        self.hasher = FakeHasher()
        self.clock = _later()
        self.throttle = FakeThrottle(self.clock)
        self.usecase = ChangePassword(self.uow, self.hasher, self.throttle, self.clock)

    async def __call__(self, current: str = PASSWORD, new: str = NEW_PASSWORD) -> None:
        await self.usecase.execute(dto(self.user), PasswordChange(current, new))

    @property
    def stored(self) -> User:
        return self.uow.users.stored(self.user.id)


async def test_change_password_stores_the_new_hash_and_revokes_tokens() -> None:
    change = Change(a_user(email=ANN, token_version=2))
    await change()
    assert change.stored.hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)
    assert change.stored.token_version == 3
    assert change.stored.updated_at == change.clock.now()
    assert change.uow.committed
    assert change.hasher.verified == [PASSWORD]
    assert change.hasher.hashed == [NEW_PASSWORD]


async def test_change_password_makes_earlier_tokens_stop_working_and_later_ones_work() -> None:
    user = a_user(email=ANN)
    change, tokens = Change(user), FakeTokens()
    sessions = [await a_session(change.uow, user) for _ in range(2)]
    before = [tokens.issue(user, session.id).token for session in sessions]
    await change()
    resolve = ResolveCurrentUser(FakeReader(change.uow), tokens, change.clock)
    for token in before:
        with pytest.raises(InvalidToken):
            await resolve.execute(token)
    assert all(change.uow.sessions.rows[s.id].ended_at == change.clock.now() for s in sessions)

    login = AuthenticateUser(
        change.uow, change.hasher, change.throttle, tokens, change.clock, POLICY
    )
    after = (await login.execute(Credentials(ANN, NEW_PASSWORD))).access.token
    assert (await resolve.execute(after)).user.id == user.id.value


async def test_change_password_refused_ends_no_session() -> None:
    user = a_user(email=ANN)
    change = Change(user)
    session = await a_session(change.uow, user)
    with pytest.raises(WrongPassword):
        await change(current="not-my-password")
    assert change.uow.sessions.rows[session.id].is_live(change.clock.now())


async def test_change_password_refuses_a_wrong_current_password() -> None:
    change = Change(a_user(email=ANN))
    with pytest.raises(WrongPassword):
        await change(current="not-my-password")
    assert change.stored.hashed_password == change.user.hashed_password
    assert change.stored.token_version == 0
    assert not change.uow.committed
    assert change.hasher.hashed == []


@pytest.mark.parametrize("current", ["€" * 25, "k" * 73, "pass\x00word", "\ud800current"])
async def test_change_password_refuses_an_unhashable_current_password_without_hashing(
    current: str,
) -> None:
    change = Change(a_user(email=ANN))
    with pytest.raises(WrongPassword):
        await change(current=current)
    assert change.hasher.calls == 0
    assert not change.uow.committed


async def test_change_password_refuses_the_same_password_before_hashing() -> None:
    user = a_user(email=ANN)
    uow, hasher = FakeUoW(users=[user]), AsyncMock(spec=PasswordHasher)
    with pytest.raises(WeakPassword, match="differ"):
        await ChangePassword(uow, hasher, FakeThrottle(), _later()).execute(
            dto(user), PasswordChange(PASSWORD, PASSWORD)
        )
    assert hasher.mock_calls == []
    assert not uow.committed


@pytest.mark.parametrize("new", [ANN, "ANN@Example.com", " ann@example.com "])
async def test_change_password_refuses_the_email_as_new_password(new: str) -> None:
    change = Change(a_user(email=ANN))
    with pytest.raises(WeakPassword, match="email"):
        await change(new=new)
    assert change.hasher.hashed == []
    assert not change.uow.committed


async def test_change_password_checks_the_email_as_stored_now() -> None:
    user = a_user(email=ANN)
    change = Change(user)
    change.stored.change_email(Email("new@example.com"), T0)  # changed since the token was read
    with pytest.raises(WeakPassword, match="email"):
        await change(new="new@example.com")


@pytest.mark.parametrize(
    "new", ["short", "password", "QWERTY123", "€" * 25, "k" * 73, "ab\x00cdefgh"]
)
async def test_change_password_refuses_a_weak_new_password_before_any_hashing(new: str) -> None:
    user = a_user(email=ANN)
    uow, hasher = FakeUoW(users=[user]), AsyncMock(spec=PasswordHasher)
    with pytest.raises(WeakPassword):
        await ChangePassword(uow, hasher, FakeThrottle(), _later()).execute(
            dto(user), PasswordChange(PASSWORD, new)
        )
    assert hasher.mock_calls == []
    assert not uow.committed


async def test_change_password_accepts_a_72_byte_new_password() -> None:
    change = Change(a_user(email=ANN))
    await change(new="€" * 24)
    assert change.stored.hashed_password == HashedPassword(HASH_PREFIX + "€" * 24)


async def test_change_password_detects_a_concurrent_change() -> None:
    change = Change(a_user(email=ANN))
    rival = HashedPassword(HASH_PREFIX + "rival-password-1")

    def rival_changes_password() -> None:
        if change.hasher.verified:  # while the new hash is computed
            change.stored.change_password(rival, T0)

    change.hasher.on_call = rival_changes_password
    with pytest.raises(WrongPassword):
        await change()
    assert change.stored.hashed_password == rival
    assert change.stored.token_version == 1  # the rival's change only
    assert not change.uow.committed


async def test_change_password_of_a_deleted_user_is_unauthenticated() -> None:
    user = a_user()
    uow, hasher = FakeUoW(), FakeHasher()
    with pytest.raises(InvalidToken):
        await ChangePassword(uow, hasher, FakeThrottle(), _later()).execute(
            dto(user), PasswordChange(PASSWORD, NEW_PASSWORD)
        )
    assert hasher.calls == 0


async def test_change_password_of_a_user_deleted_while_hashing_is_unauthenticated() -> None:
    change = Change(a_user(email=ANN))

    def deleted_meanwhile() -> None:
        if change.hasher.verified:
            change.uow.users.rows.clear()

    change.hasher.on_call = deleted_meanwhile
    with pytest.raises(InvalidToken):
        await change()
    assert not change.uow.committed


async def test_change_password_hashes_outside_any_transaction_and_locks_to_write() -> None:
    change = Change(a_user(email=ANN))
    open_while_hashing: list[bool] = []
    change.hasher.on_call = lambda: open_while_hashing.append(change.uow.is_open)
    await change()
    assert open_while_hashing == [False, False]  # verify, hash
    assert change.uow.users.locked == [change.user.id]


# Guessing the current password counts against the login lockout


async def test_change_password_wrong_guesses_lock_the_change_and_the_login(
    caplog: pytest.LogCaptureFixture,
) -> None:
    change = Change(a_user(email=ANN))
    limit = change.throttle.max_failures
    with caplog.at_level("INFO", logger="app.audit"):
        for _ in range(limit):
            with pytest.raises(WrongPassword):
                await change(current="wrong-guess-1")
    assert [r.getMessage() for r in caplog.records].count("user.password_change_failed") == limit
    verified = len(change.hasher.verified)

    with pytest.raises(TooManyAttempts) as caught:
        await change()  # the right current password, once locked
    assert 1 <= caught.value.retry_after <= change.throttle.lockout_seconds
    assert len(change.hasher.verified) == verified  # not even checked
    assert change.stored.hashed_password == change.user.hashed_password
    assert await change.throttle.reserve(ANN) is not None  # logins are locked too


async def test_change_password_counts_with_the_logins_of_the_same_email() -> None:
    change = Change(a_user(email=ANN))
    for _ in range(change.throttle.max_failures - 1):
        assert await change.throttle.reserve(ANN) is None  # failed logins
    with pytest.raises(WrongPassword):
        await change(current="wrong-guess-1")
    with pytest.raises(TooManyAttempts):
        await change()


async def test_change_password_with_the_right_password_resets_the_count() -> None:
    change = Change(a_user(email=ANN))
    with pytest.raises(WrongPassword):
        await change(current="wrong-guess-1")
    await change()
    assert change.throttle.failure_count(ANN) == 0


async def test_change_password_refuses_a_user_deactivated_in_flight() -> None:
    change = Change(a_user(email=ANN))
    change.stored.deactivate(T0)
    with pytest.raises(InvalidToken):
        await change()
    assert change.hasher.calls == 0
