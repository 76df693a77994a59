"""GetUser, ListUsers, AdminUpdateUser and DeleteUser on in-memory fakes."""

import base64
import dataclasses
import uuid
from datetime import timedelta

import pytest

from app.core.dtos import AdminChanges, UserDTO
from app.core.entities import User
from app.core.exceptions import (
    EmailTaken,
    InvalidCursor,
    InvalidEmail,
    InvalidName,
    InvalidToken,
    InvalidValue,
    LastActiveAdmin,
    NotEnoughPermissions,
    UserNotFound,
)
from app.core.usecases.admin_update_user import AdminUpdateUser
from app.core.usecases.delete_user import DeleteUser
from app.core.usecases.get_user import GetUser
from app.core.usecases.list_users import MAX_PAGE_SIZE, ListUsers
from app.core.value_objects import ID, Email, Name, Role
from app.core.value_objects.page_cursor import PageCursor
from tests.unit.fakes import RECOVERY, T0, FakeClock, FakeUoW, a_session, a_user, an_admin, dto


def _later() -> FakeClock:
    return FakeClock(T0 + timedelta(hours=1))


def _users(count: int, same_time_every: int = 3) -> list[User]:
    """Users whose created_at repeats, so the id has to break ties."""
    return [
        a_user(
            email=f"user{i:03}@example.com",
            created_at=T0 + timedelta(seconds=i // same_time_every),
        )
        for i in range(count)
    ]


def _in_order(users: list[User]) -> list[uuid.UUID]:
    return [u.id.value for u in sorted(users, key=lambda u: (u.created_at, u.id))]


async def _all_pages(
    usecase: ListUsers, actor: UserDTO, limit: int, email_prefix: str | None = None
) -> list[list[UserDTO]]:
    pages, cursor = [], None
    while True:
        page = await usecase.execute(actor, limit, cursor, email_prefix)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) <= 1000, "the cursor chain does not end"


# GetUser


async def test_get_user_returns_oneself() -> None:
    user = a_user()
    me = dto(user)
    assert await GetUser(FakeUoW(users=[user])).execute(me, user.id.value) == me


@pytest.mark.parametrize("exists", [True, False])
async def test_get_user_refuses_another_id_to_a_non_admin_whether_or_not_it_exists(
    exists: bool,
) -> None:
    me, other = a_user(), a_user(email="bob@example.com")
    uow = FakeUoW(users=[me, other] if exists else [me])
    with pytest.raises(NotEnoughPermissions):
        await GetUser(uow).execute(dto(me), other.id.value)


async def test_get_user_lets_an_admin_see_anyone() -> None:
    admin, other = an_admin(), a_user(email="bob@example.com", name="Bob")
    found = await GetUser(FakeUoW(users=[admin, other])).execute(dto(admin), other.id.value)
    assert found == dto(other)
    assert (found.email, found.name) == ("bob@example.com", "Bob")


async def test_get_user_unknown_id_is_not_found_for_an_admin() -> None:
    admin = an_admin()
    with pytest.raises(UserNotFound):
        await GetUser(FakeUoW(users=[admin])).execute(dto(admin), uuid.uuid4())


# ListUsers


async def test_list_users_is_admin_only() -> None:
    user = a_user()
    with pytest.raises(NotEnoughPermissions):
        await ListUsers(FakeUoW(users=[user])).execute(dto(user), 10)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, 10**9])
async def test_list_users_refuses_a_limit_out_of_bounds(limit: int) -> None:
    admin = an_admin()
    with pytest.raises(InvalidValue, match="limit"):
        await ListUsers(FakeUoW(users=[admin])).execute(dto(admin), limit)


@pytest.mark.parametrize("limit", [1, MAX_PAGE_SIZE])
async def test_list_users_accepts_the_limit_bounds(limit: int) -> None:
    admin = an_admin()
    users = _users(MAX_PAGE_SIZE + 5)
    page = await ListUsers(FakeUoW(users=[admin, *users])).execute(dto(admin), limit)
    assert len(page.items) == limit
    assert page.next_cursor is not None


@pytest.mark.parametrize("prefix", ["\x00", "ann\x00", "a b", "ann@exämple"])
async def test_list_users_answers_an_impossible_prefix_with_an_empty_page(prefix: str) -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin, *_users(3)])
    page = await ListUsers(uow).execute(dto(admin), 10, email_prefix=prefix)
    assert page.items == []
    assert page.next_cursor is None


