"""Distributed load: a Locust master in this process, N local worker processes, one record each.

``run_distributed(config, workers)`` runs the scenarios of ``run_loadtest`` and writes records with
the same keys, but the load comes from ``workers`` processes running the locustfile
(``locust -f loadtests/locustfile.py --worker``), with the users spread over them by Locust's
dispatcher. The master passes the locustfile's own options (``--model``, ``--protocol``, ...)
through Locust's ``parsed_options``, plus ``servebench_*`` ones (the open-loop rate, the timeout).

How a window is measured across processes (custom messages, no clock shared between hosts):

1. the master spawns the users and waits out the warm-up;
2. it sends ``servebench_window`` ``start``, sleeps the duration, sends ``end``; each worker stamps
   the markers with its own ``perf_counter_ns`` on arrival, so every worker measures the same
   window in its own clock (both edges arrive with the same delay, a few ms at most);
3. open loop: each worker has its own Poisson schedule at rate / workers (a sum of independent
   Poisson processes is Poisson at the sum of the rates), waits for the window's arrivals to come
   back (``drain_s``) and says ``servebench_drained``;
4. the master stops the test: users finish the request they are in (up to ``STOP_GRACE_S``, then
   they are killed), so no request the server counted is lost to the client's count; at
   ``test_stop`` each worker sends ``servebench_samples``: its raw times relative to its window
   start, error kinds, user errors and CPU use;
5. the master merges every worker's samples and builds the record: exact percentiles over all
   requests, ``client_inference_count`` over all workers' whole runs (for the server cross-check).
   ``client_cpu_percent``/``client_loop_cpu_percent`` are the busiest worker's, ``client_saturated``
   is true when any worker was saturated.

The worker side (``attach_worker``) is hooked up by the locustfile on every Locust worker, so the
same workers also serve a plain ``locust -f loadtests/locustfile.py --master`` (which sends no
window markers: the workers then send nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
import locust  # noqa: F401  - gevent patches the process first
import numpy as np
from locust import argument_parser
from locust.env import Environment
from locust.runners import MasterRunner

from .cpu import CpuMeter, CpuUsage
from .errors import LoadTestError, LoadTestInputError
from .open_loop import OpenLoopConfig
from .record import CLOSED_BASIS, OPEN_BASIS, RunInfo, build_record, cross_checks
from .report import write_results
from .runner import (
    LoadTestConfig,
    LoadTestRun,
    prepare_targets,
    scenarios,
)
from .samples import SampleCollector, Samples
from .schedule import ArrivalSchedule
from .server_stats import delta, snapshot
from .target import TritonTarget

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
MSG_WINDOW = "servebench_window"
MSG_DRAINED = "servebench_drained"
MSG_SAMPLES = "servebench_samples"
CONNECT_TIMEOUT_S = 90.0  # workers import locust, numpy and grpc: seconds on a busy machine
READY_TIMEOUT_S = 30.0  # between scenarios, workers report ready again after stopping
SAMPLES_TIMEOUT_S = 20.0
# at stop, users finish the request they are in (so the client's count meets the server's) for
# up to this long, then are killed; each worker also waits this long before it is ready again
STOP_GRACE_S = 1.0
QUIT_TIMEOUT_S = 5.0  # then SIGTERM (Locust shuts down gracefully on it), then SIGKILL
POLL_S = 0.05


# -- worker side -------------------------------------------------------------------------------
class _WorkerWindow:
    """One worker's view of the master's measurement windows (see the module docstring)."""

    def __init__(self, environment) -> None:
        self.environment = environment
        self.collector = SampleCollector().attach(environment.events)
        self.scenario: str | None = None
        self.schedule: ArrivalSchedule | None = None
        self.t0 = self.t1 = None
        self.meter: CpuMeter | None = None
        self.cpu: CpuUsage | None = None

    def on_test_start(self, environment, **_kwargs) -> None:
        """After the locustfile's own ``test_start``: the open-loop schedule, the timeout."""
        options = environment.parsed_options
        self.collector.clear()
        self.scenario = getattr(options, "servebench_scenario", None)
        self.schedule, self.t0, self.t1, self.meter, self.cpu = None, None, None, None, None
        if self.scenario is None or not environment.user_classes:
            return  # a plain Locust master: nothing to do beyond the locustfile
        user_class = environment.user_classes[0]
        setup = user_class.setup
        if setup is None:
            return  # the locustfile could not configure the users; they report it themselves
        rate = options.servebench_rate
        if rate:
            index = max(environment.runner.worker_index, 0)
            self.schedule = ArrivalSchedule(
                rate / options.servebench_workers, seed=options.seed + index
            )
        user_class.setup = dataclasses.replace(
            setup, schedule=self.schedule, timeout_s=options.servebench_timeout_s
        )

    def on_window(self, environment, msg, **_kwargs) -> None:
        now = time.perf_counter_ns()  # first: the stamp of the marker's arrival
        if msg.data["scenario"] != self.scenario:
            log.warning("window marker for scenario %s during %s", msg.data, self.scenario)
            return
        if msg.data["edge"] == "start":
            self.t0 = now
            self.meter = CpuMeter()
            self.meter.start()
        else:
            self.t1 = now
            self.cpu = self.meter.stop() if self.meter else None
            if self.schedule is not None:
                gevent.spawn(self._drain, msg.data["drain_s"])

    def _drain(self, drain_s: float) -> None:
        """Open loop: wait (bounded) for the window's scheduled requests to come back."""
        expected = self.schedule.count_between(self.t0, self.t1)
        deadline = time.monotonic() + drain_s
        while self._done_in_window() < expected and time.monotonic() < deadline:
            gevent.sleep(POLL_S)
        self.environment.runner.send_message(MSG_DRAINED, {"scenario": self.scenario})

    def _done_in_window(self) -> int:
        scheduled = self.collector.samples().scheduled_ns
        return int(np.count_nonzero((scheduled >= self.t0) & (scheduled < self.t1)))

    def on_test_stop(self, environment, **_kwargs) -> None:
        if self.scenario is None or self.t0 is None:
            return  # no window was measured here (plain Locust master, or stopped early)
        report = _encode_report(self, self.collector.samples())
        environment.runner.send_message(MSG_SAMPLES, report)
        self.scenario = None


