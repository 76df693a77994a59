"""Password recovery, email verification and the account mails, on in-memory fakes:
RequestAccountMail, SendRequestedMail, ResetPassword, VerifyEmail, the mails
that RegisterUser, CreateAdmin, UpdateProfile and AdminUpdateUser queue,
AuthenticateUser's `require_verified_email`, and app/core/messages."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from unittest.mock import AsyncMock

import pytest

from app.core import messages
from app.core.dtos import AdminChanges, Credentials, EmailMessage, ProfileChanges, RegisterInput
from app.core.entities import OneTimeToken, TokenPurpose, User
from app.core.exceptions import (
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    InvalidOneTimeToken,
    TooManyRequests,
    WeakPassword,
)
from app.core.usecases.admin_update_user import AdminUpdateUser
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.create_admin import CreateAdmin
from app.core.usecases.register_user import RegisterUser
from app.core.usecases.request_account_mail import RequestAccountMail
from app.core.usecases.reset_password import ResetPassword
from app.core.usecases.send_requested_mail import SendRequestedMail
from app.core.usecases.update_profile import UpdateProfile
from app.core.usecases.verify_email import VerifyEmail
from app.core.value_objects import Email, HashedPassword, Role
from app.core.value_objects.opaque_token import OpaqueToken
from tests.unit.fakes import (
    HASH_PREFIX,
    PASSWORD,
    POLICY,
    RECOVERY,
    T0,
    FakeClock,
    FakeHasher,
    FakeLimiter,
    FakeThrottle,
    FakeTokens,
    FakeUoW,
    a_session,
    a_user,
    an_admin,
    dto,
)

ANN = "ann@example.com"
CLIENT = "203.0.113.7"
NEW_PASSWORD = "brand-new-secret-7"
RESET, VERIFICATION = TokenPurpose.PASSWORD_RESET, TokenPurpose.EMAIL_VERIFICATION
AFTER_COOLDOWN = RECOVERY.cooldown + timedelta(seconds=1)


def _link(message: EmailMessage) -> str:
    links = [word for word in message.text.split() if word.startswith("https://")]
    assert len(links) == 1, message.text
    return links[0]


def _token(message: EmailMessage) -> str:
    return _link(message).partition("#token=")[2]


class Recovery:
    """The recovery use cases wired to one set of fakes that the test can inspect."""

    def __init__(self, *users: User, limit: int = 1000) -> None:
        self.clock = FakeClock()
        self.uow = FakeUoW(users=users)
        self.limiter = FakeLimiter(limit)
        self.hasher = FakeHasher()
        self.throttle = FakeThrottle(self.clock)

    def stored(self, user: User) -> User:
        return self.uow.users.stored(user.id)

    @property
    def mail(self) -> list[EmailMessage]:
        return self.uow.outbox.rows

    async def request(self, purpose: TokenPurpose, email: str = ANN, client: str = CLIENT) -> None:
        await RequestAccountMail(self.uow, self.limiter, self.clock).execute(purpose, email, client)

    async def send(self) -> bool:
        return await SendRequestedMail(self.uow, self.clock, RECOVERY).execute()

    async def mailed_token(self, purpose: TokenPurpose, email: str = ANN) -> str:
        """Asks for a mail, has it queued, and reads the token off its link."""
        queued = len(self.mail)
        await self.request(purpose, email)
        assert await self.send()
        assert len(self.mail) == queued + 1, "no mail was queued"
        return _token(self.mail[-1])

    async def reset(
        self, token: str, new_password: str = NEW_PASSWORD, client: str = CLIENT
    ) -> None:
        usecase = ResetPassword(self.uow, self.hasher, self.throttle, self.limiter, self.clock)
        await usecase.execute(token, new_password, client)

    async def verify(self, token: str, client: str = CLIENT) -> None:
        await VerifyEmail(self.uow, self.limiter, self.clock).execute(token, client)

    def token_row(self, token: str) -> OneTimeToken:
        return self.uow.one_time_tokens.rows[OpaqueToken(token).digest]


# RequestAccountMail: records, and nothing else


def _touched(uow: FakeUoW) -> object:
    """Everything a request could have written, and how often it committed."""
    return (
        uow.mail_requests.rows,
        uow.mail_requests.cooldowns,
        uow.one_time_tokens.rows,
        uow.outbox.rows,
        uow.sessions.rows,
        uow.users.locked,
        uow.commits,
    )


@pytest.mark.parametrize("purpose", list(TokenPurpose))
@pytest.mark.parametrize(
    "stored",
    [
        [a_user(email=ANN)],
        [a_user(email=ANN, email_verified=True)],
        [a_user(email=ANN, is_active=False)],
        [a_user(email="bob@example.com")],
        [],
    ],
    ids=["unverified", "verified", "inactive", "someone-else", "nobody"],
)
async def test_request_records_the_request_alike_whoever_the_address_belongs_to(
    purpose: TokenPurpose, stored: list[User], monkeypatch: pytest.MonkeyPatch
) -> None:
    known, other = Recovery(a_user(email=ANN)), Recovery(*stored)
    for recovery in (known, other):
        lookup = AsyncMock(side_effect=AssertionError("the request looked the address up"))
        monkeypatch.setattr(recovery.uow.users, "get_by_email", lookup)
        monkeypatch.setattr(recovery.uow.users, "get_by_id", lookup)
        await recovery.request(purpose, " Ann@Example.COM ")
    assert known.uow.mail_requests.rows == [(purpose, Email(ANN), T0)]
    assert _touched(known.uow) == _touched(other.uow)
    assert known.mail == []
    assert known.uow.one_time_tokens.rows == {}
    assert known.uow.committed


@pytest.mark.parametrize("email", ["", "   ", "not-an-email", "ann@", "a" * 250 + "@x.io"])
async def test_request_refuses_a_malformed_email_and_records_nothing(email: str) -> None:
    recovery = Recovery(a_user(email=ANN))
    with pytest.raises(InvalidEmail):
        await recovery.request(RESET, email)
    assert recovery.uow.mail_requests.rows == []
    assert not recovery.uow.committed


async def test_request_over_the_client_limit_is_refused_and_records_nothing() -> None:
    recovery = Recovery(a_user(email=ANN), limit=2)
    recovery.limiter.retry_after = 1234
    await recovery.request(RESET)
    await recovery.request(VERIFICATION)  # the endpoints share the limit
    with pytest.raises(TooManyRequests) as refused:
        await recovery.request(RESET)
    assert refused.value.retry_after == 1234
    assert [r[0] for r in recovery.uow.mail_requests.rows] == [RESET, VERIFICATION]
    await recovery.request(RESET, client="198.51.100.1")  # counted per client
    assert len(recovery.uow.mail_requests.rows) == 3


# SendRequestedMail: a request becomes a mail, or nothing


async def test_send_without_a_request_returns_false_and_does_nothing() -> None:
    recovery = Recovery(a_user(email=ANN))
    assert await recovery.send() is False
    assert recovery.mail == []
    assert not recovery.uow.committed


@pytest.mark.parametrize("purpose", list(TokenPurpose))
@pytest.mark.parametrize(
    "stored",
    [[], [a_user(email="bob@example.com")], [a_user(email=ANN, is_active=False)]],
    ids=["nobody", "someone-else", "inactive"],
)
async def test_send_for_no_active_account_mails_nothing_and_consumes_the_request(
    purpose: TokenPurpose, stored: list[User]
) -> None:
    recovery = Recovery(*stored)
    await recovery.request(purpose)
    assert await recovery.send() is True
    assert recovery.uow.mail_requests.rows == []
    assert recovery.uow.one_time_tokens.rows == {}
    assert recovery.mail == []
    assert recovery.uow.mail_requests.cooldowns == {}
    assert await recovery.send() is False  # consumed: not taken twice


async def test_send_verification_to_a_verified_user_mails_nothing() -> None:
    user = a_user(email=ANN, email_verified=True)
    recovery = Recovery(user)
    await recovery.request(VERIFICATION)
    assert await recovery.send() is True
    assert recovery.uow.mail_requests.rows == []
    assert recovery.uow.one_time_tokens.rows == {}
    assert recovery.mail == []
    # Nothing was sent, so the address's cooldown has not started: a reset goes out.
    assert await recovery.mailed_token(RESET)


async def test_send_reset_to_a_verified_user_mails_a_link() -> None:
    recovery = Recovery(a_user(email=ANN, email_verified=True))
    assert await recovery.mailed_token(RESET)


@pytest.mark.parametrize(("first", "second"), [(RESET, RESET), (RESET, VERIFICATION)])
async def test_send_within_the_cooldown_drops_the_request_and_after_it_mails(
    first: TokenPurpose, second: TokenPurpose
) -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    await recovery.mailed_token(first)
    recovery.clock.advance(RECOVERY.cooldown.total_seconds() - 1)
    await recovery.request(second)
    assert await recovery.send() is True
    assert len(recovery.mail) == 1  # dropped, silently
    assert len(recovery.uow.one_time_tokens.of(user.id)) == 1
    assert recovery.uow.mail_requests.rows == []

    recovery.clock.advance(1)  # the cooldown is over
    await recovery.mailed_token(second)
    assert len(recovery.mail) == 2


async def test_send_cooldown_is_per_address() -> None:
    recovery = Recovery(a_user(email=ANN), a_user(email="bob@example.com"))
    await recovery.mailed_token(RESET)
    await recovery.mailed_token(RESET, "bob@example.com")
    assert [m.to for m in recovery.mail] == [ANN, "bob@example.com"]


async def test_send_takes_the_oldest_request_first() -> None:
    recovery = Recovery(a_user(email=ANN), a_user(email="bob@example.com"))
    await recovery.request(RESET, "bob@example.com")
    recovery.clock.advance(1)
    await recovery.request(VERIFICATION, ANN)
    assert await recovery.send()
    assert [(m.to, m.subject) for m in recovery.mail] == [
        ("bob@example.com", "Reset your password")
    ]
    assert await recovery.send()
    assert recovery.mail[-1].to == ANN
    assert recovery.mail[-1].subject == "Confirm your email address"


async def test_a_new_reset_token_voids_the_older_one() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    older = await recovery.mailed_token(RESET)
    recovery.clock.advance(AFTER_COOLDOWN.total_seconds())
    newer = await recovery.mailed_token(RESET)
    assert recovery.token_row(older).voided_at == recovery.clock.now()
    assert recovery.token_row(newer).voided_at is None

    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(older)
    assert recovery.hasher.calls == 0  # refused before any bcrypt round
    assert recovery.stored(user).hashed_password == user.hashed_password
    await recovery.reset(newer)
    assert recovery.stored(user).hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)


async def test_a_new_verification_token_leaves_a_reset_token_usable() -> None:
    recovery = Recovery(a_user(email=ANN))
    reset = await recovery.mailed_token(RESET)
    recovery.clock.advance(AFTER_COOLDOWN.total_seconds())
    await recovery.mailed_token(VERIFICATION)
    assert recovery.token_row(reset).voided_at is None  # voids its own purpose only
    await recovery.reset(reset)


@pytest.mark.parametrize(
    ("purpose", "page", "ttl", "subject"),
    [
        (RESET, "reset-password", RECOVERY.reset_ttl, "Reset your password"),
        (VERIFICATION, "verify-email", RECOVERY.verification_ttl, "Confirm your email address"),
    ],
)
async def test_send_mails_a_link_whose_token_is_stored_only_as_its_digest(
    purpose: TokenPurpose, page: str, ttl: timedelta, subject: str
) -> None:
    user = a_user(email=ANN, name="Ann")
    recovery = Recovery(user)
    token = await recovery.mailed_token(purpose)
    [message] = recovery.mail
    assert (message.to, message.to_name, message.subject) == (ANN, "Ann", subject)
    assert _link(message) == f"https://app.example/{page}#token={token}"
    assert len(token) >= 43  # 32 random bytes, URL-safe base64

    [stored] = recovery.uow.one_time_tokens.of(user.id)
    assert stored.digest == OpaqueToken(token).digest != token
    assert token not in repr(recovery.uow.one_time_tokens.rows)
    assert (stored.purpose, stored.user_id, stored.email) == (purpose, user.id, ANN)
    assert (stored.created_at, stored.expires_at) == (T0, T0 + ttl)
    assert (stored.used_at, stored.voided_at) == (None, None)
    assert recovery.uow.mail_requests.cooldowns == {ANN: T0}


# ResetPassword


async def test_reset_changes_the_password_and_ends_everything_the_old_one_opened() -> None:
    user = a_user(email=ANN, token_version=2)
    recovery = Recovery(user)
    sessions = [await a_session(recovery.uow, user) for _ in range(2)]
    verification = await recovery.mailed_token(VERIFICATION)
    recovery.clock.advance(AFTER_COOLDOWN.total_seconds())
    token = await recovery.mailed_token(RESET)
    for _ in range(recovery.throttle.max_failures):
        await recovery.throttle.reserve(ANN)  # someone guessed at the login meanwhile
    recovery.clock.advance(60)
    now = recovery.clock.now()

    await recovery.reset(token)

    stored = recovery.stored(user)
    assert stored.hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)
    assert recovery.hasher.hashed == [NEW_PASSWORD]
    assert stored.token_version == 3
    assert stored.email_verified  # the link reached the address
    assert all(recovery.uow.sessions.rows[s.id].ended_at == now for s in sessions)
    assert recovery.token_row(token).used_at == now
    assert recovery.token_row(verification).voided_at == now
    assert recovery.mail[-1].subject == "Your password was changed"
    assert recovery.mail[-1].to == ANN
    assert recovery.throttle.resets == [ANN]
    assert await recovery.throttle.reserve(ANN) is None  # the lockout is over
    assert recovery.uow.committed


async def test_reset_lets_the_user_log_in_with_the_new_password_only() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    await recovery.reset(await recovery.mailed_token(RESET))
    login = AuthenticateUser(
        recovery.uow, recovery.hasher, recovery.throttle, FakeTokens(), recovery.clock, POLICY
    )
    with pytest.raises(InvalidCredentials):
        await login.execute(Credentials(ANN, PASSWORD))
    assert await login.execute(Credentials(ANN, NEW_PASSWORD))


async def test_reset_token_works_once() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    await recovery.reset(token)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token, "yet-another-secret-8")
    assert recovery.stored(user).hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)
    assert recovery.hasher.hashed == [NEW_PASSWORD]


async def test_reset_token_expires_after_its_lifetime() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    recovery.clock.advance(RECOVERY.reset_ttl.total_seconds())
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.hasher.calls == 0
    assert recovery.stored(user).hashed_password == user.hashed_password
    assert recovery.token_row(token).used_at is None


async def test_reset_token_works_until_its_last_second() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    recovery.clock.advance(RECOVERY.reset_ttl.total_seconds() - 1)
    await recovery.reset(token)
    assert recovery.stored(user).hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)


async def test_reset_token_is_voided_by_an_email_change() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    await UpdateProfile(recovery.uow, recovery.clock, RECOVERY).execute(
        dto(user), ProfileChanges(email="new@example.com")
    )
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.stored(user).hashed_password == user.hashed_password


async def test_reset_refuses_a_token_sent_to_an_address_the_user_no_longer_has() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    # Changed without voiding the token: the address the token went to still decides.
    recovery.stored(user).change_email(Email("new@example.com"), T0)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)


async def test_reset_refuses_a_verification_token() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.stored(user).hashed_password == user.hashed_password
    assert recovery.token_row(token).used_at is None


@pytest.mark.parametrize("token", ["", "nope", "x" * 43, "\ud800", "a" * 10_000])
async def test_reset_refuses_an_unknown_token(token: str) -> None:
    recovery = Recovery(a_user(email=ANN))
    await recovery.mailed_token(RESET)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.hasher.calls == 0


@pytest.mark.parametrize("weak", ["short", "password", "k" * 73, "abc\x00defgh"])
async def test_reset_refuses_a_weak_password_and_leaves_the_token_unspent(weak: str) -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    with pytest.raises(WeakPassword):
        await recovery.reset(token, weak)
    assert recovery.hasher.calls == 0
    assert recovery.token_row(token).used_at is None
    assert recovery.stored(user).hashed_password == user.hashed_password
    await recovery.reset(token)  # a better one next
    assert recovery.stored(user).hashed_password == HashedPassword(HASH_PREFIX + NEW_PASSWORD)


@pytest.mark.parametrize("password", [ANN, "ANN@Example.com", " ann@example.com "])
async def test_reset_refuses_the_email_as_password(password: str) -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    with pytest.raises(WeakPassword, match="email"):
        await recovery.reset(token, password)
    assert recovery.hasher.calls == 0
    assert recovery.token_row(token).used_at is None


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
async def test_reset_refuses_the_token_of_a_user_deactivated_or_deleted_since(how: str) -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    if how == "deactivated":
        recovery.stored(user).deactivate(T0)
    else:
        await recovery.uow.users.delete(user.id)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.hasher.calls == 0


async def test_reset_refuses_a_user_deactivated_while_hashing() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    recovery.hasher.on_call = lambda: recovery.stored(user).deactivate(T0)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.reset(token)
    assert recovery.stored(user).hashed_password == user.hashed_password
    assert recovery.token_row(token).used_at is None


async def test_reset_hashes_outside_any_transaction_and_locks_to_write() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    open_while_hashing: list[bool] = []
    recovery.hasher.on_call = lambda: open_while_hashing.append(recovery.uow.is_open)
    await recovery.reset(token)
    assert open_while_hashing == [False]
    assert recovery.uow.users.locked == [user.id]


async def test_reset_over_the_client_limit_is_refused_before_anything() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    recovery.limiter.limit = recovery.limiter.hits[CLIENT]  # the request used up the limit
    with pytest.raises(TooManyRequests) as refused:
        await recovery.reset(token)
    assert refused.value.retry_after == recovery.limiter.retry_after
    assert recovery.hasher.calls == 0
    assert recovery.token_row(token).used_at is None
    await recovery.reset(token, client="198.51.100.1")  # another client is not limited


# VerifyEmail


async def test_verify_marks_the_email_verified() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    recovery.clock.advance(60)
    await recovery.verify(token)
    stored = recovery.stored(user)
    assert stored.email_verified
    assert stored.updated_at == recovery.clock.now()
    assert stored.token_version == user.token_version  # no session ends
    assert recovery.token_row(token).used_at == recovery.clock.now()
    assert recovery.uow.committed


async def test_verify_again_with_the_same_token_is_no_error_and_changes_nothing() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    await recovery.verify(token)
    verified_at, commits = recovery.clock.now(), recovery.uow.commits
    recovery.clock.advance(60)
    await recovery.verify(token)
    assert recovery.stored(user).email_verified
    assert recovery.stored(user).updated_at == verified_at
    assert recovery.token_row(token).used_at == verified_at
    assert recovery.uow.commits == commits


async def test_verify_refuses_a_token_sent_to_the_old_address_after_an_email_change() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    # Changed without voiding the token: the address the token went to decides.
    recovery.stored(user).change_email(Email("new@example.com"), T0)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified
    assert recovery.token_row(token).used_at is None


async def test_verify_again_after_an_email_change_does_not_verify_the_new_address() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    await recovery.verify(token)
    await UpdateProfile(recovery.uow, recovery.clock, RECOVERY).execute(
        dto(user), ProfileChanges(email="new@example.com")
    )
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified
    await recovery.verify(_token(recovery.mail[-1]))  # the new address's own link
    assert recovery.stored(user).email_verified
    with pytest.raises(InvalidOneTimeToken):  # verified, but not by this token's address
        await recovery.verify(token)


async def test_verify_token_expires_after_its_lifetime() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    recovery.clock.advance(RECOVERY.verification_ttl.total_seconds())
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified


async def test_verify_refuses_a_reset_token() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(RESET)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified
    assert recovery.token_row(token).used_at is None


async def test_verify_refuses_an_inactive_user() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    recovery.stored(user).deactivate(T0)
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified


@pytest.mark.parametrize("token", ["", "nope", "\ud800"])
async def test_verify_refuses_an_unknown_token(token: str) -> None:
    recovery = Recovery(a_user(email=ANN))
    with pytest.raises(InvalidOneTimeToken):
        await recovery.verify(token)


async def test_verify_over_the_client_limit_is_refused() -> None:
    user = a_user(email=ANN)
    recovery = Recovery(user)
    token = await recovery.mailed_token(VERIFICATION)
    recovery.limiter.limit = recovery.limiter.hits[CLIENT]
    with pytest.raises(TooManyRequests):
        await recovery.verify(token)
    assert not recovery.stored(user).email_verified
    assert recovery.token_row(token).used_at is None


# The mails other use cases queue


async def test_register_queues_one_verification_mail_whose_token_verifies_the_user() -> None:
    recovery = Recovery()
    created = await RegisterUser(recovery.uow, FakeHasher(), recovery.clock, RECOVERY).execute(
        RegisterInput(" Ann@Example.com", PASSWORD, "Ann")
    )
    assert not created.email_verified
    [message] = recovery.mail
    assert (message.to, message.subject) == (ANN, "Confirm your email address")
    assert _link(message).startswith("https://app.example/verify-email#token=")
    await recovery.verify(_token(message))
    [user] = recovery.uow.users.rows.values()
    assert user.id.value == created.id
    assert user.email_verified


async def test_the_registration_mail_does_not_start_the_cooldown() -> None:
    recovery = Recovery()
    await RegisterUser(recovery.uow, FakeHasher(), recovery.clock, RECOVERY).execute(
        RegisterInput(ANN, PASSWORD, "Ann")
    )
    first = _token(recovery.mail[0])
    second = await recovery.mailed_token(VERIFICATION)  # "send it again", at once
    assert recovery.token_row(first).voided_at == recovery.clock.now()
    await recovery.verify(second)


async def test_create_admin_makes_a_verified_admin_and_queues_nothing() -> None:
    uow = FakeUoW()
    created = await CreateAdmin(uow, FakeHasher(), FakeClock(), RECOVERY).execute(
        RegisterInput("root@example.com", PASSWORD, "Root")
    )
    assert created.role == Role.ADMIN.value
    assert created.email_verified
    [admin] = uow.users.rows.values()
    assert admin.email_verified
    assert uow.outbox.rows == []
    assert uow.one_time_tokens.rows == {}


ChangeEmail = Callable[[Recovery, User, str], Awaitable[None]]


async def _by_the_user(recovery: Recovery, user: User, email: str) -> None:
    await UpdateProfile(recovery.uow, recovery.clock, RECOVERY).execute(
        dto(user), ProfileChanges(email=email)
    )


async def _by_an_admin(recovery: Recovery, user: User, email: str) -> None:
    admin = next(u for u in recovery.uow.users.rows.values() if u.is_admin)
    await AdminUpdateUser(recovery.uow, recovery.clock, RECOVERY).execute(
        dto(admin), user.id.value, AdminChanges(email=email)
    )


CHANGES = pytest.mark.parametrize("change", [_by_the_user, _by_an_admin], ids=["self", "admin"])


@CHANGES
async def test_an_email_change_unverifies_mails_the_new_address_and_voids_old_tokens(
    change: ChangeEmail,
) -> None:
    user = a_user(email=ANN, name="Ann", email_verified=True)
    recovery = Recovery(user, an_admin())
    reset = await recovery.mailed_token(RESET)
    recovery.clock.advance(60)
    now = recovery.clock.now()

    await change(recovery, user, " New@Example.com ")

    stored = recovery.stored(user)
    assert stored.email == Email("new@example.com")
    assert not stored.email_verified
    assert recovery.token_row(reset).voided_at == now
    message = recovery.mail[-1]
    assert (message.to, message.to_name) == ("new@example.com", "Ann")
    assert _link(message).startswith("https://app.example/verify-email#token=")
    token = _token(message)
    assert recovery.token_row(token).email == "new@example.com"
    await recovery.verify(token)
    assert recovery.stored(user).email_verified


@CHANGES
async def test_an_unchanged_email_queues_no_mail_and_keeps_it_verified(
    change: ChangeEmail,
) -> None:
    user = a_user(email=ANN, email_verified=True)
    recovery = Recovery(user, an_admin())
    reset = await recovery.mailed_token(RESET)
    await change(recovery, user, "ANN@example.com")
    assert recovery.stored(user).email_verified
    assert len(recovery.mail) == 1  # the reset mail only
    assert recovery.token_row(reset).voided_at is None


async def test_a_refused_email_change_queues_no_mail() -> None:
    user, bob = a_user(email=ANN, email_verified=True), a_user(email="bob@example.com")
    recovery = Recovery(user, bob, an_admin())
    for change in (_by_the_user, _by_an_admin):
        with pytest.raises(EmailTaken):
            await change(recovery, user, "bob@example.com")
    assert recovery.mail == []
    assert recovery.uow.one_time_tokens.rows == {}
    assert recovery.stored(user).email_verified


# AuthenticateUser with require_verified_email


def _login(uow: FakeUoW, tokens: FakeTokens, *, require_verified_email: bool) -> AuthenticateUser:
    return AuthenticateUser(
        uow,
        FakeHasher(),
        FakeThrottle(),
        tokens,
        FakeClock(),
        POLICY,
        require_verified_email=require_verified_email,
    )


async def test_a_right_password_of_an_unverified_user_starts_no_session() -> None:
    uow, tokens = FakeUoW(users=[a_user(email=ANN)]), FakeTokens()
    with pytest.raises(EmailNotVerified, match="not verified"):
        await _login(uow, tokens, require_verified_email=True).execute(Credentials(ANN, PASSWORD))
    assert uow.sessions.rows == {}
    assert tokens.issued_to == []


async def test_a_wrong_password_of_an_unverified_user_is_the_usual_error() -> None:
    uow, tokens = FakeUoW(users=[a_user(email=ANN)]), FakeTokens()
    with pytest.raises(InvalidCredentials) as refused:
        await _login(uow, tokens, require_verified_email=True).execute(
            Credentials(ANN, "wrong-password-1")
        )
    assert type(refused.value) is InvalidCredentials  # not EmailNotVerified
    assert uow.sessions.rows == {}


async def test_a_verified_user_gets_a_session_when_verification_is_required() -> None:
    user = a_user(email=ANN, email_verified=True)
    uow, tokens = FakeUoW(users=[user]), FakeTokens()
    pair = await _login(uow, tokens, require_verified_email=True).execute(
        Credentials(ANN, PASSWORD)
    )
    assert tokens.read(pair.access.token).subject == user.id
    assert len(uow.sessions.rows) == 1


async def test_an_unverified_user_gets_a_session_when_verification_is_not_required() -> None:
    uow, tokens = FakeUoW(users=[a_user(email=ANN)]), FakeTokens()
    assert await _login(uow, tokens, require_verified_email=False).execute(
        Credentials(ANN, PASSWORD)
    )
    assert len(uow.sessions.rows) == 1


# The messages

LINK = "https://app.example/reset-password#token=abc-DEF_123"


@pytest.mark.parametrize(
    "write",
    [
        lambda user: messages.password_reset(user, LINK, RECOVERY.reset_ttl),
        lambda user: messages.email_verification(user, LINK, RECOVERY.verification_ttl),
    ],
    ids=["reset", "verification"],
)
def test_a_link_mail_carries_the_link_in_text_and_html(
    write: Callable[[User], EmailMessage],
) -> None:
    message = write(a_user(email=ANN, name="Ann"))
    assert (message.to, message.to_name) == (ANN, "Ann")
    assert LINK in message.text
    assert f'href="{LINK}"' in message.html
    assert message.text.startswith("Hello Ann,")
    assert "abc-DEF_123" not in repr(message)  # the bodies stay out of logs


@pytest.mark.parametrize(
    "write",
    [
        lambda user: messages.password_reset(user, LINK, RECOVERY.reset_ttl),
        lambda user: messages.email_verification(user, LINK, RECOVERY.verification_ttl),
        messages.password_changed,
    ],
    ids=["reset", "verification", "changed"],
)
def test_a_mail_escapes_the_name_in_html_only(write: Callable[[User], EmailMessage]) -> None:
    message = write(a_user(email=ANN, name="<b>Ann</b>"))
    assert "&lt;b&gt;Ann&lt;/b&gt;" in message.html
    assert "<b>" not in message.html
    assert "Hello <b>Ann</b>," in message.text
    assert message.to_name == "<b>Ann</b>"


@pytest.mark.parametrize(
    ("ttl", "wording"),
    [
        (timedelta(minutes=30), "30 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=2), "2 hours"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=3), "3 days"),
    ],
)
def test_a_link_mail_says_how_long_the_link_works(ttl: timedelta, wording: str) -> None:
    user = a_user(email=ANN)
    for message in (
        messages.password_reset(user, LINK, ttl),
        messages.email_verification(user, LINK, ttl),
    ):
        assert f"for {wording}." in message.text
        assert f"for {wording}." in message.html


def test_the_default_lifetimes_read_as_30_minutes_and_1_day() -> None:
    user = a_user(email=ANN)
    assert "30 minutes" in messages.password_reset(user, LINK, RECOVERY.reset_ttl).text
    assert "1 day" in messages.email_verification(user, LINK, RECOVERY.verification_ttl).text


def test_the_password_changed_notice_says_what_to_do_and_carries_no_link() -> None:
    message = messages.password_changed(a_user(email=ANN, name="Ann"))
    assert (message.to, message.subject) == (ANN, "Your password was changed")
    assert "If this was not you" in message.text
    assert "Forgot password" in message.text
    assert "http" not in message.text
    assert "href" not in message.html


# The fake unit of work keeps these use cases honest only if it rolls back like a database


async def test_the_fake_uow_rolls_back_tokens_mail_and_requests_without_a_commit() -> None:
    user = a_user(email=ANN)
    uow = FakeUoW(users=[user])
    async with uow:
        await uow.mail_requests.add(RESET, Email(ANN), T0)
        await uow.commit()
    async with uow:
        await uow.one_time_tokens.add(
            OneTimeToken.issue("digest", RESET, user, T0, RECOVERY.reset_ttl)
        )
        await uow.outbox.add(messages.password_changed(user), T0)
        assert await uow.mail_requests.take() == (RESET, Email(ANN))
        assert await uow.mail_requests.claim_cooldown(Email(ANN), T0, RECOVERY.cooldown)
    assert uow.one_time_tokens.rows == {}
    assert uow.outbox.rows == []
    assert uow.mail_requests.rows == [(RESET, Email(ANN), T0)]
    assert uow.mail_requests.cooldowns == {}


async def test_the_fake_uow_deletes_a_users_tokens_with_the_user() -> None:
    ann, bob = a_user(email=ANN), a_user(email="bob@example.com")
    uow = FakeUoW(users=[ann, bob])
    for user in (ann, bob):
        token = OneTimeToken.issue(str(user.id), RESET, user, T0, RECOVERY.reset_ttl)
        await uow.one_time_tokens.add(token)
    await uow.users.delete(ann.id)
    assert list(uow.one_time_tokens.rows) == [str(bob.id)]
