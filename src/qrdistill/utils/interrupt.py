"""Ctrl-C that lets a loop stop at a boundary of its own choosing.

    with StopRequest("finishing step 12, then saving a checkpoint") as stop:
        for step in ...:
            do_step()
            if stop.requested:
                save(); raise KeyboardInterrupt

The first SIGINT only sets `requested` (and logs `what`); a second one raises KeyboardInterrupt
at once, the usual convention for "I really mean it". The handler is installed only on the main
thread (Python delivers signals there; elsewhere this is a no-op that never requests a stop)
and the previous handler is restored on exit.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


class StopRequest:
    def __init__(self, what: str):
        self.what = what
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
        self.requested = True
        log.warning("interrupted: %s (Ctrl-C again to stop at once)", self.what)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
