from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LoginThrottle(Protocol):
    """Counts password attempts per normalised username, for every process alike.

    The rule, for a limit M (`LOGIN_MAX_FAILURES`) and a lockout L seconds
    (`LOGIN_LOCKOUT_SECONDS`):

    - An attempt is counted as a failure *before* its password is checked
      (`reserve`), in one atomic step that also decides whether it may be
      checked, so however many attempts arrive at once, on however many
      processes, at most M passwords are checked in a window.
    - A window opens at the first attempt counted when none is open and lasts
      L seconds (a fixed window, not a sliding one): an attempt at or after
      its end opens a new window with a count of one.
    - The M-th attempt of a window locks the username for L seconds from that
      moment. While locked, every attempt is refused, whatever its password,
      with the whole seconds left (at least 1); refused attempts are not
      checked and do not extend the lock.
    - A correct password (`reset`) forgets the count and lifts the lock. An
      attempt that could not be checked (no hashing capacity) is given back
      (`release`).
    - Within one process, attempts for one username run `one_at_a_time`, from
      reserving to the outcome: each sees the one before succeed or fail, so
      simultaneous logins of one account do not use up its limit, and a
      burst for one username holds one hashing thread, not all of them.
    """

    def one_at_a_time(self, username: str) -> AbstractAsyncContextManager[None]:
        """Waits until no other attempt for `username` is in its block here;
        raises HashingBusy when that takes as long as a hashing slot may."""
        ...

    async def reserve(self, username: str) -> int | None:
        """Counts an attempt. None: check its password; else the seconds until
        the lock ends, and the password must not be checked."""
        ...

    async def release(self, username: str) -> None:
        """Gives back an attempt `reserve` allowed but that was never checked."""
        ...

    async def reset(self, username: str) -> None: ...
