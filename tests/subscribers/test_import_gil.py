"""The switch interval a bulk import sets (bulk_import._quick_gil_handover) is process-wide: the
first import running sets it, the last restores it, whatever order overlapping imports end in
(outside review: A's end restored 5 ms under B, and B's end then left 1 ms for good)."""

import sys

from newsletter.subscribers import bulk_import
from newsletter.subscribers.importing import import_csv


def test_overlapping_imports_leave_the_switch_interval_as_they_found_it():
    before = sys.getswitchinterval()
    a, b = bulk_import._quick_gil_handover(), bulk_import._quick_gil_handover()
    a.__enter__()
    b.__enter__()
    assert sys.getswitchinterval() == bulk_import.IMPORT_SWITCH_SECONDS
    a.__exit__(None, None, None)  # A ends first: B still runs at 1 ms
    assert sys.getswitchinterval() == bulk_import.IMPORT_SWITCH_SECONDS
    b.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_a_real_import_restores_it(sample_engine):
    before = sys.getswitchinterval()
    report = import_csv(sample_engine, "email\na@example.com\nb@example.com\n", categories=[])
    assert report.created == 2 and sys.getswitchinterval() == before
