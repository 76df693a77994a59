"""RegisterUser, CreateAdmin, AuthenticateUser and ResolveCurrentUser on in-memory fakes."""

import asyncio
from unittest.mock import AsyncMock

import pytest

from app.core.dtos import Credentials, RegisterInput
from app.core.entities import User
from app.core.exceptions import (
    EmailTaken,
    HashingBusy,
    InvalidCredentials,
    InvalidEmail,
    InvalidName,
    InvalidToken,
    TooManyAttempts,
    Unauthenticated,
    WeakPassword,
)
from app.core.ports import LoginThrottle, PasswordHasher
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.create_admin import CreateAdmin
from app.core.usecases.register_user import RegisterUser
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.value_objects import ID, Email, HashedPassword, Role
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
)

ANN = "ann@example.com"


def _register(uow: FakeUoW, hasher: PasswordHasher | None = None) -> RegisterUser:
    return RegisterUser(uow, hasher or FakeHasher(), FakeClock(), RECOVERY)


# RegisterUser


async def test_register_stores_an_active_user_with_normalised_fields() -> None:
    uow, hasher = FakeUoW(), FakeHasher()
    created = await RegisterUser(uow, hasher, FakeClock(), RECOVERY).execute(
        RegisterInput("  Ann@Example.COM ", PASSWORD, "  Ann  ")
    )
    assert (created.email, created.name, created.role) == (ANN, "Ann", "user")
    assert created.is_active
    assert created.created_at == created.updated_at == T0
    assert uow.committed
    stored = uow.users.stored(ID(created.id))
    assert stored.email == Email(ANN)
    assert stored.hashed_password == HashedPassword(HASH_PREFIX + PASSWORD)
    assert stored.token_version == 0
    assert hasher.hashed == [PASSWORD]


async def test_register_result_carries_no_password_or_hash() -> None:
    created = await _register(FakeUoW()).execute(RegisterInput(ANN, PASSWORD, "Ann"))
    assert PASSWORD not in repr(created)
    assert not hasattr(created, "hashed_password")


@pytest.mark.parametrize("taken", [ANN, "ANN@EXAMPLE.COM", " Ann@Example.com "])
async def test_register_refuses_a_taken_email_case_insensitively(taken: str) -> None:
    uow, hasher = FakeUoW(users=[a_user(email=ANN)]), FakeHasher()
    with pytest.raises(EmailTaken):
        await _register(uow, hasher).execute(RegisterInput(taken, "other-pass-123", "Ann"))
    assert not uow.committed
    assert hasher.calls == 0  # the cheap check comes before bcrypt
    assert len(uow.users.rows) == 1


async def test_register_reports_a_concurrent_registration_as_email_taken() -> None:
    uow, hasher = FakeUoW(), FakeHasher()
    rival = a_user(email=ANN)

    def rival_registers() -> None:  # another request, while this one hashes
        uow.users.rows[rival.id] = rival

    hasher.on_call = rival_registers
    with pytest.raises(EmailTaken):
        await _register(uow, hasher).execute(RegisterInput(ANN, PASSWORD, "Ann"))
    assert not uow.committed
    assert list(uow.users.rows) == [rival.id]


@pytest.mark.parametrize(
    "password",
    ["short", "password", "Password1", "€" * 25, "k" * 73, "abc\x00defgh", "abcdefg\ud800"],
)
async def test_register_refuses_a_weak_password_before_any_hashing(password: str) -> None:
    uow, hasher = FakeUoW(), AsyncMock(spec=PasswordHasher)
    with pytest.raises(WeakPassword):
        await _register(uow, hasher).execute(RegisterInput(ANN, password, "Ann"))
    assert hasher.mock_calls == []
    assert not uow.committed
    assert uow.users.rows == {}


