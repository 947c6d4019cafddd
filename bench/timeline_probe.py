"""Run `python -m newsletter ARGS…` with probes: each process writes a line at each step of the
worker's start and send (wall seconds since WV_TIMELINE_T0, the process's CPU seconds), to the
file WV_TIMELINE_OUT. Run by path (`python bench/timeline_probe.py worker …`), so that it works
for another source tree on PYTHONPATH too (bench/start_timeline.py --baseline).

How: an import hook wraps the named functions of a module when it is first imported, so every
import happens when and where the product does it (nothing is imported ahead to wrap it). A
forked worker process writes its own lines; its CPU clock starts at its fork.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import runpy
import sys
import time

T0 = float(os.environ["WV_TIMELINE_T0"])
OUT = os.environ["WV_TIMELINE_OUT"]
EACH = int(os.environ.get("WV_TIMELINE_EACH", "1"))  # lines per function and process (calls after: none)

# module: [(class or None, function)]: what each step of a worker's start and send calls
STEPS = {
    "newsletter.cli.common": [("State", "engine")],  # settings and the schema check
    "newsletter.delivery.pool": [(None, "run_workers"), (None, "warm_parent"), (None, "_child")],
    "newsletter.delivery.worker": [(None, "run_worker"), (None, "_one_pass")],
    "newsletter.delivery.transports": [(None, "make_transport")],
    "newsletter.delivery.heartbeat": [("Heartbeat", "__enter__")],
    "newsletter.delivery.wakeup": [("Wakeup", "wait")],
    "newsletter.delivery.sender": [(None, "start_in"), (None, "_prepare"), (None, "_claim"), (None, "_send"),
                                   (None, "_finish")],
}
IMPORTS = ("newsletter.cli", "newsletter.config.loading", "newsletter.db", "newsletter.delivery.pool")
_calls: dict[str, int] = {}


def mark(label: str) -> None:
    with open(OUT, "a") as out:
        out.write(f"{os.getpid()}\t{time.time() - T0:.4f}\t{time.process_time():.4f}\t{label}\n")


def _wrapped(name: str, function):
    @functools.wraps(function)
    def probe(*args, **kwargs):
        count = _calls[name] = _calls.get(name, 0) + 1
        if count > EACH:
            return function(*args, **kwargs)
        mark(f"{name} start")
        try:
            return function(*args, **kwargs)
        finally:
            mark(f"{name} end")
    return probe


class _Hook(importlib.abc.MetaPathFinder):
    """After a probed module's body ran: its steps wrapped, and a line that it is imported."""

    def find_spec(self, name, path, target=None):
        if name not in STEPS and name not in IMPORTS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for owner, attr in STEPS.get(name, []):
                target = getattr(module, owner) if owner else module
                setattr(target, attr, _wrapped(attr, getattr(target, attr)))
            mark(f"imported {name}")

        spec.loader.exec_module = exec_module
        return spec


if __name__ == "__main__":
    # the process's start: its creation time from /proc is coarse (clock ticks); the launcher's
    # clock is T0, so the first line says how long the interpreter took to get here
    mark("interpreter ready")
    sys.path[0:1] = []  # this file's folder is not the product's
    sys.meta_path.insert(0, _Hook())
    sys.argv = ["newsletter", *sys.argv[1:]]
    runpy.run_module("newsletter", run_name="__main__", alter_sys=True)
