"""Ctrl-C held over a short critical section: a file is written whole, then the interruption
stops the run."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["held_interrupt"]


@contextlib.contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) until the block ends, then deliver it (``KeyboardInterrupt``).

    Only the main thread receives signals, so elsewhere (or where the handler cannot be set)
    the block simply runs. Use it around writes that must not be cut halfway: Python raises
    ``KeyboardInterrupt`` wherever it happens to be, and a half-closed archive then turns the
    interruption into an unrelated error.

    Examples
    --------
    >>> import os, signal
    >>> before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own
    >>> try:
    ...     with held_interrupt():
    ...         os.kill(os.getpid(), signal.SIGINT)  # arrives here ...
    ...         print("the write finishes")
    ... except KeyboardInterrupt:
    ...     print("... and stops the run afterwards")
    the write finishes
    ... and stops the run afterwards
    >>> _ = signal.signal(signal.SIGINT, before)

    A process that ignores SIGINT (started in the background) goes on ignoring it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except (ValueError, TypeError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt
