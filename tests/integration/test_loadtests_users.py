"""The Locust users against a real (pytriton) Triton: requests flow, failures are failures,
gRPC users are really concurrent (Little's law), the open loop keeps its schedule, and the
locustfile runs under plain ``locust``.

Locust monkey-patches the process it is imported in (gevent), so every load run here happens
in a child process; this test process never imports locust.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from loadtests.errors import LoadTestInputError
from loadtests.target import resolve_target
from tests.integration.loadtest_server import ROOT, loadtest_server  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

RECORDS_MARKER = "RECORDS "
DRIVER = """
import dataclasses, json, sys
import locust  # noqa: F401 - gevent's monkey patching first
import numpy as np
from exporters.spec import TensorSpec
from loadtests.batches import Workload
from loadtests.closed_loop import ClosedLoopConfig, run_closed_loop
from loadtests.open_loop import OpenLoopConfig, run_open_loop
from loadtests.target import resolve_target

args = json.loads(sys.argv[1])
records = {}
for name, scenario in args["scenarios"].items():
    target = resolve_target(scenario.pop("model"), args["http_url"], args["grpc_url"])
    if "output_dims" in scenario:  # claim a wrong output shape: every answer must then fail
        output = TensorSpec(target.output.name, target.output.dtype, tuple(scenario.pop("output_dims")))
        target = dataclasses.replace(target, output=output)
    workload = scenario.pop("workload", {})
    if "samples_path" in workload:
        workload["samples"] = np.load(workload.pop("samples_path"))
    scenario["workload"] = Workload(**workload)
    if scenario.pop("mode") == "closed":
        record = run_closed_loop(target, ClosedLoopConfig(**scenario))
    else:
        record = run_open_loop(target, OpenLoopConfig(**scenario))
    records[name] = record.to_dict()
print("RECORDS " + json.dumps(records))
"""

CLOSED = {"mode": "closed", "duration_s": 3.0, "warmup_s": 1.0}
SHORT = {"mode": "closed", "duration_s": 1.0, "warmup_s": 0.5, "users": 1}
OPEN = {"mode": "open", "duration_s": 3.0, "warmup_s": 1.0, "max_in_flight": 16, "rate_rps": 40.0}
SCENARIOS = {
    "http_closed": CLOSED | {"model": "dense", "protocol": "http", "users": 2},
    "grpc_closed": CLOSED | {"model": "dense", "protocol": "grpc", "users": 2},
    "http_sleep20_4": CLOSED | {"model": "dense_sleep20", "protocol": "http", "users": 4},
    "grpc_sleep20_4": CLOSED | {"model": "dense_sleep20", "protocol": "grpc", "users": 4},
    "http_open": OPEN | {"model": "dense", "protocol": "http"},
    "grpc_open": OPEN | {"model": "dense", "protocol": "grpc"},
    "http_wrong_shape": SHORT | {"model": "dense", "protocol": "http", "output_dims": [9]},
    "grpc_wrong_shape": SHORT | {"model": "dense", "protocol": "grpc", "output_dims": [9]},
}


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def records(loadtest_server, tmp_path_factory):  # noqa: F811 - the fixture imported above
    samples_path = tmp_path_factory.mktemp("samples") / "heldout.npy"
    np.save(samples_path, np.random.default_rng(0).random((10, 1, 16, 16), dtype=np.float32))
    scenarios = SCENARIOS | {
        "grpc_real_batch4": CLOSED
        | {
            "model": "dense",
            "protocol": "grpc",
            "users": 2,
            "workload": {"batch_size": 4, "inputs": "real", "samples_path": str(samples_path)},
        }
    }
    args = {
        "http_url": loadtest_server.http_url,
        "grpc_url": loadtest_server.grpc_url,
        "scenarios": scenarios,
    }
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=_env(),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RECORDS_MARKER)]
    assert proc.returncode == 0 and lines, (
        f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len(RECORDS_MARKER) :])


@pytest.mark.parametrize("name", ["http_closed", "grpc_closed", "grpc_real_batch4"])
def test_closed_loop_serves_requests_without_errors_when_server_is_up(records, name):
    record = records[name]
    assert record["requests"] > 20, record
    assert record["errors"] == 0, record["errors_by_kind"]
    assert record["client_inference_count"] >= record["requests"] * record["batch_size"]
    assert 0 < record["p50_ms"] <= record["p99_ms"] <= record["max_ms"]
    assert record["throughput_infer_per_s"] == pytest.approx(
        record["throughput_req_per_s"] * record["batch_size"]
    )


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_users_are_truly_concurrent_when_four_share_a_slow_model(records, protocol):
    """Little's law: 4 closed-loop users on a 20 ms model keep ~4 requests in flight."""
    record = records[f"{protocol}_sleep20_4"]
    assert record["errors"] == 0, record["errors_by_kind"]
    assert record["littles_law_concurrency"] >= 0.9 * 4, record
    assert record["mean_ms"] >= 20.0  # the model sleeps 20 ms: nothing answered early


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_open_loop_keeps_a_modest_rate_when_the_server_keeps_up(records, protocol):
    record = records[f"{protocol}_open"]
    assert record["errors"] == 0, record["errors_by_kind"]
    # Poisson: 3 s at 40/s is 120 +- 3 sigma (~33)
    assert 80 <= record["requests"] <= 160, record
    assert record["late_share"] < 0.1, record
    assert record["rate"] == 40.0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wrong_output_shape_is_a_failure_when_the_answer_does_not_match(records, protocol):
    record = records[f"{protocol}_wrong_shape"]
    assert record["requests"] == 0
    assert record["errors_by_kind"].get("bad_response", 0) > 0, record


def test_resolve_target_reads_tensors_from_the_server_when_model_is_loaded(loadtest_server):  # noqa: F811
    target = resolve_target("dense", loadtest_server.http_url, loadtest_server.grpc_url)
    assert (target.input.name, target.input.dtype, target.input.dims) == (
        "input",
        "FP32",
        (1, 16, 16),
    )
    assert (target.output.name, target.output.dims) == ("logits", (10,))
    assert target.max_batch_size == 64


def test_resolve_target_names_the_option_when_model_is_unknown(loadtest_server):  # noqa: F811
    with pytest.raises(LoadTestInputError, match="--model"):
        resolve_target("no_such_model", loadtest_server.http_url, loadtest_server.grpc_url)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_locustfile_exits_zero_when_run_headless_by_plain_locust(loadtest_server, protocol):  # noqa: F811
    locust = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py"]
    options = ["--headless", "-u", "2", "-r", "2", "-t", "3s", "--host", loadtest_server.http_url]
    ours = ["--model", "dense", "--protocol", protocol, "--grpc-url", loadtest_server.grpc_url]
    proc = subprocess.run(
        locust + options + ours, capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exact latency over" in proc.stderr
    assert " 0(0.00%)" in proc.stderr  # Locust's summary: no failures
    assert ("gRPC" if protocol == "grpc" else "HTTP") + "     dense" in proc.stderr


def test_locustfile_exits_2_without_guessing_when_grpc_port_is_unknown(loadtest_server):  # noqa: F811
    host = loadtest_server.http_url  # a free port, not Triton's default 8000
    argv = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless",
            "-u", "1", "-r", "1", "-t", "3s", "--host", host, "--model", "dense",
            "--protocol", "grpc"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "--protocol grpc needs --grpc-url" in proc.stderr
    assert "Traceback" not in proc.stderr and "AttributeError" not in proc.stderr
