"""Closed loop: N users, each sending its next request as soon as the last one returns."""

from __future__ import annotations

import dataclasses

from .batches import Workload
from .record import LoadRecord, RunInfo, build_record
from .scenario import run_window
from .target import TritonTarget
from .users import UserSetup, user_class_for


@dataclasses.dataclass(frozen=True)
class ClosedLoopConfig:
    protocol: str  # http | grpc
    users: int
    duration_s: float = 5.0
    warmup_s: float = 1.0
    workload: Workload = Workload()
    timeout_s: float = 30.0


def run_closed_loop(target: TritonTarget, config: ClosedLoopConfig) -> LoadRecord:
    """Measure one closed-loop load level; requests that complete in the window count."""
    setup = UserSetup.build(target, config.workload, timeout_s=config.timeout_s)
    result = run_window(
        user_class_for(config.protocol, setup), config.users, config.warmup_s, config.duration_s
    )
    samples = result.samples
    in_window = samples.select((samples.end_ns >= result.t0_ns) & (samples.end_ns < result.t1_ns))
    info = RunInfo(
        model=target.model,
        protocol=config.protocol,
        mode="closed",
        users=config.users,
        batch_size=config.workload.batch_size,
        inputs=config.workload.inputs,
        warmup_s=config.warmup_s,
    )
    inferences = int(samples.ok.sum()) * config.workload.batch_size
    return build_record(
        info, in_window, result.duration_s, result.cpu, result.user_errors, inferences
    )