def attach_worker(environment) -> None:
    """Register the worker side on a Locust worker's environment (the locustfile's ``init``)."""
    window = _WorkerWindow(environment)
    environment.events.test_start.add_listener(window.on_test_start)
    environment.events.test_stop.add_listener(window.on_test_stop)
    environment.runner.register_message(MSG_WINDOW, window.on_window)


def _encode_report(window: _WorkerWindow, samples: Samples) -> dict:
    """Times relative to this worker's window start (clock-free), as int64 bytes for msgpack."""
    t1 = window.t1 if window.t1 is not None else time.perf_counter_ns()
    failed = [i for i, kind in enumerate(samples.error_kind) if kind is not None]
    cpu = window.cpu or CpuUsage(0.0, 0.0)
    expected = window.schedule.count_between(window.t0, t1) if window.schedule else None
    return {
        "scenario": window.scenario,
        "duration_ns": int(t1 - window.t0),
        "scheduled": (samples.scheduled_ns - window.t0).astype("<i8").tobytes(),
        "sent": (samples.sent_ns - window.t0).astype("<i8").tobytes(),
        "end": (samples.end_ns - window.t0).astype("<i8").tobytes(),
        "failed_index": failed,
        "failed_kind": [samples.error_kind[i] for i in failed],
        "user_errors": dict(window.collector.user_errors),
        "cpu": [cpu.process_percent, cpu.loop_percent],
        "expected": expected,
    }


# -- master side: merging the workers' reports -------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Merged:
    window: Samples  # in-window samples of every worker, times relative to each window start
    duration_s: float  # the workers' mean window length
    cpu: CpuUsage  # the busiest worker's
    extra_errors: dict[str, int]
    ok_requests: int  # over the whole run (warm-up and drain included), every worker


def decode_samples(report: dict) -> Samples:
    arrays = [
        np.frombuffer(report[k], dtype="<i8").astype(np.int64) for k in ("scheduled", "sent", "end")
    ]
    kinds = np.full(arrays[0].size, None, dtype=object)
    for index, kind in zip(report["failed_index"], report["failed_kind"], strict=True):
        kinds[index] = kind
    return Samples(*arrays, error_kind=kinds)


