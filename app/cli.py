"""Operator commands: `python -m app.cli create-admin --email E --name N`,
`python -m app.cli send-emails` (drains the outbox once, for cron) and
`python -m app.cli purge-expired` (housekeeping once)."""

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError, ProgrammingError

from app.config import get_settings
from app.core.dtos import RegisterInput, UserDTO
from app.core.exceptions import DomainError
from app.core.usecases.create_admin import CreateAdmin
from app.infra.clock import SystemClock
from app.infra.composition import email_sender, housekeeping, mail_dispatcher, recovery_policy
from app.infra.db.engine import DatabaseUnavailable, create_engine, create_sessionmaker
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher


async def create_admin(email: str, name: str, password: str) -> UserDTO:
    settings = get_settings()
    engine = create_engine(settings)
    hasher = BcryptPasswordHasher(settings.BCRYPT_ROUNDS, 1, settings.HASH_QUEUE_TIMEOUT_SECONDS)
    try:
        uow = SqlUserUnitOfWork(create_sessionmaker(engine))
        usecase = CreateAdmin(uow, hasher, SystemClock(), recovery_policy(settings))
        return await usecase.execute(RegisterInput(email, password, name))
    finally:
        hasher.close()
        await engine.dispose()


async def send_emails() -> int:
    """Sends what is due in the outbox (after turning recorded requests into
    mail), round after round until a round sends less than a batch."""
    settings = get_settings()
    engine = create_engine(settings)
    try:
        dispatcher = mail_dispatcher(
            settings, create_sessionmaker(engine), email_sender(settings), SystemClock()
        )
        total = 0
        while (sent := await dispatcher.run_once()) > 0:
            total += sent
            if sent < dispatcher.BATCH:
                break
        return total
    finally:
        await engine.dispose()


_T = TypeVar("_T")


class _DatabaseNotReady(Exception):
    """The database is missing its schema or cannot be reached: one line says which."""


def _with_database(work: Coroutine[Any, Any, _T]) -> _T:
    try:
        return asyncio.run(work)
    except (OperationalError, ProgrammingError) as exc:
        raise _DatabaseNotReady(
            f"database not ready ({exc.orig}); run `make migrate` first"
        ) from None
    except DatabaseUnavailable as exc:
        raise _DatabaseNotReady(f"database unavailable ({exc}); is it running?") from None


def _read_password() -> str:
    if password := os.environ.get("ADMIN_PASSWORD"):
        return password
    if not sys.stdin.isatty():
        raise SystemExit("error: set ADMIN_PASSWORD or run in a terminal to be prompted")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise SystemExit("error: the passwords differ")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("create-admin", help="create an active admin")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    commands.add_parser("send-emails", help="send the mail that is due in the outbox, once")
    commands.add_parser("purge-expired", help="delete expired sessions, tokens and sent mail")
    args = parser.parse_args(argv)
    if args.command == "send-emails":
        return _run_send_emails()
    if args.command == "purge-expired":
        return _run_purge_expired()

    password = _read_password()
    try:
        user = _with_database(create_admin(args.email, args.name, password))
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _DatabaseNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Created admin {user.email}")
    print(user.id)
    return 0


async def purge_expired() -> dict[str, int]:
    settings = get_settings()
    engine = create_engine(settings)
    try:
        return await housekeeping(settings, create_sessionmaker(engine), SystemClock()).purge_once()
    finally:
        await engine.dispose()


def _run_purge_expired() -> int:
    try:
        deleted = _with_database(purge_expired())
    except _DatabaseNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for table, count in deleted.items():
        print(f"{table}: {count} deleted")
    return 0


def _run_send_emails() -> int:
    try:
        sent = _with_database(send_emails())
    except _DatabaseNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Sent {sent} email(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
