"""Audit events: what happened to which account, and who did it.

Fields are ids and names of events, never emails, passwords, hashes or tokens.
Logged through the standard library, so the infrastructure decides the format.
"""

import logging

_log = logging.getLogger("app.audit")


def audit(event: str, **ids: object) -> None:
    _log.info(event, extra={"event": event, **{k: str(v) for k, v in ids.items()}})
