"""Domain errors, grouped by category so the API maps categories, not classes."""


class DomainError(Exception):
    message = "Domain rule violated"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


# Categories: the API layer maps each to one HTTP status.
class InvalidValue(DomainError):
    message = "Invalid value"


class Unauthenticated(DomainError):
    message = "Not authenticated"


class Forbidden(DomainError):
    message = "Not enough permissions"


class NotFound(DomainError):
    message = "Not found"


class Conflict(DomainError):
    message = "Conflict"


class RetryLater(DomainError):
    """The request may succeed after `retry_after` seconds."""

    message = "Try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TooManyAttempts(RetryLater):
    message = "Too many failed login attempts; try again later"


class TooManyRequests(RetryLater):
    message = "Too many requests; try again later"


class Unavailable(RetryLater):
    message = "Service temporarily unavailable"


# Invalid values: a well-formed request that breaks a domain rule.
class InvalidEmail(InvalidValue):
    message = "Invalid email address"


class WeakPassword(InvalidValue):
    message = "Password is too weak"


class InvalidName(InvalidValue):
    message = "Name must be 1 to 100 characters"


class InvalidRole(InvalidValue):
    message = "Role must be 'user' or 'admin'"


class InvalidCursor(InvalidValue):
    message = "Invalid cursor"


class InvalidOneTimeToken(InvalidValue):
    """One answer for every cause: unknown, expired, used, voided, user gone."""

    message = "Invalid or expired token"


class WrongPassword(InvalidValue):
    message = "Current password is incorrect"


# Authentication.
class InvalidCredentials(Unauthenticated):
    message = "Incorrect email or password"


class EmailNotVerified(InvalidCredentials):
    """A correct password of an unverified user, with REQUIRE_VERIFIED_EMAIL."""

    message = "Email address not verified"


class InvalidToken(Unauthenticated):
    message = "Could not validate credentials"


class InvalidRefreshToken(Unauthenticated):
    """One answer for every cause: unknown, expired, spent, session ended, user gone."""

    message = "Invalid or expired refresh token"


class RefreshTokenReused(InvalidRefreshToken):
    """A spent refresh token presented again: its session has been ended.
    Answered as any invalid refresh token; told apart for the metrics."""


# Authorisation.
class NotEnoughPermissions(Forbidden):
    message = "Not enough permissions"


# Missing things.
class UserNotFound(NotFound):
    message = "User not found"


class SessionNotFound(NotFound):
    message = "Session not found"


# Conflicts with the current state.
class EmailTaken(Conflict):
    message = "User already exists"


class LastActiveAdmin(Conflict):
    message = "The last active admin cannot be removed, demoted or deactivated"


# Capacity.
class HashingBusy(Unavailable):
    message = "Too many password operations in progress; try again later"

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__(retry_after)


# Not a domain error: an infrastructure failure the core's callers handle.
class EmailNotSent(Exception):
    """A message could not be handed to the mail server; sending it again may work.

    Deliberately not a DomainError: no request waits for mail, so it never
    reaches HTTP and needs no status. Whoever sends (the outbox dispatcher)
    catches it and retries later.
    """
