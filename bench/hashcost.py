"""Median time of one bcrypt verify, as the service does it (passlib, given rounds).

bench.run runs this as a subprocess pinned to the server's core, so the figure
is what one login costs there, measured in the same run as the logins:

    python -m bench.hashcost --rounds 12 --samples 10   # prints JSON
"""

import argparse
import json
import secrets
import statistics
import time

from passlib.context import CryptContext


def verify_times_ms(rounds: int, samples: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU times of `samples` verifies.

    The CPU time is what the core spent; a wall time well above it means
    another process shared the core meanwhile, and the wall figure is inflated.
    """
    context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
    password = secrets.token_urlsafe(16)
    hashed = context.hash(password)
    context.verify(password, hashed)  # the first call loads the backend: not timed
    wall, cpu = [], []
    for _ in range(samples):
        started, started_cpu = time.perf_counter(), time.thread_time()
        if not context.verify(password, hashed):
            raise RuntimeError("bcrypt verify refused the right password")
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hashcost")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args(argv)
    wall, cpu = verify_times_ms(args.rounds, args.samples)
    result = {
        "rounds": args.rounds,
        "median_ms": statistics.median(wall),
        "cpu_median_ms": statistics.median(cpu),
        "samples_ms": [round(t, 2) for t in wall],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
