"""Exact percentiles, Little's law, records and the Poisson schedule, on synthetic raw samples."""

import math

import numpy as np
import pytest

from loadtests.cpu import CpuUsage
from loadtests.errors import LoadTestInputError
from loadtests.record import RunInfo, build_record
from loadtests.samples import SampleCollector, Samples
from loadtests.schedule import ArrivalSchedule
from loadtests.stats import littles_law_concurrency, summarize_latencies

MS = 1_000_000  # ns


def _samples(scheduled, sent, end, kinds=None) -> Samples:
    kinds_array = np.empty(len(end), dtype=object)
    kinds_array[:] = kinds if kinds is not None else [None] * len(end)
    as_ns = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return Samples(as_ns(scheduled), as_ns(sent), as_ns(end), kinds_array)


def _closed_loop_samples(users: int, latency_ms: float, duration_s: float) -> Samples:
    """Each user sends back to back: request k of a user runs [k*lat, (k+1)*lat)."""
    per_user = int(duration_s * 1000 / latency_ms)
    starts = np.concatenate([np.arange(per_user) * latency_ms * MS for _ in range(users)])
    ends = starts + latency_ms * MS
    return _samples(starts, starts, ends)


def _info(mode="closed", users=4, batch_size=1, **kwargs) -> RunInfo:
    return RunInfo("m", "grpc", mode, users, batch_size, "random", 1.0, **kwargs)


def test_summarize_latencies_equals_numpy_percentiles_when_given_raw_ns():
    latencies = np.random.default_rng(1).lognormal(mean=16, sigma=0.6, size=5001).astype(np.int64)
    summary = summarize_latencies(latencies)
    expected = np.percentile(latencies / 1e6, [50, 90, 95, 99])
    got = [summary.p50_ms, summary.p90_ms, summary.p95_ms, summary.p99_ms]
    assert got == pytest.approx(expected, rel=1e-12)
    assert summary.max_ms == pytest.approx(latencies.max() / 1e6)
    assert summary.mean_ms == pytest.approx(latencies.mean() / 1e6)
    assert summary.count == 5001


def test_summarize_latencies_keeps_sub_millisecond_detail_when_locust_would_round():
    latencies = np.array([1_400_000, 1_600_000, 1_450_000, 1_550_000])  # 1.40..1.60 ms
    summary = summarize_latencies(latencies)
    assert summary.p50_ms == pytest.approx(1.5)
    assert summary.max_ms == pytest.approx(1.6)


def test_summarize_latencies_returns_nan_when_there_are_no_samples():
    summary = summarize_latencies(np.array([], dtype=np.int64))
    assert summary.count == 0
    assert math.isnan(summary.p99_ms) and math.isnan(summary.mean_ms)


def test_littles_law_gives_requests_in_flight_when_given_throughput_and_mean_latency():
    assert littles_law_concurrency(400.0, 0.020) == pytest.approx(8.0)
    assert littles_law_concurrency(50.0, 0.020) == pytest.approx(1.0)


def test_build_record_finds_full_concurrency_when_users_overlap():
    window = _closed_loop_samples(users=4, latency_ms=10, duration_s=1.0)
    record = build_record(_info(users=4, batch_size=8), window, 1.0, CpuUsage(10.0, 5.0))
    assert record.requests == 400 and record.errors == 0
    assert record.throughput_req_per_s == pytest.approx(400.0)
    assert record.throughput_infer_per_s == pytest.approx(3200.0)
    assert record.mean_ms == pytest.approx(10.0)
    assert record.littles_law_concurrency == pytest.approx(4.0)
    assert record.concurrency_ratio == pytest.approx(1.0)
    assert record.late_share is None and not record.client_saturated


def test_build_record_exposes_serialized_users_when_they_take_turns():
    """4 'users' that really run one at a time: 100 req/s of 10 ms is one in flight, not four."""
    window = _closed_loop_samples(users=1, latency_ms=10, duration_s=1.0)
    record = build_record(_info(users=4), window, 1.0, CpuUsage(10.0, 95.0))
    assert record.littles_law_concurrency == pytest.approx(1.0)
    assert record.concurrency_ratio == pytest.approx(0.25)
    assert record.client_saturated


def test_build_record_counts_errors_by_kind_and_keeps_them_out_of_percentiles_when_some_fail():
    ok_end = [10 * MS, 20 * MS, 30 * MS]
    window = _samples(
        [0, 10 * MS, 20 * MS, 30 * MS, 31 * MS],
        [0, 10 * MS, 20 * MS, 30 * MS, 31 * MS],
        [*ok_end, 31 * MS, 2_000 * MS],
        [None, None, None, "http_500", "grpc_UNAVAILABLE"],
    )
    record = build_record(_info(), window, 1.0, CpuUsage(1.0, 1.0), {"user_error:KeyError": 2})
    assert record.requests == 3
    assert record.errors_by_kind == {"http_500": 1, "grpc_UNAVAILABLE": 1, "user_error:KeyError": 2}
    assert record.errors == 4
    assert record.max_ms == pytest.approx(10.0)


def test_build_record_counts_late_sends_from_the_schedule_when_open_loop():
    scheduled = np.arange(10) * 10 * MS
    sent = scheduled + np.array([0, 1, 2, 0, 0, 8, 20, 0, 0, 0]) * MS  # 2 sent > 5 ms late
    end = sent + 5 * MS
    record = build_record(
        _info(mode="open", users=16, target_rate_rps=100.0, late_threshold_ms=5.0),
        _samples(scheduled, sent, end),
        0.1,
        CpuUsage(1.0, 1.0),
    )
    assert record.late_share == pytest.approx(0.2)
    assert record.concurrency_ratio is None
    # latency counts from the schedule: the 20 ms late send shows up as 25 ms
    assert record.max_ms == pytest.approx(25.0)


def test_collector_keeps_raw_times_when_the_request_event_fires():
    """Called as Locust's events.request calls its listeners (locust itself is not imported
    here: it would monkey-patch the whole test process)."""
    collector = SampleCollector()
    context = {"scheduled_ns": 1, "sent_ns": 2, "end_ns": 7, "error_kind": None}
    collector.on_request(
        request_type="gRPC", name="m", response_time=0.0, response_length=0, context=context
    )
    collector.on_request(request_type="HTTP", name="x", response_time=1.0, context={})  # not ours
    collector.on_user_error(user_instance=None, exception=KeyError("k"), tb=None)
    samples = collector.samples()
    assert len(samples) == 1
    assert samples.latency_ns.tolist() == [6]
    assert collector.user_errors == {"user_error:KeyError": 1}


def test_schedule_arrives_at_the_target_rate_when_taken_in_order():
    schedule = ArrivalSchedule(200.0, seed=3, start_ns=0)
    slots = [schedule.take() for _ in range(4000)]
    assert all(b >= a for a, b in zip(slots, slots[1:], strict=False))
    count = schedule.count_between(0, 10 * 10**9)  # 10 s at 200/s: 2000 +- 3 sigma (~134)
    assert abs(count - 2000) < 134
    gaps = np.diff(slots) / 1e9
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential: CV = 1


def test_schedule_counts_arrivals_nobody_took_when_the_window_ends_later():
    schedule = ArrivalSchedule(100.0, seed=0, start_ns=0)
    assert schedule.count_between(0, 10**9) > 50  # no take() needed


def test_schedule_refuses_when_rate_is_not_positive():
    with pytest.raises(LoadTestInputError, match="rate"):
        ArrivalSchedule(0.0)
