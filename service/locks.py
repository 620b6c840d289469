"""A readers-writer lock for the in-memory Matcher.

Suggestions only read the Matcher and may run side by side; a live update (one profile
re-embedded, one edge added) must see no reader mid-way and no other writer. Writers are
preferred: once one waits, new readers queue behind it, so a steady stream of suggestion
requests cannot starve an update.

The price of that preference: a writer waiting behind a long reader holds up every new reader for
as long. So no request holds the read lock for longer than one lookup or one suggestion; long
work (a matching round) runs on a snapshot (ServiceState.snapshot) and takes no lock at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writer and self._writers_waiting == 0)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if self._readers == 0:
                    self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            try:
                self._condition.wait_for(lambda: not self._writer and self._readers == 0)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._condition:
                self._writer = False
                self._condition.notify_all()
