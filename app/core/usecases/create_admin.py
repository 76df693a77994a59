from app.core.usecases.register_user import RegisterUser
from app.core.value_objects import Role


class CreateAdmin(RegisterUser):
    """An operator creates an active admin (from the command line); registration's rules apply."""

    role = Role.ADMIN
