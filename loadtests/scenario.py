"""Drive one Locust Environment through spawn, warm-up and one measurement window."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import gevent
import locust  # noqa: F401  - gevent monkey-patches here, before grpc or sockets load
from locust.env import Environment

from .cpu import CpuMeter, CpuUsage
from .errors import LoadTestInputError
from .samples import SampleCollector, Samples
from .users import TritonUser

log = logging.getLogger(__name__)
POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class WindowResult:
    samples: Samples  # every request seen, warm-up and drain included
    t0_ns: int  # the measurement window [t0, t1), perf_counter_ns
    t1_ns: int
    cpu: CpuUsage
    user_errors: dict[str, int]  # exceptions that escaped a task

    @property
    def duration_s(self) -> float:
        return (self.t1_ns - self.t0_ns) / 1e9


def run_window(
    user_class: type[TritonUser],
    users: int,
    warmup_s: float,
    duration_s: float,
    drained: Callable[[SampleCollector, int, int], bool] | None = None,
    drain_s: float = 0.0,
) -> WindowResult:
    """Spawn ``users`` at once, discard ``warmup_s``, measure ``duration_s``, stop.

    ``drained(collector, t0, t1)``, if given, is polled for up to ``drain_s`` after the window
    (the open loop waits for the window's requests to come back).
    """
    if users < 1 or duration_s <= 0 or warmup_s < 0:
        raise LoadTestInputError(
            f"need users >= 1, duration > 0 and warm-up >= 0; got {users}, {duration_s}, {warmup_s}"
        )
    env = Environment(user_classes=[user_class], host=user_class.host)
    collector = SampleCollector().attach(env.events)
    runner = env.create_local_runner()
    meter = CpuMeter()
    try:
        runner.start(users, spawn_rate=users)
        runner.spawning_greenlet.join()
        log.debug("%d %s users spawned; warming up %.1f s", users, user_class.__name__, warmup_s)
        gevent.sleep(warmup_s)
        meter.start()
        t0 = time.perf_counter_ns()
        gevent.sleep(duration_s)
        t1 = time.perf_counter_ns()
        cpu = meter.stop()
        deadline = time.monotonic() + drain_s
        while (
            drained is not None and not drained(collector, t0, t1) and time.monotonic() < deadline
        ):
            gevent.sleep(POLL_S)
    finally:
        runner.quit()
    return WindowResult(collector.samples(), t0, t1, cpu, dict(collector.user_errors))
