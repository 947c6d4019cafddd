"""A daemon thread in the web process that sleeps until woken or its interval passes, and stops
cleanly: what the transactional sender (delivery/background.py) and the import runner
(subscribers/import_runner.py) share. Top-level so both packages may import it (layering).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class WakeableThread:
    """`wake` ends the current sleep early; `stop` ends the loop; `shutdown` waits up to 30 s."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=target, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.wake.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=30)
