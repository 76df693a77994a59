import json

import pytest
from starlette.requests import Request

from app.core import exceptions
from app.core.exceptions import DomainError, RetryLater
from app.infra.api.errors import STATUS, TOKEN_URL, on_domain_error, status_of

# Every error the core defines, and the status its category promises.
EXPECTED = {
    exceptions.InvalidValue: 400,
    exceptions.InvalidEmail: 400,
    exceptions.WeakPassword: 400,
    exceptions.InvalidName: 400,
    exceptions.InvalidCursor: 400,
    exceptions.InvalidRole: 400,
    exceptions.WrongPassword: 400,
    exceptions.InvalidOneTimeToken: 400,
    exceptions.Unauthenticated: 401,
    exceptions.InvalidCredentials: 401,
    exceptions.EmailNotVerified: 401,
    exceptions.InvalidToken: 401,
    exceptions.InvalidRefreshToken: 401,
    exceptions.RefreshTokenReused: 401,
    exceptions.Forbidden: 403,
    exceptions.NotEnoughPermissions: 403,
    exceptions.NotFound: 404,
    exceptions.UserNotFound: 404,
    exceptions.SessionNotFound: 404,
    exceptions.Conflict: 409,
    exceptions.EmailTaken: 409,
    exceptions.LastActiveAdmin: 409,
    exceptions.RetryLater: 503,
    exceptions.TooManyAttempts: 429,
    exceptions.TooManyRequests: 429,
    exceptions.HashingBusy: 503,
}


def _all_subclasses(cls: type[DomainError]) -> set[type[DomainError]]:
    found: set[type[DomainError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


# Raised as they are, though a more specific error subclasses them.
RAISED_WITH_SUBCLASSES = {exceptions.InvalidCredentials, exceptions.InvalidRefreshToken}


def _concrete(cls: type[DomainError]) -> bool:
    # A category with subclasses and no status of its own is abstract.
    return cls in STATUS or not cls.__subclasses__() or cls in RAISED_WITH_SUBCLASSES


def _instance(cls: type[DomainError]) -> DomainError:
    return cls(retry_after=7) if issubclass(cls, RetryLater) else cls()


def _name(value: object) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


DOMAIN_ERRORS = sorted(_all_subclasses(DomainError), key=_name)


def test_every_domain_error_of_the_app_is_listed_here() -> None:
    ours = {c for c in DOMAIN_ERRORS if c.__module__.startswith("app.") and _concrete(c)}
    assert ours == set(EXPECTED)


@pytest.mark.parametrize("error", DOMAIN_ERRORS, ids=_name)
def test_every_domain_error_falls_in_a_mapped_category(error: type[DomainError]) -> None:
    if _concrete(error):
        mapped = [category for category in STATUS if issubclass(error, category)]
        assert mapped, f"{error.__name__} would fall through to the default status"
    else:
        assert all(_concrete(sub) for sub in _all_subclasses(error))


@pytest.mark.parametrize("error", sorted(EXPECTED, key=_name), ids=_name)
def test_status_of_each_domain_error(error: type[DomainError]) -> None:
    assert status_of(_instance(error)) == EXPECTED[error]


def test_statuses_are_the_documented_ones() -> None:
    assert set(STATUS.values()) == {400, 401, 403, 404, 409, 429, 503}


def test_a_more_specific_category_is_not_shadowed_by_a_broader_one() -> None:
    categories = list(STATUS)
    for i, broad in enumerate(categories):
        for narrow in categories[i + 1 :]:
            assert not issubclass(narrow, broad), f"{broad.__name__} shadows {narrow.__name__}"


def test_retry_after_is_at_least_one_second() -> None:
    assert exceptions.TooManyAttempts(0).retry_after == 1
    assert exceptions.HashingBusy(-5).retry_after == 1
    assert exceptions.TooManyAttempts(900).retry_after == 900


def test_every_domain_error_has_a_human_message() -> None:
    for error in EXPECTED:
        message = str(_instance(error))
        assert message
        assert message != "Domain rule violated"


async def _at(path: str, exc: DomainError) -> tuple[int, dict[str, str], dict[str, str]]:
    request = Request({"type": "http", "method": "POST", "path": path, "headers": []})
    response = await on_domain_error(request, exc)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


async def test_at_the_token_endpoint_domain_errors_take_rfc_6749_shape() -> None:
    status, body, headers = await _at(TOKEN_URL, exceptions.TooManyAttempts(42))
    assert (status, body["error"], headers["retry-after"]) == (
        429,
        "temporarily_unavailable",
        "42",
    )
    status, body, headers = await _at(TOKEN_URL, exceptions.HashingBusy(5))
    assert (status, body["error"], headers["retry-after"]) == (503, "temporarily_unavailable", "5")
    status, body, headers = await _at(TOKEN_URL, exceptions.InvalidCredentials())
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "Incorrect email or password"},
    )
    assert "www-authenticate" not in headers
    assert headers["cache-control"] == "no-store"
    status, body, _ = await _at(TOKEN_URL, exceptions.EmailNotVerified())
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "Email address not verified"},
    )


async def test_elsewhere_the_same_errors_are_detail_bodies() -> None:
    status, body, headers = await _at("/users/me", exceptions.InvalidCredentials())
    assert (status, body, headers["www-authenticate"]) == (
        401,
        {"detail": "Incorrect email or password"},
        "Bearer",
    )
    status, body, headers = await _at("/users/me/password", exceptions.TooManyAttempts(42))
    assert (status, set(body), headers["retry-after"]) == (429, {"detail"}, "42")
