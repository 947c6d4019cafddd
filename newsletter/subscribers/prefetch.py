"""Chunks of an iterator made one step ahead, on a thread of their own.

Why: `subscribers import` judges a chunk of rows (parsing, validation: Python) and then merges it
(staging COPY and set-based statements: mostly PostgreSQL's time, during which this process only
waits, without the GIL). One after the other, the import's wall time was the sum of both, about
equal halves at a million rows. With the next chunk judged while the database merges this one,
the two overlap on a machine's second core.

Order, errors and memory are as before: chunks come in order; an exception raised while making
one (a file that cannot be read) is raised by the consumer at that chunk, with its own type; the
next chunk is begun only once the consumer has taken the previous one, so at most two exist at
a time (the one in hand and the one being made or waiting). A consumer that stops early (a
database error) stops the thread before its next chunk.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
_END = object()


def chunks_ahead(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """`list(islice(items, size))` until empty, each made on a worker thread while the caller
    works on the previous one."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    turn = threading.Semaphore(1)  # one chunk made ahead: the next begins when the consumer takes it

    def make() -> None:
        try:
            while _acquire(turn, stop):
                chunk = list(islice(items, size))
                if not chunk:
                    break
                _put(ready, stop, chunk)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(ready, stop, exc)
            return
        _put(ready, stop, _END)

    thread = threading.Thread(target=make, name="import-chunks", daemon=True)
    thread.start()
    try:
        while True:
            got = ready.get()
            turn.release()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        while thread.is_alive():  # let a blocked put go through, so the thread sees `stop`
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _acquire(turn: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for the producer's turn; False once the consumer has gone."""
    while not stop.is_set():
        if turn.acquire(timeout=0.1):
            return not stop.is_set()
    return False


def _put(ready: queue.Queue, stop: threading.Event, item: object) -> None:
    """Put unless the consumer has gone (then drop it)."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
