"""Throughput work yields the CPU to latency work on a shared host (issue 18 point 4).

A send keeps every core busy for as long as it runs; a signup or an unsubscribe must answer in
milliseconds meanwhile. `newsletter worker` and the transactional sender process of `newsletter
serve` lower their own scheduling priority (`[delivery] nice`), so the kernel runs the web first
whenever both want a core, and the send gets every cycle the web leaves. On an idle host nice
changes nothing: a niced process that has the CPU to itself runs as fast as before.
Top-level so delivery/ and web/ may both use it (layering).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> int:
    """Raise this process's nice value to `nice` (never lower it: an operator's `nice -n 15
    newsletter worker` stays 15); the value in force afterwards.

    Linux keeps a nice value per thread and new threads inherit the creator's, so this must run
    before the process starts its threads (heartbeat, pools) and its child processes: it then
    covers all of them. 0 leaves the priority alone."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= current:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:  # a sandbox may forbid it; the work still gets done, only not yielding
        log.warning("could not lower the process priority to nice %d: %s", nice, exc)
        return current
    return nice