@pytest.mark.parametrize("password", [ANN, "ANN@example.COM", " ann@example.com "])
async def test_register_refuses_the_email_as_password_before_hashing(password: str) -> None:
    uow, hasher = FakeUoW(), AsyncMock(spec=PasswordHasher)
    with pytest.raises(WeakPassword, match="email"):
        await _register(uow, hasher).execute(RegisterInput(ANN, password, "Ann"))
    assert hasher.mock_calls == []
    assert uow.users.rows == {}


@pytest.mark.parametrize(
    ("email", "name", "error"),
    [
        ("not-an-email", "Ann", InvalidEmail),
        ("a" * 250 + "@x.io", "Ann", InvalidEmail),
        (ANN, "   ", InvalidName),
        (ANN, "x" * 101, InvalidName),
        (ANN, "Ann\x00", InvalidName),
    ],
)
async def test_register_refuses_invalid_email_or_name_before_hashing(
    email: str, name: str, error: type[Exception]
) -> None:
    uow, hasher = FakeUoW(), AsyncMock(spec=PasswordHasher)
    with pytest.raises(error):
        await _register(uow, hasher).execute(RegisterInput(email, PASSWORD, name))
    assert hasher.mock_calls == []
    assert not uow.committed


async def test_register_stores_nothing_when_hashing_is_busy() -> None:
    uow, hasher = FakeUoW(), AsyncMock(spec=PasswordHasher)
    hasher.hash.side_effect = HashingBusy(retry_after=5)
    with pytest.raises(HashingBusy):
        await _register(uow, hasher).execute(RegisterInput(ANN, PASSWORD, "Ann"))
    assert not uow.committed
    assert uow.users.rows == {}


async def test_register_hashes_outside_any_transaction() -> None:
    uow, hasher = FakeUoW(), FakeHasher()
    open_while_hashing: list[bool] = []
    hasher.on_call = lambda: open_while_hashing.append(uow.is_open)
    await _register(uow, hasher).execute(RegisterInput(ANN, PASSWORD, "Ann"))
    assert open_while_hashing == [False]


# CreateAdmin


async def test_create_admin_makes_an_active_admin() -> None:
    uow = FakeUoW()
    created = await CreateAdmin(uow, FakeHasher(), FakeClock(), RECOVERY).execute(
        RegisterInput("Root@Example.com", PASSWORD, "Root")
    )
    assert created.role == "admin"
    assert created.is_admin
    assert created.is_active
    assert uow.users.stored(ID(created.id)).is_active_admin
    assert uow.committed


async def test_create_admin_follows_registration_rules() -> None:
    uow = FakeUoW(users=[a_user(email=ANN)])
    usecase = CreateAdmin(uow, FakeHasher(), FakeClock(), RECOVERY)
    with pytest.raises(EmailTaken):
        await usecase.execute(RegisterInput(ANN.upper(), PASSWORD, "Root"))
    with pytest.raises(WeakPassword):
        await usecase.execute(RegisterInput("root@example.com", "password", "Root"))
    assert not uow.committed


async def test_register_still_makes_plain_users_after_create_admin() -> None:
    uow = FakeUoW()
    await CreateAdmin(uow, FakeHasher(), FakeClock(), RECOVERY).execute(
        RegisterInput(ANN, PASSWORD, "A")
    )
    user = await _register(uow).execute(RegisterInput("bob@example.com", PASSWORD, "Bob"))
    assert user.role == Role.USER.value


# AuthenticateUser


class Login:
    """An AuthenticateUser wired to fakes that the test can inspect."""

    def __init__(self, *users: User, needs_rehash: bool = False) -> None:
        self.clock = FakeClock()
        self.uow = FakeUoW(users=users)
        self.hasher = FakeHasher(needs_rehash=needs_rehash, scheme="stronger")
        self.throttle = FakeThrottle(self.clock)
        self.tokens = FakeTokens()
        self.usecase = self.build(self.hasher)

    def build(self, hasher: PasswordHasher) -> AuthenticateUser:
        return AuthenticateUser(self.uow, hasher, self.throttle, self.tokens, self.clock, POLICY)

    async def __call__(self, username: str = ANN, password: str = PASSWORD) -> str:
        """The access token of the new session."""
        pair = await self.usecase.execute(Credentials(username, password))
        return pair.access.token


