from app.core.value_objects.email import Email
from app.core.value_objects.hashed_password import HashedPassword
from app.core.value_objects.id import ID
from app.core.value_objects.name import Name
from app.core.value_objects.password import Password
from app.core.value_objects.role import Role

__all__ = ["ID", "Email", "HashedPassword", "Name", "Password", "Role"]