def test_max_page_size_is_the_documented_100() -> None:
    assert MAX_PAGE_SIZE == 100


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 10, 11, 100])
async def test_list_users_cursor_chain_covers_every_user_once_in_order(limit: int) -> None:
    admin = an_admin()
    users = [admin, *_users(10)]
    pages = await _all_pages(ListUsers(FakeUoW(users=users)), dto(admin), limit)
    seen = [item.id for page in pages for item in page]
    assert seen == _in_order(users)
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit  # no empty trailing page


async def test_list_users_single_full_page_has_no_next_cursor() -> None:
    admin = an_admin()
    users = [admin, *_users(4)]
    page = await ListUsers(FakeUoW(users=users)).execute(dto(admin), 5)
    assert [u.id for u in page.items] == _in_order(users)
    assert page.next_cursor is None


async def test_list_users_cursor_names_the_last_user_of_the_page() -> None:
    admin = an_admin()
    users = [admin, *_users(5)]
    page = await ListUsers(FakeUoW(users=users)).execute(dto(admin), 2)
    assert page.next_cursor is not None
    cursor = PageCursor.decode(page.next_cursor)
    last = page.items[-1]
    assert (cursor.created_at, cursor.id) == (last.created_at, ID(last.id))


async def test_list_users_pages_stay_stable_when_users_are_added() -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin, *_users(4)])
    usecase = ListUsers(uow)
    first = await usecase.execute(dto(admin), 3)
    await uow.users.add(a_user(email="newcomer@example.com", created_at=T0 + timedelta(days=1)))
    assert first.next_cursor is not None
    second = await usecase.execute(dto(admin), 3, first.next_cursor)
    ids = [u.id for u in first.items + second.items]
    assert len(ids) == len(set(ids)) == 6


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "A" * 500,
        # Well-formed base64 JSON with the wrong types inside, as a client could craft.
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00+00:00",5]').decode(),
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00",""]').decode(),
    ],
    ids=["garbage", "too-long", "integer-id", "naive-datetime"],
)
async def test_list_users_refuses_a_bad_cursor(cursor: str) -> None:
    admin = an_admin()
    with pytest.raises(InvalidCursor):
        await ListUsers(FakeUoW(users=[admin])).execute(dto(admin), 10, cursor)


async def test_list_users_email_prefix_is_case_insensitive() -> None:
    admin = an_admin()
    ann, anna, bob = (
        a_user(email="ann@example.com"),
        a_user(email="anna@example.com"),
        a_user(email="bob@example.com"),
    )
    page = await ListUsers(FakeUoW(users=[admin, ann, anna, bob])).execute(
        dto(admin), 10, None, "ANN"
    )
    assert {u.email for u in page.items} == {"ann@example.com", "anna@example.com"}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a%", {"a%b@example.com"}),
        ("a_", {"a_c@example.com"}),
        ("%", set()),
        ("_", set()),
        ("a", {"a%b@example.com", "a_c@example.com", "axb@example.com", "abc@example.com"}),
        ("ab", {"abc@example.com"}),
    ],
)
async def test_list_users_email_prefix_is_literal(prefix: str, expected: set[str]) -> None:
    admin = an_admin(email="root@example.com")
    emails = ["a%b@example.com", "a_c@example.com", "axb@example.com", "abc@example.com"]
    uow = FakeUoW(users=[admin, *(a_user(email=e) for e in emails)])
    page = await ListUsers(uow).execute(dto(admin), 10, None, prefix)
    assert {u.email for u in page.items} == expected


async def test_list_users_cursor_chain_with_a_prefix() -> None:
    admin = an_admin()
    users = [admin, *_users(9), *(a_user(email=f"z{i}@example.com") for i in range(4))]
    pages = await _all_pages(ListUsers(FakeUoW(users=users)), dto(admin), 2, "USER")
    seen = [item.id for page in pages for item in page]
    assert seen == _in_order([u for u in users if u.email.value.startswith("user")])


# AdminUpdateUser


async def test_admin_update_changes_every_field() -> None:
    admin, user = an_admin(), a_user(email="ann@example.com", name="Ann")
    uow, clock = FakeUoW(users=[admin, user]), _later()
    updated = await AdminUpdateUser(uow, clock, RECOVERY).execute(
        dto(admin),
        user.id.value,
        AdminChanges(name=" Anna ", email="ANNA@example.com", role="admin", is_active=False),
    )
    assert (updated.name, updated.email, updated.role, updated.is_active) == (
        "Anna",
        "anna@example.com",
        "admin",
        False,
    )
    assert updated.updated_at == clock.now()
    stored = uow.users.stored(user.id)
    assert (stored.name, stored.email, stored.role, stored.is_active) == (
        Name("Anna"),
        Email("anna@example.com"),
        Role.ADMIN,
        False,
    )
    assert uow.committed
    # The active admins first, in id order, then the target: one lock order.
    assert uow.users.locked == [admin.id, user.id]


