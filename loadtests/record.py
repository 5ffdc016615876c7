"""LoadRecord: the numbers of one (model, protocol, load level) measurement window."""

from __future__ import annotations

import dataclasses

import numpy as np

from .cpu import CpuUsage
from .samples import Samples
from .stats import littles_law_concurrency, summarize_latencies

# What a record's latencies are measured from, stated in every record and in the report.
CLOSED_BASIS = "closed loop: from actual send; a server stall delays sends and is hidden"
OPEN_BASIS = "open loop: from scheduled send; a server stall shows in full"

COUNT_TOLERANCE = 0.01  # client and server inference counts further apart are flagged
CLIENT_BOUND_CPU = 90.0  # load-generator CPU percent from which a scenario is client-bound


@dataclasses.dataclass(frozen=True)
class LoadRecord:
    model: str
    protocol: str  # http | grpc
    mode: str  # closed | open
    concurrency: int  # closed: concurrent users; open: the pool of users that may be in flight
    batch_size: int
    inputs: str  # real | random
    warmup_s: float
    duration_s: float  # the measured window, as measured
    requests: int  # successful requests counted in the window
    errors: int
    errors_by_kind: dict[str, int]
    throughput_req_per_s: float  # successful requests per second
    throughput_infer_per_s: float  # inferences (samples) per second = requests/s x batch_size
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    littles_law_concurrency: float  # Little's law: completions/s x mean latency (s), failures too
    concurrency_ratio: float | None  # closed loop: measured / configured (~1: truly concurrent)
    rate: float | None  # open loop: the target arrival rate, requests/s
    late_share: float | None  # open loop: share of requests sent > late_threshold_ms after schedule
    late_threshold_ms: float | None
    client_inference_count: int  # successful inferences over the whole run (warm-up included),
    # to compare with the server's inference count over the same run
    client_cpu_percent: float  # load generator process; 100 = one core
    client_loop_cpu_percent: float  # its gevent loop thread
    client_saturated: bool  # the loop thread was always busy: the numbers describe the client

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What was run, as the record states it."""

    model: str
    protocol: str
    mode: str
    users: int
    batch_size: int
    inputs: str
    warmup_s: float
    target_rate_rps: float | None = None
    late_threshold_ms: float | None = None


def build_record(
    info: RunInfo,
    window: Samples,
    duration_s: float,
    cpu: CpuUsage,
    extra_errors: dict[str, int] | None = None,
    client_inferences: int = 0,
) -> LoadRecord:
    """Summarize the samples that belong to one measurement window.

    ``client_inferences``: successful inferences over the whole run, for the server cross-check.
    """
    ok = window.ok
    latency_ns = window.latency_ns
    summary = summarize_latencies(latency_ns[ok])
    errors_by_kind = window.errors_by_kind()
    for kind, count in (extra_errors or {}).items():
        errors_by_kind[kind] = errors_by_kind.get(kind, 0) + count
    throughput = int(ok.sum()) / duration_s
    mean_all_s = float(latency_ns.mean()) / 1e9 if len(window) else 0.0
    concurrency = littles_law_concurrency(len(window) / duration_s, mean_all_s)
    return LoadRecord(
        model=info.model,
        protocol=info.protocol,
        mode=info.mode,
        concurrency=info.users,
        batch_size=info.batch_size,
        inputs=info.inputs,
        warmup_s=info.warmup_s,
        duration_s=duration_s,
        requests=int(ok.sum()),
        errors=sum(errors_by_kind.values()),
        errors_by_kind=errors_by_kind,
        throughput_req_per_s=throughput,
        throughput_infer_per_s=throughput * info.batch_size,
        mean_ms=summary.mean_ms,
        p50_ms=summary.p50_ms,
        p90_ms=summary.p90_ms,
        p95_ms=summary.p95_ms,
        p99_ms=summary.p99_ms,
        max_ms=summary.max_ms,
        littles_law_concurrency=concurrency,
        concurrency_ratio=concurrency / info.users if info.mode == "closed" else None,
        rate=info.target_rate_rps,
        late_share=_late_share(window, info.late_threshold_ms),
        late_threshold_ms=info.late_threshold_ms,
        client_inference_count=client_inferences,
        client_cpu_percent=cpu.process_percent,
        client_loop_cpu_percent=cpu.loop_percent,
        client_saturated=cpu.saturated,
    )


def _late_share(window: Samples, threshold_ms: float | None) -> float | None:
    if threshold_ms is None:
        return None
    if len(window) == 0:
        return float("nan")
    late = (window.sent_ns - window.scheduled_ns) > threshold_ms * 1e6
    return float(np.count_nonzero(late)) / len(window)


@dataclasses.dataclass
class LoadTestRun:
    records: list[dict] = dataclasses.field(default_factory=list)
    stopped_early: str = ""  # why the run ended before its last scenario
    interrupted: bool = False  # it ended on Ctrl-C

    @property
    def complete(self) -> bool:
        return not self.stopped_early

    @property
    def failed_scenarios(self) -> list[dict]:
        """Scenarios in which not one request succeeded: their figures measure nothing."""
        return [r for r in self.records if r.get("all_failed")]


def counts_apart(record: dict) -> bool:
    """The server's inference count is off the client's by more than 1%, beyond the requests the
    client stopped waiting for: those still in flight when a closed loop's users stop (up to one
    per user) and an open loop's unfinished sends may still be run by the server."""
    server, client = record.get("server_inference_count"), record.get("client_inference_count")
    if server is None or client is None:
        return False
    if record.get("mode") == "closed":
        unawaited = record.get("concurrency") or 0
    else:
        unawaited = (record.get("errors_by_kind") or {}).get("unfinished", 0)
    slack = COUNT_TOLERANCE * max(client, 1)
    high = client + unawaited * (record.get("batch_size") or 1)
    return server < client - slack or server > high + slack


def cross_checks(record: dict) -> dict:
    """Cross-checks: counts apart, client the bottleneck, or nothing succeeded at all."""
    mismatch = counts_apart(record)
    all_failed = record.get("requests", 0) == 0 and record.get("errors", 0) > 0
    busy = (
        record.get("client_saturated")
        or (record.get("client_cpu_percent") or 0) >= CLIENT_BOUND_CPU
    )
    return {
        "count_mismatch": bool(mismatch),
        "client_bound": bool(busy) and not all_failed,  # failing at once is not a client limit
        "all_failed": all_failed,
    }
