"""Operator commands: `python -m app.cli create-admin --email E --name N`."""

import argparse
import asyncio
import getpass
import os
import sys

from sqlalchemy.exc import OperationalError, ProgrammingError

from app.config import get_settings
from app.core.dtos import RegisterInput, UserDTO
from app.core.exceptions import DomainError
from app.core.usecases.create_admin import CreateAdmin
from app.infra.clock import SystemClock
from app.infra.db.engine import DatabaseUnavailable, create_engine, create_sessionmaker
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher


async def create_admin(email: str, name: str, password: str) -> UserDTO:
    settings = get_settings()
    engine = create_engine(settings)
    hasher = BcryptPasswordHasher(settings.BCRYPT_ROUNDS, 1, settings.HASH_QUEUE_TIMEOUT_SECONDS)
    try:
        usecase = CreateAdmin(SqlUserUnitOfWork(create_sessionmaker(engine)), hasher, SystemClock())
        return await usecase.execute(RegisterInput(email, password, name))
    finally:
        hasher.close()
        await engine.dispose()


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
    args = parser.parse_args(argv)

    password = _read_password()
    try:
        user = asyncio.run(create_admin(args.email, args.name, password))
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OperationalError, ProgrammingError) as exc:
        print(f"error: database not ready ({exc.orig}); run `make migrate` first", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"error: database unavailable ({exc}); is it running?", file=sys.stderr)
        return 1
    print(f"Created admin {user.email}")
    print(user.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
