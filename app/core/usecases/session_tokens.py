from datetime import datetime

from app.core.dtos import TokenPair
from app.core.entities import RefreshToken, Session, SessionPolicy, User
from app.core.ports import TokenIssuer, UserUnitOfWork
from app.core.value_objects.opaque_token import OpaqueToken


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
    refresh = OpaqueToken.new()
    stored = RefreshToken.issue(refresh.digest, session, now, policy)
    await uow.refresh_tokens.add(stored)
    return TokenPair(
        access=tokens.issue(user, session.id),
        refresh_token=refresh.value,
        refresh_expires_in=max(0, int((stored.expires_at - now).total_seconds())),
    )
