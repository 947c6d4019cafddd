"""chunks_ahead: the chunks of an iterator made on a thread one step ahead, in order, with the
maker's errors raised at the consumer and the thread gone when the consumer stops early."""

from __future__ import annotations

import threading

import pytest

from newsletter.subscribers.prefetch import chunks_ahead


def test_the_chunks_come_in_order_and_whole():
    assert list(chunks_ahead(iter(range(10)), 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(chunks_ahead(iter([]), 4)) == []


def test_they_are_made_on_another_thread_while_the_caller_works():
    makers: set[str] = set()
    step = threading.Event()

    def items():
        for n in range(6):
            makers.add(threading.current_thread().name)
            if n == 3:  # the second chunk is being made while the caller holds the first
                step.set()
            yield n

    chunks = chunks_ahead(items(), 3)
    assert next(chunks) == [0, 1, 2]
    assert step.wait(5)
    assert list(chunks) == [[3, 4, 5]]
    assert makers == {"import-chunks"}


def test_an_error_while_making_a_chunk_is_raised_at_that_chunk_with_its_own_type():
    def items():
        yield from range(5)
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    chunks = chunks_ahead(items(), 2)
    assert next(chunks) == [0, 1] and next(chunks) == [2, 3]
    with pytest.raises(UnicodeDecodeError):
        next(chunks)


def _counted(count: int, made: list[int]):
    """0 … count-1, each noted in `made` as it is made."""
    for n in range(count):
        made.append(n)
        yield n


def test_no_more_than_one_chunk_is_made_ahead_of_the_one_in_hand():
    made: list[int] = []
    chunks = chunks_ahead(_counted(100, made), 10)
    assert next(chunks) == list(range(10))
    deadline = threading.Event()
    deadline.wait(0.5)  # time enough for the thread to run ahead, if it would
    assert len(made) == 20  # this chunk and the next, and no third begun
    assert next(chunks) == list(range(10, 20))
    deadline.wait(0.5)
    assert len(made) == 30
    chunks.close()


def test_a_consumer_that_stops_early_leaves_no_thread_behind():
    made: list[int] = []
    before = threading.active_count()
    with pytest.raises(RuntimeError):
        for chunk in chunks_ahead(_counted(1000, made), 10):
            raise RuntimeError(f"the database refused chunk {chunk[0]}")
    assert threading.active_count() == before
    assert len(made) <= 20  # the chunk in hand and the one made ahead: never a third
