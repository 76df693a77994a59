"""Child processes: start them, pin them to a core, read /proc about them, stop them all.

Every child starts in its own session (process group), so stopping one stops
whatever it forked, and Ctrl-C in the terminal reaches only us: the `finally`
of `Processes` then stops the children in order.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

REPO_ROOT = Path(__file__).resolve().parent.parent

Popen = subprocess.Popen[bytes]


class BenchError(Exception):
    """Something broke: the run cannot produce a valid measurement."""


@dataclass(frozen=True)
class CpuPlan:
    """Which core the servers get and which the load generator gets."""

    server: int | None  # None: not pinned (a single core to share)
    load: int | None
    cores_given: int  # cores the server may use, for the bcrypt limit

    @property
    def pinned(self) -> bool:
        return self.server is not None


def plan_cpus() -> CpuPlan:
    # The CPUs we may run on, not os.cpu_count(): a container or cpuset may allow fewer.
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return CpuPlan(server=None, load=None, cores_given=1)
    if shutil.which("taskset") is None:
        raise BenchError("taskset is needed to pin the server and wrk to separate cores")
    return CpuPlan(server=allowed[0], load=allowed[1], cores_given=1)


def pinned(cpu: int | None, command: Sequence[str]) -> list[str]:
    # taskset execs the command, so the pid we get is the command's own.
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else list(command)


def child_env(extra: Mapping[str, str], drop: Sequence[str] = ()) -> dict[str, str]:
    """Our environment minus `drop`, plus `extra`, with the repository importable."""
    dropped = {name.upper() for name in drop}  # pydantic-settings ignores case
    env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Processes:
    """The children of this run; leaving the `with` block stops every one still running."""

    def __init__(self) -> None:
        self._children: list[Popen] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        stdout: int | IO[bytes] | None = None,
    ) -> Popen:
        # Commands are built here from fixed parts, never from outside input.
        process = subprocess.Popen(  # noqa: S603
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not subprocess.PIPE else subprocess.PIPE,
            start_new_session=True,
        )
        self._children.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._children):
            stop(process)
        self._children.clear()


def stop(process: Popen, grace_seconds: float = 10) -> None:
    """SIGTERM to the process group (uvicorn shuts down cleanly), SIGKILL if it lingers."""
    # Only while the leader is alive is the group certainly still ours.
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_seconds)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_checked(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, what: str, timeout: float = 300
) -> str:
    """Runs a short command to completion; its output becomes the error if it fails."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed commands
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what} took longer than {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


# --- /proc -------------------------------------------------------------------


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the peak resident set of the process since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


def process_ticks(pid: int) -> int:
    """User plus system CPU time of the process, all its threads, in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after "(comm)": state is field 3, utime 14 and stime 15 (man proc).
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return process_ticks(pid) / os.sysconf("SC_CLK_TCK")


def core_busy_ticks(cpu: int) -> int:
    """Ticks the core spent running tasks (user, nice, system), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system = (int(v) for v in line.split()[1:4])
            return user + nice + system
    raise BenchError(f"no cpu{cpu} line in /proc/stat")


@dataclass(frozen=True)
class CoreSample:
    busy: int  # ticks the core ran anything
    own: int  # ticks our server ran
    at: float  # time.monotonic()


def sample_core(cpu: int, pid: int) -> CoreSample:
    return CoreSample(core_busy_ticks(cpu), process_ticks(pid), time.monotonic())


def other_load(before: CoreSample, after: CoreSample) -> float:
    """Share of the server's core that processes other than the server used between
    two samples. The machine may be shared: a high figure means the run's
    numbers are low because of someone else, not because of the service."""
    elapsed_ticks = (after.at - before.at) * os.sysconf("SC_CLK_TCK")
    foreign = (after.busy - before.busy) - (after.own - before.own)
    return max(foreign, 0) / elapsed_ticks if elapsed_ticks > 0 else 0.0


def wait_until_idle(
    pid: int, *, busy_fraction: float = 0.05, window: float = 0.5, timeout: float = 120
) -> float:
    """Waits until the process uses under `busy_fraction` of a core; returns seconds waited.

    After a login run the server still hashes the logins queued when wrk hung
    up; measuring the next phase before they drain would charge it their CPU.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < busy_fraction * window:
            return time.monotonic() - started
    raise BenchError(f"process {pid} still busy after {timeout:.0f}s")


def child_pids(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def listening_socket_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def serves_alone(pid: int, port: int) -> bool:
    """True when `pid` holds the listening socket and has no children to hand it to.

    A uvicorn supervisor (--workers > 1, --reload) also holds the socket, but
    its workers are its children: so both conditions together name the
    process whose memory is the server's.
    """
    inodes = listening_socket_inodes(port)
    holds = any(_socket_inode(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    return holds and not child_pids(pid)


def _socket_inode(fd: Path) -> str | None:
    try:
        target = os.readlink(fd)
    except OSError:  # closed meanwhile
        return None
    if not target.startswith("socket:["):
        return None
    return target.removeprefix("socket:[").removesuffix("]")