def _authenticate(
    uow: FakeUoW, hasher: PasswordHasher, throttle: LoginThrottle
) -> AuthenticateUser:
    return AuthenticateUser(uow, hasher, throttle, FakeTokens(), FakeClock(), POLICY)


async def test_authenticate_issues_a_token_pair_for_the_right_password() -> None:
    user = a_user(email=ANN)
    login = Login(user)
    pair = await login.usecase.execute(Credentials(ANN, PASSWORD))
    claims = login.tokens.read(pair.access.token)
    assert claims.subject == user.id
    [session] = login.uow.sessions.rows.values()
    assert claims.session_id == session.id
    assert session.user_id == user.id
    assert pair.refresh_token
    assert pair.access.expires_in == login.tokens.expires_in
    assert pair.access.token_type == "bearer"
    assert login.hasher.verified == [PASSWORD]
    assert login.hasher.dummies == []


async def test_authenticate_normalises_the_username() -> None:
    user = a_user(email=ANN)
    login = Login(user)
    token = await login("  Ann@EXAMPLE.com ")
    assert login.tokens.read(token).subject == user.id
    assert login.throttle.resets == [ANN]


async def test_authenticate_unknown_email_verifies_the_dummy_hash_and_records_a_failure() -> None:
    login = Login(a_user(email=ANN))
    with pytest.raises(InvalidCredentials):
        await login(" Nobody@Example.com", PASSWORD)
    assert login.hasher.dummies == [PASSWORD]
    assert login.hasher.verified == []
    assert login.throttle.failure_count("nobody@example.com") == 1
    assert login.tokens.issued_to == []


async def test_authenticate_wrong_password_records_a_failure() -> None:
    login = Login(a_user(email=ANN))
    with pytest.raises(InvalidCredentials):
        await login("ANN@example.com", "wrong-password-1")
    assert login.hasher.verified == ["wrong-password-1"]
    assert login.throttle.failure_count(ANN) == 1
    assert login.tokens.issued_to == []


