"""The service as it was at an earlier commit, served beside today's for one comparison.

`make bench` states GET /users/me against the service before the session
check (issue 9) in the same run: the commit is checked out into a scratch git
worktree, migrated by its own Alembic on a database of its own (a SQLite file,
or a scratch PostgreSQL database beside BENCH_DB_URL's), and started with the
same production settings, pinned to the same core. Its code runs in our
virtualenv: a baseline must need nothing today's lock does not install.
"""

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from app.config import Settings
from bench.database import Database, drop_database, recreate_database
from bench.procs import REPO_ROOT, BenchError, Processes, child_env, run_checked
from bench.servers import Server, service_env, start_uvicorn

# The last commit before sessions and refresh tokens: me_rps without the session check.
BEFORE_SESSIONS = "51f040c"


@dataclass(frozen=True)
class Baseline:
    rev: str
    tree: Path
    database: Database


@contextmanager
def checked_out(rev: str, workdir: Path, database: Database) -> Iterator[Baseline]:
    """A worktree of `rev` and a migrated database of its own beside `database`;
    both removed on exit."""
    tree = workdir / f"baseline-{rev}"
    _git("worktree", "add", "--detach", str(tree), rev)
    own: Database | None = None
    try:
        own = _own_database(database, workdir)
        env = child_env({"DB_URL": own.url}, drop=list(Settings.model_fields))
        env["PYTHONPATH"] = str(tree)  # its `app`, not ours
        run_checked(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            env=env,
            cwd=tree,
            what=f"alembic upgrade head of {rev}",
        )
        yield Baseline(rev, tree, own)
    finally:
        if own is not None and own.backend == "postgresql":
            drop_database(_admin(database), make_url(own.url).database or "")
        _git("worktree", "remove", "--force", str(tree))


def serve(
    processes: Processes, baseline: Baseline, bcrypt_rounds: int, workdir: Path, cpu: int | None
) -> Server:
    env = service_env(baseline.database.url, bcrypt_rounds)
    env["PYTHONPATH"] = str(baseline.tree)
    return start_uvicorn(
        processes,
        f"baseline-{baseline.rev}",
        ["app.main:create_app", "--factory", "--app-dir", str(baseline.tree)],
        env=env,
        workdir=workdir,
        cpu=cpu,
    )


def _own_database(database: Database, workdir: Path) -> Database:
    if database.backend == "postgresql":
        name = f"{make_url(database.url).database}_baseline"
        return recreate_database(_admin(database), name)
    return Database(f"sqlite+aiosqlite:///{workdir / 'baseline.db'}")


def _admin(database: Database) -> Database:
    url = make_url(database.url).set(database="postgres")
    return Database(url.render_as_string(hide_password=False))


def _git(*args: str) -> None:
    git = shutil.which("git")
    if git is None:
        raise BenchError("git is needed to check out the baseline (or pass --baseline none)")
    run_checked([git, *args], env=child_env({}), cwd=REPO_ROOT, what=f"git {args[0]} {args[1]}")
