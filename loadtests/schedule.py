"""Poisson arrivals for the open loop: a seeded, shared timeline of scheduled send times."""

from __future__ import annotations

import time

import numpy as np

from .errors import LoadTestInputError


class ArrivalSchedule:
    """Exponential gaps at ``rate_rps`` from ``start_ns``; users take slots in order.

    Users run in one gevent loop, so ``take`` needs no lock. The whole timeline is kept, so the
    number of arrivals in any window is known even when no user was free to take them.
    """

    def __init__(self, rate_rps: float, seed: int = 0, start_ns: int | None = None):
        if not rate_rps > 0:
            raise LoadTestInputError(f"the open-loop rate must be > 0 requests/s, got {rate_rps}")
        self.rate_rps = rate_rps
        self._rng = np.random.default_rng(seed)
        self._mean_gap_ns = 1e9 / rate_rps
        self._last_ns = float(time.perf_counter_ns() if start_ns is None else start_ns)
        self._slots: list[int] = []
        self._taken = 0

    def take(self) -> int:
        """The next scheduled send time (perf_counter_ns)."""
        if self._taken == len(self._slots):
            self._extend()
        slot = self._slots[self._taken]
        self._taken += 1
        return slot

    def count_between(self, t0_ns: int, t1_ns: int) -> int:
        """How many arrivals the schedule puts in [t0, t1), taken or not."""
        while not self._slots or self._slots[-1] < t1_ns:
            self._extend()
        slots = np.asarray(self._slots)
        return int(np.count_nonzero((slots >= t0_ns) & (slots < t1_ns)))

    def _extend(self, count: int = 1024) -> None:
        gaps = self._rng.exponential(self._mean_gap_ns, count)
        times = self._last_ns + np.cumsum(gaps)
        self._last_ns = float(times[-1])
        self._slots.extend(int(t) for t in times)
