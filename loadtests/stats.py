"""Exact latency statistics from raw per-request times, and Little's law.

Locust's own percentiles are rounded into buckets; these are numpy's percentiles (linear
interpolation) over the raw ``time.perf_counter_ns()`` samples.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

PERCENTILES = (50, 90, 95, 99)
NS_PER_MS = 1e6


@dataclasses.dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize_latencies(latencies_ns: np.ndarray) -> LatencySummary:
    """Mean, p50/p90/p95/p99 and max in milliseconds; NaN everywhere when there are none."""
    values = np.asarray(latencies_ns, dtype=np.float64) / NS_PER_MS
    if values.size == 0:
        return LatencySummary(0, *([math.nan] * 6))
    p50, p90, p95, p99 = np.percentile(values, PERCENTILES)
    return LatencySummary(
        count=int(values.size),
        mean_ms=float(values.mean()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=float(values.max()),
    )


def littles_law_concurrency(throughput_rps: float, mean_latency_s: float) -> float:
    """L = lambda x W: the mean number of requests in flight the measurements imply."""
    return throughput_rps * mean_latency_s
