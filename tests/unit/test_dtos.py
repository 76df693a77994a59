"""The use-case inputs and outputs: no secret in a repr, roles read from Role."""

import pytest

from app.core.dtos import Credentials, PasswordChange, RegisterInput, UserDTO
from app.core.value_objects import Role
from tests.unit.fakes import a_user

SECRET = "s3cret-pass-phrase"


@pytest.mark.parametrize(
    "dto",
    [
        RegisterInput("ann@example.com", SECRET, "Ann"),
        PasswordChange(current_password=SECRET, new_password=SECRET + "-new"),
        Credentials("ann@example.com", SECRET),
    ],
    ids=lambda dto: type(dto).__name__,
)
def test_inputs_never_show_a_password_in_their_repr(dto: object) -> None:
    assert SECRET not in repr(dto)


@pytest.mark.parametrize("role", list(Role))
def test_user_dto_is_admin_follows_the_role(role: Role) -> None:
    dto = UserDTO.from_entity(a_user(role=role))
    assert dto.is_admin is (role is Role.ADMIN)


@pytest.mark.parametrize("verified", [True, False])
def test_user_dto_carries_email_verified(verified: bool) -> None:
    assert UserDTO.from_entity(a_user(email_verified=verified)).email_verified is verified