async def test_admin_update_leaves_out_fields_unchanged() -> None:
    admin, user = an_admin(), a_user(email="ann@example.com", name="Ann", is_active=False)
    uow = FakeUoW(users=[admin, user])
    updated = await AdminUpdateUser(uow, _later(), RECOVERY).execute(
        dto(admin), user.id.value, AdminChanges()
    )
    assert updated == dto(user)
    assert updated.updated_at == T0


async def test_admin_update_can_reactivate_a_user() -> None:
    admin, user = an_admin(), a_user(is_active=False)
    uow = FakeUoW(users=[admin, user])
    updated = await AdminUpdateUser(uow, _later(), RECOVERY).execute(
        dto(admin), user.id.value, AdminChanges(is_active=True)
    )
    assert updated.is_active
    assert uow.users.stored(user.id).is_active


async def test_admin_update_is_admin_only_even_for_oneself() -> None:
    user = a_user()
    uow = FakeUoW(users=[user])
    with pytest.raises(NotEnoughPermissions):
        await AdminUpdateUser(uow, _later(), RECOVERY).execute(
            dto(user), user.id.value, AdminChanges(role="admin")
        )
    assert uow.users.stored(user.id).role is Role.USER
    assert not uow.committed


async def test_admin_update_unknown_id_is_not_found() -> None:
    admin = an_admin()
    with pytest.raises(UserNotFound):
        await AdminUpdateUser(FakeUoW(users=[admin]), _later(), RECOVERY).execute(
            dto(admin), uuid.uuid4(), AdminChanges(name="X")
        )


async def test_admin_update_refuses_a_taken_email() -> None:
    admin, ann = an_admin(), a_user(email="ann@example.com", name="Ann")
    uow = FakeUoW(users=[admin, ann])
    with pytest.raises(EmailTaken):
        await AdminUpdateUser(uow, _later(), RECOVERY).execute(
            dto(admin), ann.id.value, AdminChanges(name="Renamed", email="ROOT@example.com")
        )
    assert not uow.committed
    assert uow.users.stored(ann.id).name == Name("Ann")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (AdminChanges(name=" "), InvalidName),
        (AdminChanges(email="nope"), InvalidEmail),
    ],
)
async def test_admin_update_refuses_invalid_values(
    changes: AdminChanges, error: type[Exception]
) -> None:
    admin, user = an_admin(), a_user()
    uow = FakeUoW(users=[admin, user])
    with pytest.raises(error):
        await AdminUpdateUser(uow, _later(), RECOVERY).execute(dto(admin), user.id.value, changes)
    assert not uow.committed


@pytest.mark.parametrize(
    "changes",
    [
        AdminChanges(role="user"),
        AdminChanges(is_active=False),
        AdminChanges(role="user", is_active=False),
        AdminChanges(name="Still here", role="user"),
    ],
)
async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    changes: AdminChanges,
) -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin, a_user()])
    with pytest.raises(LastActiveAdmin):
        await AdminUpdateUser(uow, _later(), RECOVERY).execute(dto(admin), admin.id.value, changes)
    assert not uow.committed
    stored = uow.users.stored(admin.id)
    assert stored.is_active_admin
    assert stored.name == Name("Root")
    assert stored.updated_at == T0


async def test_an_inactive_admin_does_not_count_as_a_second_admin() -> None:
    admin, dormant = an_admin(), an_admin(email="dormant@example.com", is_active=False)
    uow = FakeUoW(users=[admin, dormant])
    with pytest.raises(LastActiveAdmin):
        await AdminUpdateUser(uow, _later(), RECOVERY).execute(
            dto(admin), admin.id.value, AdminChanges(role="user")
        )


async def test_with_two_active_admins_one_can_be_demoted_then_not_the_other() -> None:
    first, second = an_admin(), an_admin(email="second@example.com")
    uow = FakeUoW(users=[first, second])
    usecase = AdminUpdateUser(uow, _later(), RECOVERY)
    demoted = await usecase.execute(dto(first), second.id.value, AdminChanges(role="user"))
    assert demoted.role == "user"
    assert uow.users.stored(second.id).role is Role.USER
    with pytest.raises(LastActiveAdmin):
        await usecase.execute(dto(first), first.id.value, AdminChanges(is_active=False))
    assert uow.users.stored(first.id).is_active_admin


