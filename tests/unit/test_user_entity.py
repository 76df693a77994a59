import dataclasses
from datetime import timedelta

from app.core.entities import User
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
from tests.unit.fakes import T0, a_user, an_admin

LATER = T0 + timedelta(minutes=5)


def test_register_makes_an_active_user_with_version_zero() -> None:
    user = User.register(Email("Ann@X.io"), Name("Ann"), HashedPassword("h"), T0)
    assert user.role is Role.USER
    assert user.is_active
    assert user.created_at == user.updated_at == T0
    assert user.token_version == 0
    assert user.email.value == "ann@x.io"


def test_register_gives_each_user_a_new_id() -> None:
    first = User.register(Email("ann@x.io"), Name("Ann"), HashedPassword("h"), T0)
    second = User.register(Email("ann@x.io"), Name("Ann"), HashedPassword("h"), T0)
    assert first.id != second.id
    assert first != second


def test_register_can_make_an_admin() -> None:
    user = User.register(Email("ann@x.io"), Name("Ann"), HashedPassword("h"), T0, role=Role.ADMIN)
    assert user.is_admin


def test_users_are_equal_by_id_only() -> None:
    user = a_user()
    same_id = dataclasses.replace(user, name=Name("Other"), email=Email("other@x.io"))
    same_fields = dataclasses.replace(user, id=ID.new())
    assert user == same_id
    assert hash(user) == hash(same_id)
    assert user != same_fields
    assert len({user, same_id, same_fields}) == 2


def test_user_is_not_equal_to_other_types() -> None:
    user = a_user()
    assert user != user.id
    assert user != user.id.value
    assert user != "ann@example.com"


def test_repr_hides_the_password_hash() -> None:
    user = a_user(password="visible-secret-1")
    assert "visible-secret-1" not in repr(user)


def test_rename_changes_updated_at_only_when_the_name_changes() -> None:
    user = a_user(name="Ann")
    user.rename(Name(" Ann "), LATER)
    assert user.updated_at == T0
    user.rename(Name("Anna"), LATER)
    assert user.name == Name("Anna")
    assert user.updated_at == LATER


def test_change_email_changes_updated_at_only_when_the_email_changes() -> None:
    user = a_user(email="ann@x.io", email_verified=True)
    assert user.change_email(Email("ANN@X.IO"), LATER) is False
    assert user.updated_at == T0
    assert user.email_verified  # the same address stays verified
    assert user.change_email(Email("anna@x.io"), LATER) is True
    assert user.email.value == "anna@x.io"
    assert user.updated_at == LATER
    assert not user.email_verified  # a new address is unverified until its link is opened


def test_verify_email_changes_updated_at_only_the_first_time() -> None:
    user = a_user(email_verified=False)
    user.verify_email(LATER)
    assert user.email_verified
    assert user.updated_at == LATER
    user.verify_email(LATER + timedelta(minutes=1))
    assert user.updated_at == LATER


def test_register_starts_unverified_unless_told() -> None:
    user = User.register(Email("ann@x.io"), Name("Ann"), HashedPassword("h"), T0)
    assert not user.email_verified
    admin = User.register(
        Email("root@x.io"), Name("Root"), HashedPassword("h"), T0, Role.ADMIN, email_verified=True
    )
    assert admin.email_verified


def test_change_role_changes_updated_at_only_when_the_role_changes() -> None:
    user = a_user(role=Role.USER)
    user.change_role(Role.USER, LATER)
    assert user.updated_at == T0
    user.change_role(Role.ADMIN, LATER)
    assert user.role is Role.ADMIN
    assert user.updated_at == LATER


def test_activate_changes_updated_at_only_for_an_inactive_user() -> None:
    user = a_user(is_active=True)
    user.activate(LATER)
    assert user.updated_at == T0
    inactive = a_user(is_active=False)
    inactive.activate(LATER)
    assert inactive.is_active
    assert inactive.updated_at == LATER


def test_deactivate_changes_updated_at_only_for_an_active_user() -> None:
    user = a_user(is_active=False)
    user.deactivate(LATER)
    assert user.updated_at == T0
    active = a_user(is_active=True)
    active.deactivate(LATER)
    assert not active.is_active
    assert active.updated_at == LATER


def test_change_password_bumps_token_version_and_updated_at() -> None:
    user = a_user(token_version=3)
    user.change_password(HashedPassword("new-hash"), LATER)
    assert user.hashed_password == HashedPassword("new-hash")
    assert user.token_version == 4
    assert user.updated_at == LATER
    user.change_password(HashedPassword("newer-hash"), LATER + timedelta(seconds=1))
    assert user.token_version == 5


def test_change_password_revokes_even_when_the_hash_is_the_same() -> None:
    user = a_user()
    user.change_password(user.hashed_password, LATER)
    assert user.token_version == 1


def test_is_active_admin() -> None:
    assert an_admin().is_active_admin
    assert not an_admin(is_active=False).is_active_admin
    assert an_admin(is_active=False).is_admin
    assert not a_user().is_active_admin
    assert not a_user(is_active=False).is_active_admin
    assert not a_user().is_admin


def test_deactivation_ends_every_token_and_reactivation_brings_none_back() -> None:
    user = a_user(is_active=True, token_version=2)
    user.deactivate(LATER)
    assert user.token_version == 3
    user.activate(LATER)
    assert user.token_version == 3
    user.deactivate(LATER)  # active again, so this ends its new tokens
    assert user.token_version == 4


def test_deactivating_an_inactive_user_changes_nothing() -> None:
    user = a_user(is_active=False, token_version=2)
    user.deactivate(LATER)
    assert user.token_version == 2


def test_demotion_ends_every_token_and_promotion_does_not() -> None:
    user = a_user(role=Role.USER)
    user.change_role(Role.ADMIN, LATER)
    assert user.token_version == 0
    user.change_role(Role.USER, LATER)
    assert user.token_version == 1
    user.change_role(Role.USER, LATER)
    assert user.token_version == 1
