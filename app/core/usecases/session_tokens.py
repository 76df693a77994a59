from datetime import datetime

from app.core.dtos import TokenPair
from app.core.entities import RefreshToken, Session, SessionPolicy, User
from app.core.ports import TokenIssuer, UserUnitOfWork
from app.core.value_objects.opaque_token import OpaqueToken


def new_refresh_token(
    session: Session, policy: SessionPolicy, now: datetime
) -> tuple[OpaqueToken, RefreshToken]:
    """A new refresh token of `session`: what the client gets, and what is stored (its digest)."""
    refresh = OpaqueToken.new()
    return refresh, RefreshToken.issue(refresh.digest, session, now, policy)


def token_pair(
    tokens: TokenIssuer,
    user: User,
    session: Session,
    refresh: OpaqueToken,
    stored: RefreshToken,
    now: datetime,
) -> TokenPair:
    """An access token of `session`, and the refresh token `refresh`."""
    return TokenPair(
        access=tokens.issue(user, session.id),
        refresh_token=refresh.value,
        refresh_expires_in=max(0, int((stored.expires_at - now).total_seconds())),
    )


async def issue_tokens(
    uow: UserUnitOfWork,
    tokens: TokenIssuer,
    user: User,
    session: Session,
    policy: SessionPolicy,
    now: datetime,
) -> TokenPair:
    """A new refresh token of `session`, stored (as its digest) in the unit of
    work, and an access token of the same session. Committing is the caller's."""
    refresh, stored = new_refresh_token(session, policy, now)
    await uow.refresh_tokens.add(stored)
    return token_pair(tokens, user, session, refresh, stored, now)
