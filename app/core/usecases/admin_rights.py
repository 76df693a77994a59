from app.core.exceptions import InvalidToken, NotEnoughPermissions
from app.core.ports import UserRepo
from app.core.value_objects import ID


async def ensure_still_admin(users: UserRepo, actor_id: ID, active_admins: list[ID]) -> None:
    """Decides an admin write on rows locked by its own unit of work
    (`UserRepo.lock_active_admins`), not on the actor read when the request
    began: an admin demoted meanwhile gets 403, one deactivated or deleted 401."""
    if actor_id in active_admins:
        return
    actor = await users.get_by_id(actor_id)
    if actor is None or not actor.is_active:
        raise InvalidToken()
    raise NotEnoughPermissions()
