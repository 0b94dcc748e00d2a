"""Process signal helpers shared by the long-running CLI commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def interrupt_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM (`docker stop`, `kill`) end a command like Ctrl-C, so it cleans up.

    Returns the function that restores the previous handler. Outside the main thread
    (where signal handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
