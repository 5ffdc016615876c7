"""Open loop: Poisson arrivals at a target rate, latency counted from the scheduled send time.

A pool of ``max_in_flight`` users takes arrival slots from one shared schedule; a user sleeps
until its slot and sends. When the server stalls, the users are all busy, sends go out late and
their latency (from the schedule, not from the send) shows the stall; ``late_share`` says how
often the generator could not keep the schedule. Requests are counted by scheduled time; those
scheduled in the window that never completed are errors of kind ``unfinished``.
"""

from __future__ import annotations

import dataclasses

from .batches import Workload
from .record import LoadRecord, RunInfo, build_record
from .samples import SampleCollector
from .scenario import run_window
from .schedule import ArrivalSchedule
from .target import TritonTarget
from .users import UserSetup, user_class_for


@dataclasses.dataclass(frozen=True)
class OpenLoopConfig:
    protocol: str  # http | grpc
    rate_rps: float
    max_in_flight: int = 64
    duration_s: float = 5.0
    warmup_s: float = 1.0
    workload: Workload = Workload()
    late_threshold_ms: float = 5.0
    drain_s: float = 5.0
    seed: int = 0
    timeout_s: float = 30.0


def run_open_loop(target: TritonTarget, config: OpenLoopConfig) -> LoadRecord:
    schedule = ArrivalSchedule(config.rate_rps, seed=config.seed)
    setup = UserSetup.build(target, config.workload, schedule=schedule, timeout_s=config.timeout_s)

    def drained(collector: SampleCollector, t0: int, t1: int) -> bool:
        samples = collector.samples()
        done = (samples.scheduled_ns >= t0) & (samples.scheduled_ns < t1)
        return int(done.sum()) >= schedule.count_between(t0, t1)

    result = run_window(
        user_class_for(config.protocol, setup),
        config.max_in_flight,
        config.warmup_s,
        config.duration_s,
        drained=drained,
        drain_s=config.drain_s,
    )
    samples = result.samples
    in_window = samples.select(
        (samples.scheduled_ns >= result.t0_ns) & (samples.scheduled_ns < result.t1_ns)
    )
    unfinished = schedule.count_between(result.t0_ns, result.t1_ns) - len(in_window)
    extra = dict(result.user_errors) | ({"unfinished": unfinished} if unfinished > 0 else {})
    info = RunInfo(
        model=target.model,
        protocol=config.protocol,
        mode="open",
        users=config.max_in_flight,
        batch_size=config.workload.batch_size,
        inputs=config.workload.inputs,
        warmup_s=config.warmup_s,
        target_rate_rps=config.rate_rps,
        late_threshold_ms=config.late_threshold_ms,
    )
    inferences = int(samples.ok.sum()) * config.workload.batch_size
    return build_record(info, in_window, result.duration_s, result.cpu, extra, inferences)
