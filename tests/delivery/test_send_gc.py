"""The cyclic garbage collector during a send (sender._long_lived_frozen): what was alive before
the send is frozen out of its passes and young collections wait for a whole batch, while the send
runs; afterwards the collector is as it was, also when several sends overlap in one process."""

from __future__ import annotations

import gc
import threading

from newsletter.delivery.sender import YOUNG_THRESHOLD, _long_lived_frozen, deliver, start_send
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.db import session_scope
from tests.conftest import TEST_SECRET

WEEK = "2026-W48"


class CollectorWatchingTransport:
    """A transport double that notes the collector's state each time a batch is handed to it."""

    name = "watching"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []  # (objects frozen, young threshold) per batch

    def send(self, messages):
        self.seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))
        return [SendResult(Outcome.sent) for _ in messages]

    def close(self) -> None:
        pass


def test_a_send_runs_with_the_collector_out_of_its_way_and_leaves_it_as_it_was(sample_engine, settings):
    with session_scope(sample_engine) as session:
        for n in range(3):
            upsert_active(session, f"r{n}@example.com", "", [], "import", UpsertResult())
    issue = draft_issue(sample_engine, settings, WEEK).issue
    start_send(sample_engine, issue.id)
    gc.unfreeze()  # a plain process: nothing frozen before the send
    before = (gc.get_freeze_count(), gc.get_threshold())
    transport = CollectorWatchingTransport()
    report = deliver(sample_engine, settings, transport, TEST_SECRET, issue.id)
    assert report.sent == 3
    # The modules, mappers and compiled issue (tens of thousands of objects) were frozen.
    assert transport.seen and all(frozen > 10_000 for frozen, _ in transport.seen)
    assert all(threshold >= YOUNG_THRESHOLD for _, threshold in transport.seen)
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_overlapping_sends_restore_the_collector_only_when_the_last_ends():
    gc.unfreeze()
    before = (gc.get_freeze_count(), gc.get_threshold())
    first_in, second_done, release = threading.Event(), threading.Event(), threading.Event()
    during: list[tuple[int, int]] = []

    def first() -> None:
        with _long_lived_frozen():
            first_in.set()
            second_done.wait(10)
            during.append((gc.get_freeze_count(), gc.get_threshold()[0]))
            release.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with _long_lived_frozen():  # a second send in another thread, ending first
        pass
    second_done.set()
    release.wait(10)
    thread.join(10)
    frozen, threshold = during[0]
    assert frozen > 0 and threshold >= YOUNG_THRESHOLD  # still in force for the send that runs on
    assert (gc.get_freeze_count(), gc.get_threshold()) == before


def test_a_forked_workers_inherited_objects_stay_frozen_after_a_send():
    """delivery/pool.py freezes the warmed-up parent's objects before forking: a send must not
    unfreeze them (the next full pass would scan, and copy, every inherited page)."""
    thresholds = gc.get_threshold()
    gc.freeze()  # as the pool's parent does
    try:
        inherited = gc.get_freeze_count()
        with _long_lived_frozen():
            pass
        assert gc.get_freeze_count() >= inherited > 0
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()
