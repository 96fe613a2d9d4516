"""Counts kept in memory per process until a flusher writes them to the database in one statement.

The vendor client counts every API call it makes per account (a configured source) in `CALLS`;
connectors never touch the database (it is a layer above), so `events.counts` drains the tallies into
the per-source, per-hour counters that quotas are checked against. Each count is filed under the UTC
hour it happened in, so a late flush never moves it to another hour.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

HOUR_S = 3600


class Tally:
    """Thread-safe counts by (key, UTC hour as unix hours)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()
        self._clock = clock

    def add(self, key: str, n: int = 1) -> None:
        hour = int(self._clock() // HOUR_S)
        with self._lock:
            self._counts[(key, hour)] += n

    def drain(self) -> dict[tuple[str, int], int]:
        """Everything counted since the last drain; the tally starts again from nothing."""
        with self._lock:
            taken, self._counts = self._counts, Counter()
        return dict(taken)

    def restore(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Put back counts a flush could not write (they go with the next one)."""
        with self._lock:
            self._counts.update(counts)


CALLS = Tally()  # vendor API calls by account (source)
