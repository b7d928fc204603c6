"""SIGINT and SIGTERM end a run promptly, keep what it recorded, and leave nothing running.

Inside :func:`interruptible`, either signal raises :class:`Interrupted` in the main thread, so
the run's ``finally`` blocks mark the run folder ``interrupted`` and stop the Ray they started.
Ray's blocking calls check for signals, so this works while the driver waits on a round (Ray
re-raises it there as a plain ``KeyboardInterrupt``: the block's :class:`Signals` record says
which signal it was). If the
process is still alive ``grace_s`` after the first signal (something refuses to return), or a
second signal arrives, a watchdog kills this process's children and exits at once with
128 + the signal number: a run can always be stopped, never only by SIGKILL.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal asked the run to stop; ``exit_status`` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def kill_children() -> None:
    """Kills every process this one started (Ray's, above all), children first."""
    import psutil

    for child in reversed(psutil.Process().children(recursive=True)):
        try:
            child.kill()
        except psutil.Error:
            pass


class Signals:
    """The signals received inside an :func:`interruptible` block, in order."""

    def __init__(self) -> None:
        self.received: list[int] = []

    @property
    def exit_status(self) -> int:
        """128 + the first signal's number (130 for Ctrl-C when none was recorded)."""
        return 128 + (self.received[0] if self.received else signal.SIGINT)


@contextmanager
def interruptible(grace_s: float = 10.0) -> Iterator[Signals]:
    """Turns SIGINT / SIGTERM into :class:`Interrupted` while the block runs (main thread only)."""
    signals = Signals()
    received = signals.received

    def hard_exit() -> None:
        kill_children()
        os._exit(128 + received[0])

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            hard_exit()
        watchdog = threading.Timer(grace_s, hard_exit)
        watchdog.daemon = True
        watchdog.start()
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield signals
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