async def test_authenticate_unknown_email_and_wrong_password_fail_alike() -> None:
    login = Login(a_user(email=ANN))
    with pytest.raises(InvalidCredentials) as unknown:
        await login("bob@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials) as wrong:
        await login(ANN, "wrong-password-1")
    assert str(unknown.value) == str(wrong.value)
    assert login.hasher.calls == 2  # one slow hash operation each


async def test_authenticate_refuses_an_inactive_user_with_the_right_password() -> None:
    login = Login(a_user(email=ANN, is_active=False))
    with pytest.raises(InvalidCredentials):
        await login()
    assert login.throttle.failure_count(ANN) == 1
    assert login.tokens.issued_to == []


@pytest.mark.parametrize(
    "password", ["€" * 25, "k" * 73, "k" * 100_000, "pass\x00word", "\ud800pw"]
)
async def test_authenticate_refuses_unhashable_passwords_without_hashing(password: str) -> None:
    login = Login(a_user(email=ANN))
    for username in (ANN, "nobody@example.com"):
        with pytest.raises(InvalidCredentials):
            await login(username, password)
        assert login.throttle.failure_count(username) == 1
    assert login.hasher.calls == 0


async def test_authenticate_does_not_truncate_a_long_password() -> None:
    login = Login(a_user(email=ANN, password="k" * 72))
    assert await login(ANN, "k" * 72)
    with pytest.raises(InvalidCredentials):
        await login(ANN, "k" * 73)


@pytest.mark.parametrize("username", ["", "   ", "not-an-email", "ann@", "\x00", "a" * 10_000])
async def test_authenticate_refuses_a_username_that_is_no_email_without_hashing(
    username: str,
) -> None:
    login = Login(a_user(email=ANN))
    with pytest.raises(InvalidCredentials):
        await login(username, PASSWORD)
    assert login.hasher.calls == 0


async def test_authenticate_lockout_refuses_before_any_hashing_or_lookup() -> None:
    uow, hasher = FakeUoW(users=[a_user(email=ANN)]), AsyncMock(spec=PasswordHasher)
    throttle = AsyncMock(spec=LoginThrottle)
    throttle.reserve.return_value = 42
    usecase = _authenticate(uow, hasher, throttle)
    with pytest.raises(TooManyAttempts) as caught:
        await usecase.execute(Credentials(" ANN@example.com", PASSWORD))
    assert caught.value.retry_after == 42
    throttle.reserve.assert_awaited_once_with(ANN)
    throttle.release.assert_not_awaited()
    throttle.reset.assert_not_awaited()
    assert hasher.mock_calls == []
    assert uow.sessions.rows == {}


async def test_authenticate_locks_out_after_max_failures_even_the_right_password() -> None:
    login = Login(a_user(email=ANN))
    for _ in range(login.throttle.max_failures):
        with pytest.raises(InvalidCredentials):
            await login(ANN, "wrong-password-1")
    calls = login.hasher.calls
    with pytest.raises(TooManyAttempts) as caught:
        await login(ANN, PASSWORD)
    assert 1 <= caught.value.retry_after <= login.throttle.lockout_seconds
    assert login.hasher.calls == calls
    login.clock.advance(login.throttle.lockout_seconds + 1)
    assert await login(ANN, PASSWORD)


async def test_authenticate_locks_out_unknown_usernames_too() -> None:
    login = Login()
    for _ in range(login.throttle.max_failures):
        with pytest.raises(InvalidCredentials):
            await login("ghost@example.com")
    with pytest.raises(TooManyAttempts):
        await login("GHOST@example.com")


async def test_authenticate_success_resets_the_failure_count() -> None:
    login = Login(a_user(email=ANN))
    for _ in range(login.throttle.max_failures - 1):
        with pytest.raises(InvalidCredentials):
            await login(ANN, "wrong-password-1")
    assert await login(ANN, PASSWORD)
    assert login.throttle.failure_count(ANN) == 0
    for _ in range(login.throttle.max_failures - 1):
        with pytest.raises(InvalidCredentials):
            await login(ANN, "wrong-password-1")
    assert await login(ANN, PASSWORD)


async def test_authenticate_counts_failures_per_username() -> None:
    login = Login(a_user(email=ANN), a_user(email="bob@example.com"))
    for _ in range(login.throttle.max_failures):
        with pytest.raises(InvalidCredentials):
            await login(ANN, "wrong-password-1")
    assert await login("bob@example.com", PASSWORD)


async def test_authenticate_rehashes_a_weak_hash_on_success() -> None:
    user = a_user(email=ANN, token_version=3)
    login = Login(user, needs_rehash=True)
    old, new = user.hashed_password, HashedPassword("stronger:" + PASSWORD)
    assert await login()
    assert login.hasher.hashed == [PASSWORD]
    assert login.uow.users.replaced == [(user.id, old, new)]
    assert login.uow.committed
    stored = login.uow.users.stored(user.id)
    assert stored.hashed_password == new
    assert stored.token_version == 3  # a rehash is not a password change
    assert stored.updated_at == user.updated_at


async def test_authenticate_does_not_rehash_a_current_hash() -> None:
    user = a_user(email=ANN)
    login = Login(user, needs_rehash=False)
    assert await login()
    assert login.hasher.hashed == []
    assert login.uow.users.replaced == []
    assert login.uow.commits == 1  # the session's only
    assert login.uow.users.stored(user.id).hashed_password == user.hashed_password


async def test_authenticate_does_not_rehash_after_a_failure() -> None:
    login = Login(a_user(email=ANN), needs_rehash=True)
    with pytest.raises(InvalidCredentials):
        await login(ANN, "wrong-password-1")
    assert login.hasher.hashed == []
    assert login.uow.users.replaced == []


async def test_authenticate_rehash_does_not_overwrite_a_concurrent_password_change() -> None:
    user = a_user(email=ANN)
    login = Login(user, needs_rehash=True)
    newer = HashedPassword(HASH_PREFIX + "changed-meanwhile-1")

    def concurrent_change() -> None:
        if login.hasher.verified:  # during the rehash, after the verify
            login.uow.users.stored(user.id).change_password(newer, T0)

    login.hasher.on_call = concurrent_change
    with pytest.raises(InvalidCredentials):  # the password it was checked against is gone
        await login()
    assert login.uow.users.replaced[0][1] == user.hashed_password
    assert login.uow.users.stored(user.id).hashed_password == newer
    assert login.uow.sessions.rows == {}


async def test_authenticate_skips_the_rehash_when_the_old_password_breaks_todays_policy() -> None:
    login = Login(a_user(email=ANN, password="password"), needs_rehash=True)
    assert await login(ANN, "password")
    assert login.hasher.hashed == []
    assert login.uow.users.replaced == []


async def test_authenticate_holds_no_transaction_while_hashing() -> None:
    login = Login(a_user(email=ANN), needs_rehash=True)
    open_while_hashing: list[bool] = []
    login.hasher.on_call = lambda: open_while_hashing.append(login.uow.is_open)
    assert await login()
    with pytest.raises(InvalidCredentials):
        await login("nobody@example.com")
    assert open_while_hashing == [False, False, False]  # verify, rehash, dummy


async def test_authenticate_hashing_busy_is_not_counted_as_a_failure() -> None:
    throttle, hasher = FakeThrottle(), AsyncMock(spec=PasswordHasher)
    hasher.verify.side_effect = HashingBusy(retry_after=5)
    usecase = _authenticate(FakeUoW(users=[a_user(email=ANN)]), hasher, throttle)
    with pytest.raises(HashingBusy):
        await usecase.execute(Credentials(ANN, PASSWORD))
    assert throttle.failure_count(ANN) == 0


# ResolveCurrentUser


def _resolve(uow: FakeUoW, tokens: FakeTokens) -> ResolveCurrentUser:
    return ResolveCurrentUser(FakeReader(uow), tokens, FakeClock())


async def test_resolve_returns_the_user_as_stored_now() -> None:
    user = a_user(email=ANN)
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    session = await a_session(uow, user)
    token = tokens.issue(user, session.id).token
    uow.users.stored(user.id).change_role(Role.ADMIN, T0)  # promoted after the token was issued
    resolved = await _resolve(uow, tokens).execute(token)
    assert resolved.user.id == user.id.value
    assert resolved.user.email == ANN
    assert resolved.user.is_admin
    assert resolved.session_id == session.id


@pytest.mark.parametrize("token", [None, ""])
async def test_resolve_refuses_a_request_without_a_token(token: str | None) -> None:
    with pytest.raises(Unauthenticated):
        await _resolve(FakeUoW(users=[a_user()]), FakeTokens()).execute(token)


async def test_resolve_refuses_an_unreadable_token() -> None:
    user = a_user()
    uow = FakeUoW(users=[user])
    await a_session(uow, user)
    with pytest.raises(InvalidToken):
        await _resolve(uow, FakeTokens()).execute("forged")


async def test_resolve_refuses_an_unknown_subject() -> None:
    stranger = a_user()
    uow, tokens = FakeUoW(users=[a_user(email="bob@example.com")]), FakeTokens()
    session = await a_session(uow, stranger)  # a session row whose user is not stored
    with pytest.raises(InvalidToken):
        await _resolve(uow, tokens).execute(tokens.issue(stranger, session.id).token)


@pytest.mark.parametrize("subject", ["", "admin", "1", "not-a-uuid", "' OR 1=1 --", "\x00"])
async def test_resolve_refuses_a_subject_that_is_not_a_uuid(subject: str) -> None:
    user = a_user()
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    session = await a_session(uow, user)  # live: only the subject is wrong
    with pytest.raises(InvalidToken):
        await _resolve(uow, tokens).execute(tokens.forge(subject, 0, str(session.id)))


async def test_resolve_refuses_a_deleted_user() -> None:
    user = a_user()
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    token = tokens.issue(user, (await a_session(uow, user)).id).token
    await uow.users.delete(user.id)
    with pytest.raises(InvalidToken):
        await _resolve(uow, tokens).execute(token)


async def test_resolve_refuses_an_inactive_user() -> None:
    user = a_user()
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    token = tokens.issue(user, (await a_session(uow, user)).id).token
    uow.users.stored(user.id).is_active = False  # token version and session left as they were
    with pytest.raises(InvalidToken):
        await _resolve(uow, tokens).execute(token)


@pytest.mark.parametrize("version", [0, 1, 3, -1])
async def test_resolve_refuses_a_token_of_another_version(version: int) -> None:
    user = a_user(token_version=2)
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    session = await a_session(uow, user)
    token = tokens.forge(str(user.id), version, str(session.id))
    with pytest.raises(InvalidToken):
        await _resolve(uow, tokens).execute(token)


async def test_resolve_accepts_a_token_of_the_current_version() -> None:
    user = a_user(token_version=2)
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    session = await a_session(uow, user)
    resolved = await _resolve(uow, tokens).execute(tokens.forge(str(user.id), 2, str(session.id)))
    assert resolved.user.id == user.id.value
    assert resolved.session_id == session.id


class GatedHasher(FakeHasher):
    """Verifications wait at a gate; `checking` counts those waiting there."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.checking = 0

    async def verify(self, candidate: str, hashed: HashedPassword) -> bool:
        self.checking += 1
        await self.gate.wait()
        self.checking -= 1
        return await super().verify(candidate, hashed)


def gated(login: Login) -> GatedHasher:
    login.hasher = hasher = GatedHasher()
    login.usecase = login.build(hasher)
    return hasher


async def test_authenticate_a_burst_checks_at_most_the_limit_then_refuses_the_right_one() -> None:
    login = Login(a_user(email=ANN))
    hasher = gated(login)
    burst = [asyncio.create_task(login(ANN, "wrong-password-1")) for _ in range(50)]
    burst.append(asyncio.create_task(login(ANN, PASSWORD)))  # the right one, last
    for _ in range(5):
        await asyncio.sleep(0)
    assert hasher.checking == 1  # one attempt per username at a time

    hasher.gate.set()
    outcomes = [type(o) for o in await asyncio.gather(*burst, return_exceptions=True)]

    limit = login.throttle.max_failures
    assert outcomes[:limit] == [InvalidCredentials] * limit
    assert outcomes[limit:] == [TooManyAttempts] * (51 - limit)
    assert hasher.verified == ["wrong-password-1"] * limit
    assert login.tokens.issued_to == []


async def test_authenticate_simultaneous_right_logins_do_not_use_up_the_limit() -> None:
    login = Login(a_user(email=ANN))
    hasher = gated(login)
    logins = [asyncio.create_task(login()) for _ in range(3 * login.throttle.max_failures)]
    await asyncio.sleep(0)
    hasher.gate.set()

    assert all(await asyncio.gather(*logins))
    assert login.throttle.failure_count(ANN) == 0


async def test_authenticate_gives_back_an_attempt_that_found_no_hashing_capacity() -> None:
    throttle = FakeThrottle(max_failures=1)
    hasher = AsyncMock(spec=PasswordHasher)
    hasher.verify.side_effect = HashingBusy(retry_after=5)
    usecase = _authenticate(FakeUoW(users=[a_user(email=ANN)]), hasher, throttle)
    for _ in range(3):  # never checked, so never locked
        with pytest.raises(HashingBusy):
            await usecase.execute(Credentials(ANN, PASSWORD))
    assert await throttle.reserve(ANN) is None