def merge_reports(reports: list[dict], mode: str) -> Merged:
    """Closed loop: requests that ended in the window; open loop: those scheduled in it."""
    windows, extra, ok = [], {}, 0
    for report in reports:
        samples = decode_samples(report)
        ok += int(samples.ok.sum())
        stamp = samples.end_ns if mode == "closed" else samples.scheduled_ns
        in_window = samples.select((stamp >= 0) & (stamp < report["duration_ns"]))
        windows.append(in_window)
        for kind, count in report["user_errors"].items():
            extra[kind] = extra.get(kind, 0) + count
        if report["expected"] is not None and report["expected"] > len(in_window):
            extra["unfinished"] = extra.get("unfinished", 0) + report["expected"] - len(in_window)
    window = Samples(*(np.concatenate([getattr(w, f) for w in windows]) for f in _FIELDS))
    cpu = CpuUsage(max(r["cpu"][0] for r in reports), max(r["cpu"][1] for r in reports))
    duration_s = float(np.mean([r["duration_ns"] for r in reports])) / 1e9
    return Merged(window, duration_s, cpu, extra, ok)


_FIELDS = ("scheduled_ns", "sent_ns", "end_ns", "error_kind")


# -- master side: the workers and the scenarios ------------------------------------------------
class _Master:
    """The master runner, its worker processes and the reports they send back."""

    def __init__(self, workers: int, log_dir: Path) -> None:
        self.workers = workers
        self.log_dir = log_dir
        self.environment = Environment(
            user_classes=[], parsed_options=_base_options(), stop_timeout=STOP_GRACE_S
        )
        self.runner: MasterRunner = self.environment.create_master_runner(
            master_bind_host="127.0.0.1", master_bind_port=0
        )
        self.port = self.runner.server.port
        self.inbox: dict[tuple[str, str], dict[str, dict]] = {}
        self.procs: list[subprocess.Popen] = []
        for msg_type in (MSG_DRAINED, MSG_SAMPLES):
            self.runner.register_message(msg_type, self._on_message)

    def _on_message(self, environment, msg, **_kwargs) -> None:
        self.inbox.setdefault((msg.type, msg.data["scenario"]), {})[msg.node_id] = msg.data

    def start_workers(self) -> None:
        from serving.process import die_with_parent_hook

        env = os.environ | {"PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                   "--master-host", "127.0.0.1", "--master-port", str(self.port)]  # fmt: skip
        for index in range(self.workers):
            with open(self.log_dir / f"worker-{index}.log", "wb") as out:
                self.procs.append(subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, cwd=ROOT, start_new_session=True,  # Ctrl-C reaches the master only
                    preexec_fn=die_with_parent_hook()))  # fmt: skip
        log.info("%d locust workers started (master 127.0.0.1:%d)", self.workers, self.port)
        self.wait_ready(CONNECT_TIMEOUT_S)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Every worker connected and idle; raises (naming the logs) when one is gone."""
        deadline = time.monotonic() + timeout_s
        while len(self.runner.clients.ready) < self.workers:
            self.check_alive(with_logs=True)
            if time.monotonic() > deadline:
                raise LoadTestError(
                    f"{len(self.runner.clients.ready)}/{self.workers} locust workers ready "
                    f"after {timeout_s:.0f} s; see {self.log_dir}/worker-*.log\n{self._log_tail()}"
                )
            gevent.sleep(POLL_S)

    def check_alive(self, with_logs: bool = False) -> None:
        dead = [f"worker {i} (pid {p.pid}) exited with {p.returncode}"
                for i, p in enumerate(self.procs) if p.poll() is not None]  # fmt: skip
        if dead:
            tail = f"\n{self._log_tail()}" if with_logs else ""
            raise LoadTestError(f"{'; '.join(dead)}; see {self.log_dir}/worker-*.log{tail}")

    def wait_spawned(self, users: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Locust's start() waits 1 s for the workers' reports; many users may take longer."""
        deadline = time.monotonic() + timeout_s
        while self.runner.user_count != users:
            self.check_alive()
            if time.monotonic() > deadline:
                raise LoadTestError(
                    f"{self.runner.user_count}/{users} users running on the workers after "
                    f"{timeout_s:.0f} s; see {self.log_dir}/worker-*.log"
                )
            gevent.sleep(POLL_S)

    def loaded_workers(self) -> set[str]:
        return {c.id for c in self.runner.clients.all if sum(c.user_classes_count.values()) > 0}

    def wait_for(self, msg_type: str, scenario: str, senders: set[str], timeout_s: float) -> dict:
        """The ``msg_type`` reports of ``scenario`` by worker; raises when one does not come."""
        deadline = time.monotonic() + timeout_s
        while not senders <= set(self.inbox.get((msg_type, scenario), {})):
            self.check_alive()
            if time.monotonic() > deadline:
                got = len(self.inbox.get((msg_type, scenario), {}))
                raise LoadTestError(
                    f"{got}/{len(senders)} workers sent {msg_type} for scenario {scenario} "
                    f"within {timeout_s:.0f} s; see {self.log_dir}/worker-*.log"
                )
            gevent.sleep(POLL_S)
        reports = self.inbox.pop((msg_type, scenario), {})
        return {k: v for k, v in reports.items() if k in senders}

    def stop(self) -> None:
        """Quit the workers (bounded: terminate, then kill) and close the master socket."""
        try:
            self.runner.quit()
        finally:
            self.runner.server.close(linger=0)
            deadline = time.monotonic() + QUIT_TIMEOUT_S
            for proc in self.procs:
                _end(proc, max(deadline - time.monotonic(), 0.1))

    def _log_tail(self, chars: int = 2000) -> str:
        tails = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            tails.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)


