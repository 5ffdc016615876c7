"""Locust entry point: ``locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --model M``.

Runs headless or with the web UI. Options of its own (also shown in the web UI): ``--model``,
``--protocol http|grpc``, ``--batch-size``, ``--inputs real|random``, ``--samples FILE.npy`` (real
inputs), ``--grpc-url``, ``--seed``. At test start the model's tensors are read from the server,
the payloads are built once and only the user class of the chosen protocol runs. When the test
stops, exact latency percentiles from the raw samples are logged beside Locust's rounded ones.
Distributed: ``--master`` on one host, ``--worker --master-host HOST`` on the others (the master
passes these options on); each worker logs the exact percentiles of its own requests, and sends its
samples to a ``servebench loadtest --workers N`` master (``loadtests.distributed``).
"""

from __future__ import annotations

import logging

import gevent
import locust  # noqa: F401  - gevent monkey-patches here, before grpc or sockets load
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtests.batches import INPUT_KINDS, Workload, load_samples
from loadtests.errors import LoadTestError, LoadTestInputError
from loadtests.samples import SampleCollector
from loadtests.stats import summarize_latencies
from loadtests.target import check_grpc_endpoint, grpc_url_for, resolve_target
from loadtests.users import PROTOCOLS, TritonGrpcUser, TritonHttpUser, UserSetup

log = logging.getLogger(__name__)
COLLECTOR = SampleCollector()


class HttpInference(TritonHttpUser):
    """KServe v2 over HTTP (chosen with --protocol http)."""


class GrpcInference(TritonGrpcUser):
    """KServe v2 over gRPC (chosen with --protocol grpc)."""


USER_CLASSES = {"http": HttpInference, "grpc": GrpcInference}


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    add = parser.add_argument  # Locust's own add_argument: these show in the web UI too
    add("--model", default="", help="Triton model name to load", is_required=True)
    add("--protocol", choices=PROTOCOLS, default="http", help="KServe v2 protocol")
    add("--batch-size", type=int, default=1, help="samples per request")
    add("--inputs", choices=INPUT_KINDS, default="random", help="request payloads")
    add("--samples", default="", help=".npy of held-out samples for --inputs real")
    add(
        "--grpc-url",
        default="",
        help="host:port of Triton's gRPC endpoint (default: --host's host, port 8001, "
        "when --host uses Triton's default HTTP port 8000)",
    )
    add("--seed", type=int, default=0, help="seed of the random inputs")


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    COLLECTOR.attach(environment.events)
    if isinstance(environment.runner, WorkerRunner):  # samples to a servebench master
        from loadtests.distributed import attach_worker

        attach_worker(environment)
    options = environment.parsed_options
    if options is None:
        return
    _select_class(environment)
    if options.headless and not options.model:
        log.error("pass --model NAME (a model loaded in Triton)")
        raise SystemExit(2)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    """Configure at start, not at init, so that values edited in the web UI are used."""
    options = environment.parsed_options
    if options is None:  # used as a library: the caller configures its own user classes
        return
    user_class = _select_class(environment)
    try:
        if not options.model:
            raise LoadTestInputError("pass --model NAME (a model loaded in Triton)")
        grpc_url = grpc_url_for(environment.host, options.grpc_url, options.protocol)
        target = resolve_target(options.model, environment.host, grpc_url, url_flag="--host")
        if options.protocol == "grpc":
            check_grpc_endpoint(grpc_url)
        samples = load_samples(options.samples) if options.inputs == "real" else None
    except (
        LoadTestError,
        LoadTestInputError,
    ) as exc:  # one clear line, then stop: no user runs without a setup
        log.error("%s", exc)
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.quit)
        return
    workload = Workload(options.batch_size, options.inputs, samples, options.seed)
    user_class.setup = UserSetup.build(target, workload)
    COLLECTOR.clear()
    log.info(
        "load: %s over %s, batch %d, %s inputs",
        target.model,
        options.protocol,
        workload.batch_size,
        workload.inputs,
    )


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner):
        log.info("exact latencies: each worker logs its own (the requests ran there)")
        return
    samples = COLLECTOR.samples()
    ok = samples.ok
    summary = summarize_latencies(samples.latency_ns[ok])
    log.info(
        "exact latency over %d ok requests (%d failed): mean %.2f p50 %.2f p90 %.2f p95 %.2f "
        "p99 %.2f max %.2f ms",
        summary.count,
        len(samples) - summary.count,
        summary.mean_ms,
        summary.p50_ms,
        summary.p90_ms,
        summary.p95_ms,
        summary.p99_ms,
        summary.max_ms,
    )


def _select_class(environment):
    user_class = USER_CLASSES[environment.parsed_options.protocol]
    environment.user_classes[:] = [user_class]
    return user_class
