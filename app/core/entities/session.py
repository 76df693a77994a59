from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.value_objects import ID


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions and their refresh tokens live, from the settings.

    - `refresh_token_ttl`: a refresh token expires this long after it is
      issued (the idle limit: a session nobody refreshes dies with its token).
    - `max_lifetime`: a session ends this long after its login, however often
      it is refreshed (the absolute limit).
    - `reuse_interval`: for this long after a refresh token is spent it may be
      presented once more and yield one more pair (two tabs refreshing at
      once); zero is strict. Any other presentation of a spent token is reuse.
    - `max_per_user`: live sessions a user may have; a login ends the oldest
      beyond it.
    """

    refresh_token_ttl: timedelta
    max_lifetime: timedelta
    reuse_interval: timedelta
    max_per_user: int


@dataclass(frozen=True, eq=False, slots=True)
class Session:
    """One login of a user, on one device: its access and refresh tokens
    carry its id, and ending it stops them all at once. A record of the
    row, never changed in place (the repository ends it), so every request
    reading one session may share it."""

    id: ID
    user_id: ID
    created_at: datetime
    last_used_at: datetime  # the login or the last refresh
    expires_at: datetime  # the absolute limit
    ended_at: datetime | None
    user_agent: str | None

    MAX_USER_AGENT = 256

    @classmethod
    def start(
        cls, user_id: ID, now: datetime, policy: SessionPolicy, user_agent: str | None
    ) -> "Session":
        return cls(
            id=ID.new(),
            user_id=user_id,
            created_at=now,
            last_used_at=now,
            expires_at=now + policy.max_lifetime,
            ended_at=None,
            user_agent=user_agent[: cls.MAX_USER_AGENT] if user_agent else None,
        )

    def is_live(self, now: datetime) -> bool:
        """Neither ended nor past its absolute limit."""
        return self.ended_at is None and now < self.expires_at


@dataclass(eq=False, slots=True)
class RefreshToken:
    """What is stored of a refresh token: its digest, never the token."""

    digest: str
    session_id: ID
    issued_at: datetime
    expires_at: datetime
    spent_at: datetime | None = None
    # Spent once more within the reuse interval (the second tab's refresh).
    respent: bool = False

    @classmethod
    def issue(
        cls, digest: str, session: Session, now: datetime, policy: SessionPolicy
    ) -> "RefreshToken":
        expires_at = min(now + policy.refresh_token_ttl, session.expires_at)
        return cls(digest=digest, session_id=session.id, issued_at=now, expires_at=expires_at)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def may_be_spent_again(self, now: datetime, policy: SessionPolicy) -> bool:
        """A spent token, presented within the reuse interval after it was
        spent, and not spent again already: the second tab's refresh."""
        return (
            self.spent_at is not None
            and not self.respent
            and bool(policy.reuse_interval)
            and now - self.spent_at <= policy.reuse_interval
        )