async def test_with_two_active_admins_one_can_deactivate_itself() -> None:
    first, second = an_admin(), an_admin(email="second@example.com")
    uow = FakeUoW(users=[first, second])
    updated = await AdminUpdateUser(uow, _later(), RECOVERY).execute(
        dto(first), first.id.value, AdminChanges(is_active=False)
    )
    assert not updated.is_active
    assert uow.committed


async def test_the_last_active_admin_may_still_be_renamed() -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin])
    updated = await AdminUpdateUser(uow, _later(), RECOVERY).execute(
        dto(admin), admin.id.value, AdminChanges(name="Boss", role="admin", is_active=True)
    )
    assert updated.name == "Boss"
    assert uow.users.stored(admin.id).is_active_admin


async def test_an_inactive_admin_can_be_demoted_while_one_admin_is_active() -> None:
    admin, dormant = an_admin(), an_admin(email="dormant@example.com", is_active=False)
    uow = FakeUoW(users=[admin, dormant])
    updated = await AdminUpdateUser(uow, _later(), RECOVERY).execute(
        dto(admin), dormant.id.value, AdminChanges(role="user")
    )
    assert updated.role == "user"


async def test_promoting_a_user_makes_a_second_admin() -> None:
    admin, user = an_admin(), a_user()
    uow = FakeUoW(users=[admin, user])
    usecase = AdminUpdateUser(uow, _later(), RECOVERY)
    await usecase.execute(dto(admin), user.id.value, AdminChanges(role="admin"))
    demoted = await usecase.execute(dto(admin), admin.id.value, AdminChanges(role="user"))
    assert demoted.role == "user"
    assert uow.users.stored(user.id).is_active_admin


# DeleteUser


async def test_a_user_deletes_itself() -> None:
    user = a_user()
    uow = FakeUoW(users=[user, an_admin()])
    await DeleteUser(uow).execute(dto(user), user.id.value)
    assert user.id not in uow.users.rows
    assert uow.committed


async def test_an_admin_deletes_anyone() -> None:
    admin, user = an_admin(), a_user()
    uow = FakeUoW(users=[admin, user])
    await DeleteUser(uow).execute(dto(admin), user.id.value)
    assert list(uow.users.rows) == [admin.id]
    assert uow.committed


async def test_an_admin_deletes_another_admin_while_one_stays() -> None:
    admin, other = an_admin(), an_admin(email="other@example.com")
    uow = FakeUoW(users=[admin, other])
    await DeleteUser(uow).execute(dto(admin), other.id.value)
    assert list(uow.users.rows) == [admin.id]


@pytest.mark.parametrize("exists", [True, False])
async def test_a_user_cannot_delete_another_id_whether_or_not_it_exists(exists: bool) -> None:
    me, other = a_user(), a_user(email="bob@example.com")
    uow = FakeUoW(users=[me, other] if exists else [me])
    with pytest.raises(NotEnoughPermissions):
        await DeleteUser(uow).execute(dto(me), other.id.value)
    assert len(uow.users.rows) == (2 if exists else 1)
    assert not uow.committed


async def test_deleting_an_unknown_id_is_not_found_for_an_admin() -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin])
    with pytest.raises(UserNotFound):
        await DeleteUser(uow).execute(dto(admin), uuid.uuid4())
    assert not uow.committed


async def test_the_last_active_admin_cannot_delete_itself() -> None:
    admin = an_admin()
    uow = FakeUoW(users=[admin, a_user(), an_admin(email="dormant@example.com", is_active=False)])
    with pytest.raises(LastActiveAdmin):
        await DeleteUser(uow).execute(dto(admin), admin.id.value)
    assert admin.id in uow.users.rows
    assert not uow.committed


async def test_an_admin_may_delete_itself_when_another_admin_is_active() -> None:
    admin, other = an_admin(), an_admin(email="other@example.com")
    uow = FakeUoW(users=[admin, other])
    await DeleteUser(uow).execute(dto(admin), admin.id.value)
    assert list(uow.users.rows) == [other.id]


async def test_an_inactive_admin_can_be_deleted() -> None:
    admin, dormant = an_admin(), an_admin(email="dormant@example.com", is_active=False)
    uow = FakeUoW(users=[admin, dormant])
    await DeleteUser(uow).execute(dto(admin), dormant.id.value)
    assert list(uow.users.rows) == [admin.id]


# Authorised where written: the actor as stored when the write happens


