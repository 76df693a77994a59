"""The SMTP server the benchmarked service sends its mail to.

With ENV=prod the service refuses the console backend, so it sends through
`smtp` as in production: to this aiosmtpd server, in a thread of the bench
process, which accepts every message and only counts them. Started on first
use and stopped when the bench exits.
"""

import atexit
import socket
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_HOST = "127.0.0.1"


class _Counter:
    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self._lock:
            self.received += 1
        return "250 OK"


_counter = _Counter()
_controller: Controller | None = None


def smtp_port() -> int:
    """The sink's port, starting it on the first call."""
    global _controller
    if _controller is None:
        controller = Controller(_counter, hostname=_HOST, port=_free_port())
        controller.start()
        atexit.register(controller.stop)
        _controller = controller
    return int(_controller.port)


def received() -> int:
    """Messages accepted so far."""
    return _counter.received


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port
