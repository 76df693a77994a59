"""Writes a development .env from .env.example with a fresh random JWT secret.

Leaves an existing .env alone: it may hold settings someone chose.
"""

import secrets
import sys
from pathlib import Path

EXAMPLE_SECRET = "change-me-to-a-random-string-of-at-least-32-characters"  # noqa: S105


def main() -> int:
    env, example = Path(".env"), Path(".env.example")
    if env.exists():
        return 0
    text = example.read_text()
    if EXAMPLE_SECRET not in text:
        print(".env.example no longer holds the example secret", file=sys.stderr)
        return 1
    env.write_text(text.replace(EXAMPLE_SECRET, secrets.token_urlsafe(48)))
    env.chmod(0o600)
    print("Wrote .env with a random JWT_SECRET_KEY (development settings).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