async def _demoted_meanwhile(how: str) -> tuple[FakeUoW, User, User]:
    """Two admins; `first` was resolved as an admin, then changed by `how`."""
    first, second = an_admin("first@example.com"), an_admin("second@example.com")
    uow = FakeUoW(users=[first, second])
    stored = uow.users.stored(first.id)
    if how == "demoted":
        stored.change_role(Role.USER, T0)
    elif how == "deactivated":
        stored.deactivate(T0)
    else:
        await uow.users.delete(first.id)
    return uow, first, second


@pytest.mark.parametrize(
    ("how", "error"),
    [("demoted", NotEnoughPermissions), ("deactivated", InvalidToken), ("deleted", InvalidToken)],
)
async def test_an_admin_changed_in_flight_cannot_update(how: str, error: type[Exception]) -> None:
    uow, first, second = await _demoted_meanwhile(how)
    before = [dataclasses.asdict(u) for u in uow.users.rows.values()]
    for target, changes in (
        (first, AdminChanges(role="admin", is_active=True)),  # re-promoting itself
        (second, AdminChanges(role="user")),
    ):
        with pytest.raises(error):
            await AdminUpdateUser(uow, _later(), RECOVERY).execute(
                dto(first), target.id.value, changes
            )
    assert not uow.committed
    assert [dataclasses.asdict(u) for u in uow.users.rows.values()] == before
    assert uow.users.stored(second.id).is_active_admin


@pytest.mark.parametrize(
    ("how", "error"),
    [("demoted", NotEnoughPermissions), ("deactivated", InvalidToken), ("deleted", InvalidToken)],
)
async def test_an_admin_changed_in_flight_cannot_delete(how: str, error: type[Exception]) -> None:
    uow, first, second = await _demoted_meanwhile(how)
    with pytest.raises(error):
        await DeleteUser(uow).execute(dto(first), second.id.value)
    assert not uow.committed
    assert second.id in uow.users.rows


async def test_a_user_deactivated_in_flight_cannot_delete_itself() -> None:
    user = a_user()
    uow = FakeUoW(users=[user])
    uow.users.stored(user.id).deactivate(T0)
    with pytest.raises(InvalidToken):
        await DeleteUser(uow).execute(dto(user), user.id.value)
    assert user.id in uow.users.rows


async def test_demoting_or_deactivating_ends_the_users_tokens() -> None:
    admin, other, user = an_admin(), an_admin("other@example.com"), a_user()
    uow, clock = FakeUoW(users=[admin, other, user]), _later()
    sessions = {u.id: await a_session(uow, u) for u in (admin, other, user)}
    usecase = AdminUpdateUser(uow, clock, RECOVERY)
    await usecase.execute(dto(admin), other.id.value, AdminChanges(role="user"))
    await usecase.execute(dto(admin), user.id.value, AdminChanges(is_active=False))
    await usecase.execute(dto(admin), user.id.value, AdminChanges(is_active=True))
    assert uow.users.stored(other.id).token_version == 1
    assert uow.users.stored(user.id).token_version == 1  # reactivation brings none back
    ended = {user_id: uow.sessions.rows[s.id].ended_at for user_id, s in sessions.items()}
    assert ended == {admin.id: None, other.id: clock.now(), user.id: clock.now()}
    assert await uow.sessions.list_live(user.id, clock.now()) == []  # still, once reactivated


@pytest.mark.parametrize(
    "changes",
    [
        AdminChanges(name="Renamed", email="renamed@example.com"),
        AdminChanges(role="admin"),
        AdminChanges(is_active=True),
    ],
)
async def test_changes_other_than_demotion_or_deactivation_keep_the_sessions(
    changes: AdminChanges,
) -> None:
    admin, user = an_admin(), a_user()
    uow, clock = FakeUoW(users=[admin, user]), _later()
    session = await a_session(uow, user)
    await AdminUpdateUser(uow, clock, RECOVERY).execute(dto(admin), user.id.value, changes)
    assert uow.committed
    assert uow.sessions.rows[session.id].is_live(clock.now())


async def test_a_refused_demotion_ends_no_session() -> None:
    admin = an_admin()
    uow, clock = FakeUoW(users=[admin]), _later()
    session = await a_session(uow, admin)
    with pytest.raises(LastActiveAdmin):
        await AdminUpdateUser(uow, clock, RECOVERY).execute(
            dto(admin), admin.id.value, AdminChanges(role="user")
        )
    assert uow.sessions.rows[session.id].is_live(clock.now())
