"""CPU seconds per process group, read from /proc while a send runs, and per tenth of the send.

The issue's budget is CPU per delivered message of each process group (our worker processes, the
PostgreSQL backends serving them, the sink), the one figure that does not depend on how busy a
shared machine is. A sampler reads /proc/PID/stat of every process of each group every half
second, with the number of messages delivered so far; `per_tenth` then gives the CPU per message
over each tenth of the send, to show whether the cost stays flat as the outbox fills with sent rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, kernel_only: bool = False) -> float | None:
    """User + system CPU seconds of one process (all its threads) so far, or only the system
    (kernel) part; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[12]) + (0 if kernel_only else int(fields[11]))) / TICK


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, …)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                kids = [int(k) for k in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


@dataclass
class Group:
    """The processes `pids()` names, each counted from the first time it is seen (`fresh`: from 0,
    for processes started for the send; else from that first reading)."""

    pids: Callable[[], list[int]]
    fresh: bool = True
    kernel_only: bool = False
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def read(self) -> float:
        for pid in self.pids():
            value = proc_cpu(pid, self.kernel_only)
            if value is None:
                continue
            self.first.setdefault(pid, 0.0 if self.fresh else value)
            self.last[pid] = value
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


@dataclass
class Machine:
    """The whole machine's CPU seconds (all CPUs) since the first reading, from /proc/stat: `kind`
    "busy" (user, nice, system, irq, softirq: every process, ours or not) or "steal" (time the
    hypervisor gave to other guests while this one wanted to run). On a shared virtual machine
    they tell whether a dearer stretch of a send met a busier machine."""

    kind: str = "busy"
    first: float | None = None

    def read(self) -> float:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        value = (steal if self.kind == "steal" else user + nice + system + irq + softirq) / TICK
        if self.first is None:
            self.first = value
        return value - self.first


@dataclass
class Sampler:
    """(seconds, messages so far, CPU seconds per group) every time `sample` is called."""

    groups: dict[str, Group | Machine]
    delivered: Callable[[], int]
    samples: list[tuple[float, int, dict[str, float]]] = field(default_factory=list)

    def sample(self, at: float) -> None:
        self.samples.append((at, self.delivered(), {name: group.read() for name, group in self.groups.items()}))

    def totals(self) -> dict[str, float]:
        return self.samples[-1][2] if self.samples else {}


def _at(samples: list, count: float) -> dict[str, float]:
    """CPU per group when `count` messages were delivered (linear between samples)."""
    previous = samples[0]
    for sample in samples[1:]:
        if sample[1] >= count:
            span = sample[1] - previous[1]
            share = (count - previous[1]) / span if span else 1.0
            return {name: previous[2][name] + share * (sample[2][name] - previous[2][name]) for name in sample[2]}
        previous = sample
    return dict(previous[2])


def per_tenth(samples: list[tuple[float, int, dict[str, float]]], total: int) -> list[dict[str, float]]:
    """Per tenth of `total` messages: microseconds of CPU per message of each group."""
    if len(samples) < 2 or total <= 0:
        return []
    tenths = []
    for k in range(10):
        low, high = _at(samples, total * k / 10), _at(samples, total * (k + 1) / 10)
        tenths.append({name: 1e6 * (high[name] - low[name]) / (total / 10) for name in high})
    return tenths
