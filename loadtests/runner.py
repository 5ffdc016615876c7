"""The load-test runner: every (model, protocol, load level) scenario, bounded in time.

Each scenario is one Locust window (closed loop: N users; open loop: Poisson arrivals at a rate)
wrapped by two snapshots of Triton's statistics, so every record carries the server's own view
(count, queue, compute, average batch) next to the client's. ``results.json``/``results.csv`` are
rewritten after every scenario: Ctrl-C or a dead server keeps what finished, and the run ends with
the cause stated.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import locust  # noqa: F401  - gevent patches the process first

from .batches import Workload
from .closed_loop import ClosedLoopConfig, run_closed_loop
from .errors import LoadTestError, LoadTestInputError
from .open_loop import OpenLoopConfig, run_open_loop
from .record import CLOSED_BASIS, OPEN_BASIS, LoadTestRun, cross_checks
from .report import write_results
from .server_stats import delta, snapshot
from .target import TritonTarget, check_grpc_endpoint, resolve_target

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadTestConfig:
    http_url: str = "http://127.0.0.1:8000"
    grpc_url: str = "127.0.0.1:8001"
    models: tuple[str, ...] | None = None  # None: every model the server has
    protocols: tuple[str, ...] = ("http", "grpc")
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    rates: tuple[float, ...] = ()  # open loop when given (requests/s)
    duration_s: float = 15.0
    warmup_s: float = 3.0
    batch_size: int = 1
    inputs: str = "random"
    samples: dict | None = None  # model -> real held-out inputs (inputs="real")
    out: Path | None = None
    timeout_s: float = 30.0
    max_in_flight: int = 64  # open loop: the pool of users that may wait on the server

    def validate(self) -> None:
        bad = set(self.protocols) - {"http", "grpc"}
        if bad:
            raise LoadTestInputError(f"--protocols takes http,grpc; found {sorted(bad)}")
        if not self.rates and not self.concurrency:
            raise LoadTestInputError("give --concurrency levels or --rate levels")
        if any(c < 1 for c in self.concurrency) or any(r <= 0 for r in self.rates):
            raise LoadTestInputError("concurrency levels must be >= 1 and rates > 0")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise LoadTestInputError("--duration must be > 0 and --warmup >= 0")
        if self.batch_size < 1:
            raise LoadTestInputError(
                f"--batch-size is the samples per request, at least 1; got {self.batch_size}"
            )
        if self.timeout_s <= 0:
            raise LoadTestInputError(f"--timeout must be > 0 seconds; got {self.timeout_s}")


def scenarios(config: LoadTestConfig, models: list[str]):
    levels = [("open", r) for r in config.rates] or [("closed", c) for c in config.concurrency]
    for model in models:
        for protocol in config.protocols:
            for mode, level in levels:
                yield model, protocol, mode, level


def prepare_targets(config: LoadTestConfig) -> tuple[list[str], dict[str, TritonTarget]]:
    """Validate, check that every endpoint asked for answers, and read each model's tensors."""
    config.validate()
    models = list(config.models or _served_models(config.http_url))
    targets = {m: resolve_target(m, config.http_url, config.grpc_url) for m in models}
    if "grpc" in config.protocols:
        check_grpc_endpoint(config.grpc_url)
    return models, targets


def run_loadtest(config: LoadTestConfig, on_record=None) -> LoadTestRun:
    models, targets = prepare_targets(config)
    run = LoadTestRun()
    plan = list(scenarios(config, models))
    index = 0
    try:
        for index, (model, protocol, mode, level) in enumerate(plan, 1):
            log.info("scenario %d/%d: %s %s %s=%s", index, len(plan), model, protocol, mode, level)
            record = _scenario(config, targets[model], protocol, mode, level)
            run.records.append(record)
            if config.out:
                write_results(run.records, config.out)
            if on_record:
                on_record(record, index, len(plan))
            if record["errors"] and snapshot(config.http_url, model) is None:
                run.stopped_early = (
                    f"server at {config.http_url} stopped answering during scenario {index}/"
                    f"{len(plan)} ({model} {protocol}); {len(run.records)} scenario(s) kept"
                )
                break
    except KeyboardInterrupt:  # what finished is on disk already
        run.stopped_early = f"interrupted (Ctrl-C) during scenario {index}/{len(plan)}"
        run.interrupted = True
    if run.stopped_early:
        log.warning("%s", run.stopped_early)
    return run


def _scenario(config: LoadTestConfig, target: TritonTarget, protocol, mode, level) -> dict:
    samples = (config.samples or {}).get(target.model)
    workload = Workload(batch_size=config.batch_size, inputs=config.inputs, samples=samples)
    before = snapshot(config.http_url, target.model)
    started = time.time()
    if mode == "closed":
        result = run_closed_loop(target, ClosedLoopConfig(
            protocol, level, config.duration_s, config.warmup_s, workload, config.timeout_s))  # fmt: skip
    else:
        result = run_open_loop(target, OpenLoopConfig(
            protocol, level, config.max_in_flight, config.duration_s, config.warmup_s, workload,
            timeout_s=config.timeout_s))  # fmt: skip
    record = result.to_dict() | delta(before, snapshot(config.http_url, target.model))
    record["started_at"] = started
    record["latency_basis"] = CLOSED_BASIS if mode == "closed" else OPEN_BASIS
    return record | cross_checks(record)


def _served_models(http_url: str) -> list[str]:
    import json
    import urllib.request

    request = urllib.request.Request(f"{http_url.rstrip('/')}/v2/repository/index", data=b"{}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            index = json.loads(response.read())
    except OSError as exc:
        raise LoadTestInputError(
            f"no Triton answers at {http_url} ({exc}); check --url, or start one with "
            "'servebench serve'"
        ) from exc
    models = sorted(m["name"] for m in index if m.get("state") == "READY")
    if not models:
        raise LoadTestError(f"the server at {http_url} has no READY model")
    return models


def real_samples(repo: Path, model: str):
    """Held-out inputs for ``model``, preprocessed with its recorded recipe (from the repo)."""
    from exporters.repository import read_sidecar
    from models.checkpoint import read_checkpoint
    from models.datasets import Preprocess, load_dataset

    sidecar = read_sidecar(Path(repo) / model)
    checkpoint = sidecar.get("provenance", {}).get("checkpoint_dir")
    if not checkpoint:
        raise LoadTestInputError(
            f"{model}: servebench.json records no checkpoint_dir; use --inputs random"
        )
    info = read_checkpoint(checkpoint)
    pre = Preprocess.from_dict(sidecar["preprocess"])
    return pre.apply(load_dataset(info.data, pre.image_size, seed=info.seed).test_images)
