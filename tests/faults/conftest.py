"""A throwaway PostgreSQL cluster that tests stop, start and restart at will.

Made with the server binaries of the machine (initdb, pg_ctl) in a scratch
directory, on a free port of 127.0.0.1 only, trust authentication, and
settings chosen for speed (no fsync, small buffers). Without binaries the
tests are skipped, except with CI=true, where that fails the run.

initdb refuses to run as root: under root the cluster belongs to the
`postgres` OS user and every command runs through `runuser -u postgres --`.
"""

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command

from tests.conftest import IN_CI, alembic_config
from tests.server_process import free_ports

PG_USER = "postgres"  # the OS user that owns the cluster when we are root
PG_CTL_TIMEOUT_SECONDS = 30


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live: PG_BIN_DIR, the newest
    /usr/lib/postgresql/*/bin (Debian, Ubuntu), or pg_config --bindir."""
    candidates: list[Path] = []
    if explicit := os.environ.get("PG_BIN_DIR"):
        candidates.append(Path(explicit))

    def version(path: Path) -> tuple[int, ...]:
        number = path.parent.name
        return tuple(int(p) for p in number.split(".") if p.isdigit())

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


@dataclass
class Cluster:
    bin_dir: Path
    root: Path  # owned by the cluster's user, removed afterwards
    port: int
    as_postgres: bool  # commands run as the `postgres` OS user (we are root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def argv(self, *args: str) -> list[str]:
        argv = [str(self.bin_dir / args[0]), *args[1:]]
        if not self.as_postgres:
            return argv
        if runuser := shutil.which("runuser"):
            return [runuser, "-u", PG_USER, "--", *argv]
        return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def run(self, *args: str, timeout: float = PG_CTL_TIMEOUT_SECONDS) -> str:
        argv = self.argv(*args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                f"server log:\n{self.server_log()[-4000:]}"
            )
        return done.stdout

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def init(self) -> None:
        self.run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "40",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def pg_ctl(self, action: str, *options: str) -> None:
        self.run(
            "pg_ctl", action, "--pgdata", str(self.data), "--log", str(self.log), "-w", *options
        )

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "immediate") -> None:
        self.pg_ctl("restart", "-m", mode)

    def is_running(self) -> bool:
        argv = self.argv("pg_ctl", "status", "--pgdata", str(self.data))
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _hand_to_postgres_user(root: Path) -> bool:
    """Under root, gives `root` to the postgres OS user; True if commands must run as it."""
    if os.geteuid() != 0:
        return False
    try:
        owner = pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.fail(f"running as root, initdb needs the {PG_USER!r} OS user", pytrace=False)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    return True


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A running, migrated scratch cluster; tests may stop it but must leave it started."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        message = "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires them", pytrace=False)
        pytest.skip(f"{message} (CI=true makes this a failure)")
    # Not under pytest's tmp dir: that is private to root, and the cluster's
    # user must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="pg-faults-"))
    root.chmod(0o700)
    (port,) = free_ports(1)
    cluster = Cluster(bin_dir, root, port, as_postgres=False)
    try:
        cluster.as_postgres = _hand_to_postgres_user(root)
        cluster.init()
        cluster.start()
        command.upgrade(alembic_config(cluster.url), "head")
        yield cluster
    finally:
        if cluster.data.exists() and cluster.is_running():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
