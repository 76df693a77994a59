"""RefreshToken.may_be_spent_again: the reuse interval's edges."""

import dataclasses
from datetime import datetime, timedelta

import pytest

from app.core.entities import RefreshToken, Session
from app.core.value_objects import ID
from tests.unit.fakes import POLICY, T0

SPENT_AT = T0 + timedelta(minutes=5)
INTERVAL = POLICY.reuse_interval
MICROSECOND = timedelta(microseconds=1)


def a_token(spent_at: datetime | None = SPENT_AT, respent: bool = False) -> RefreshToken:
    session = Session.start(ID.new(), T0, POLICY, None)
    token = RefreshToken.issue("digest", session, T0, POLICY)
    return dataclasses.replace(token, spent_at=spent_at, respent=respent)


@pytest.mark.parametrize(
    "now",
    [SPENT_AT, SPENT_AT + INTERVAL / 2, SPENT_AT + INTERVAL],
    ids=["when-spent", "within", "exactly-at-the-interval"],
)
def test_a_token_spent_within_the_interval_may_be_spent_again(now: datetime) -> None:
    assert a_token().may_be_spent_again(now, POLICY)


@pytest.mark.parametrize(
    "now",
    [SPENT_AT + INTERVAL + MICROSECOND, SPENT_AT + timedelta(days=1)],
    ids=["just-past-the-interval", "long-after"],
)
def test_a_token_spent_longer_ago_than_the_interval_may_not(now: datetime) -> None:
    assert not a_token().may_be_spent_again(now, POLICY)


def test_a_token_spent_again_already_may_not_be_spent_a_third_time() -> None:
    assert not a_token(respent=True).may_be_spent_again(SPENT_AT, POLICY)


def test_a_zero_interval_lets_no_token_be_spent_again() -> None:
    strict = dataclasses.replace(POLICY, reuse_interval=timedelta(0))
    assert not a_token().may_be_spent_again(SPENT_AT, strict)


def test_an_unspent_token_is_not_spent_again() -> None:
    assert not a_token(spent_at=None).may_be_spent_again(SPENT_AT, POLICY)