def _end(proc: subprocess.Popen, timeout_s: float) -> None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("locust worker %d did not quit in time; terminating it", proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _base_options() -> argparse.Namespace:
    """Locust's defaults (no config file read); the scenario adds the locustfile's options."""
    return argparse.Namespace(**argument_parser.default_args_dict())


def run_distributed(config: LoadTestConfig, workers: int, on_record=None) -> LoadTestRun:
    """``run_loadtest`` with the load generated by ``workers`` local Locust worker processes."""
    if workers < 1:
        raise LoadTestInputError(f"--workers must be >= 1, got {workers}")
    if config.rates and config.max_in_flight < workers:
        raise LoadTestInputError(
            f"the open loop spreads {config.max_in_flight} in-flight users over {workers} workers; "
            "pass fewer --workers"
        )
    models, targets = prepare_targets(config)
    plan = list(scenarios(config, models))
    run = LoadTestRun()
    with tempfile.TemporaryDirectory(prefix="servebench-workers-") as scratch:
        log_dir = (config.out / "workers") if config.out else Path(scratch)
        log_dir.mkdir(parents=True, exist_ok=True)
        master = None
        try:
            master = _Master(workers, log_dir)
            master.start_workers()
            for index, (model, protocol, mode, level) in enumerate(plan, 1):
                log.info("scenario %d/%d: %s %s %s=%s (%d workers)",
                         index, len(plan), model, protocol, mode, level, workers)  # fmt: skip
                samples_path = _samples_file(config, model, Path(scratch))
                try:
                    record = _scenario(master, config, targets[model], protocol, mode, level,
                                       f"{index}", samples_path)  # fmt: skip
                except KeyboardInterrupt:
                    run.stopped_early = f"interrupted (Ctrl-C) during scenario {index}/{len(plan)}"
                    run.interrupted = True
                    break
                except LoadTestError as exc:
                    run.stopped_early = f"scenario {index}/{len(plan)} failed: {exc}"
                    break
                _keep(run, record, config, on_record, index, len(plan))
                if record["errors"] and snapshot(config.http_url, model) is None:
                    run.stopped_early = (
                        f"server at {config.http_url} stopped answering during scenario {index}/"
                        f"{len(plan)} ({model} {protocol}); {len(run.records)} scenario(s) kept"
                    )
                    break
        except KeyboardInterrupt:
            run.stopped_early = "interrupted (Ctrl-C) while starting the workers"
            run.interrupted = True
        finally:
            if master is not None:
                master.stop()
    if run.stopped_early:
        log.warning("%s", run.stopped_early)
    return run


def _keep(run: LoadTestRun, record: dict, config: LoadTestConfig, on_record, index, total) -> None:
    run.records.append(record)
    if config.out:
        write_results(run.records, config.out)
    if on_record:
        on_record(record, index, total)


def _samples_file(config: LoadTestConfig, model: str, scratch: Path) -> str:
    """Real inputs travel to the local workers as a .npy file (the locustfile's --samples)."""
    if config.inputs != "real":
        return ""
    samples = (config.samples or {}).get(model)
    if samples is None:
        raise LoadTestInputError(f"inputs 'real' needs held-out samples for {model}; none given")
    path = scratch / f"{model}.npy"
    if not path.exists():
        np.save(path, samples)
    return str(path)


def _scenario(master: _Master, config: LoadTestConfig, target: TritonTarget, protocol: str,
              mode: str, level, scenario: str, samples_path: str) -> dict:  # fmt: skip
    open_loop = OpenLoopConfig(protocol, level, config.max_in_flight) if mode == "open" else None
    users = level if mode == "closed" else config.max_in_flight
    master.wait_ready()
    _configure(master, config, target, protocol, scenario, samples_path, open_loop)
    before = snapshot(config.http_url, target.model)
    started = time.time()
    reports = _drive(master, config, users, scenario, open_loop)
    after = snapshot(config.http_url, target.model)
    merged = merge_reports(list(reports.values()), mode)
    info = RunInfo(
        model=target.model, protocol=protocol, mode=mode, users=users,
        batch_size=config.batch_size, inputs=config.inputs, warmup_s=config.warmup_s,
        target_rate_rps=level if open_loop else None,
        late_threshold_ms=open_loop.late_threshold_ms if open_loop else None,
    )  # fmt: skip
    record = build_record(info, merged.window, merged.duration_s, merged.cpu, merged.extra_errors,
                          merged.ok_requests * config.batch_size).to_dict()  # fmt: skip
    record |= delta(before, after)
    record["started_at"] = started
    record["latency_basis"] = CLOSED_BASIS if mode == "closed" else OPEN_BASIS
    return record | cross_checks(record)


def _configure(master: _Master, config: LoadTestConfig, target: TritonTarget, protocol: str,
               scenario: str, samples_path: str, open_loop: OpenLoopConfig | None) -> None:  # fmt: skip
    """The user class to dispatch, and the options the workers get with their spawn message."""
    from .locustfile import USER_CLASSES  # the class names the workers run (master only)

    master.environment.user_classes[:] = [USER_CLASSES[protocol]]
    master.environment.host = target.http_url
    vars(master.environment.parsed_options).update(
        # the locustfile's own options
        model=target.model, protocol=protocol, batch_size=config.batch_size, inputs=config.inputs,
        samples=samples_path, grpc_url=target.grpc_url, seed=0,
        # ours, read by _WorkerWindow.on_test_start
        servebench_scenario=scenario, servebench_workers=master.workers,
        servebench_rate=open_loop.rate_rps if open_loop else None,
        servebench_timeout_s=config.timeout_s,
    )  # fmt: skip


def _drive(master: _Master, config: LoadTestConfig, users: int, scenario: str,
           open_loop: OpenLoopConfig | None) -> dict[str, dict]:  # fmt: skip
    """Spawn, warm up, mark the window, drain (open loop), stop: every loaded worker's report."""
    runner = master.runner
    try:
        runner.start(users, spawn_rate=users)
        master.wait_spawned(users)
        gevent.sleep(config.warmup_s)
        senders = master.loaded_workers()
        runner.send_message(MSG_WINDOW, {"scenario": scenario, "edge": "start"})
        gevent.sleep(config.duration_s)
        drain_s = open_loop.drain_s if open_loop else 0.0
        runner.send_message(MSG_WINDOW, {"scenario": scenario, "edge": "end", "drain_s": drain_s})
        if open_loop:
            master.wait_for(MSG_DRAINED, scenario, senders, drain_s + SAMPLES_TIMEOUT_S)
    finally:
        runner.stop()  # the workers send their samples at test_stop, before reporting stopped
    return master.wait_for(MSG_SAMPLES, scenario, senders, SAMPLES_TIMEOUT_S)
