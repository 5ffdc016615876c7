"""Distributed load against a real embedded Triton: a Locust master and 2 local worker processes.

``servebench loadtest --workers 2`` (the runner's master in the CLI process) and plain
``locust -f loadtests/locustfile.py --master`` / ``--worker`` (the multi-host form of the README,
here on 127.0.0.1). Locust monkey-patches the process it is imported in (gevent), so every load
run is a subprocess; this test process never imports locust.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from serving.derive import derive_served_repo
from serving.triton import EmbeddedTriton, TritonOptions, free_ports
from tests.helpers import ROOT, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
MODEL = "seedcnn_torch_onnx"
WORKERS = 2
COUNT_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def server(native_repo, tmp_path_factory):
    served = derive_served_repo(native_repo.path, tmp_path_factory.mktemp("served_distributed"))
    http, grpc, metrics = free_ports(3)
    options = TritonOptions(http_port=http, grpc_port=grpc, metrics_port=metrics)
    with EmbeddedTriton(served, options) as running:
        yield running


@pytest.fixture(scope="module")
def distributed_run(server, tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    proc = run_cli(
        "loadtest", "--url", f"http://{server.http_url}", "--grpc-url", server.grpc_url,
        "--models", MODEL, "--protocols", "http,grpc", "--concurrency", "4",
        "--duration", "3s", "--warmup", "1s", "--workers", str(WORKERS), "--out", str(out),
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


def test_distributed_loadtest_serves_both_protocols_without_errors_when_two_workers_run(
    distributed_run,
):
    _, records = distributed_run
    assert [(r["model"], r["protocol"], r["mode"]) for r in records] == [
        (MODEL, "http", "closed"),
        (MODEL, "grpc", "closed"),
    ]
    for record in records:
        assert record["requests"] > 0, record
        assert record["errors"] == 0, record["errors_by_kind"]
        assert record["concurrency"] == 4
        assert 0 < record["p50_ms"] <= record["p99_ms"] <= record["max_ms"], record
        assert record["duration_s"] == pytest.approx(3.0, abs=0.2), record


def test_distributed_totals_match_the_servers_count_when_two_local_workers_share_the_load(
    distributed_run,
):
    """Every worker's samples reach the master: client and server counts agree within 1%."""
    _, records = distributed_run
    for record in records:
        client, server = record["client_inference_count"], record["server_inference_count"]
        assert client >= record["requests"] > 0, record
        assert abs(client - server) <= COUNT_TOLERANCE * client, (client, server)
        assert record["count_mismatch"] is False


def test_distributed_users_are_spread_and_workers_quit_when_the_run_ends(distributed_run):
    """Each worker ran requests in both scenarios, then shut down cleanly (its own log)."""
    out, _ = distributed_run
    logs = sorted((out / "workers").glob("worker-*.log"))
    assert len(logs) == WORKERS
    for path in logs:
        text = path.read_text()
        runs = [line for line in text.splitlines() if "exact latency over" in line]
        assert len(runs) == 2, text[-2000:]
        assert all(" over 0 ok" not in line and "(0 failed)" in line for line in runs), runs
        assert "Shutting down (exit code 0)" in text, text[-2000:]


def test_plain_locust_master_and_two_workers_exit_zero_when_run_headless(server):
    """The README's multi-host form, on one host: --master plus two --worker processes."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    locust = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py"]
    (port,) = free_ports(1)
    master_args = [
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--headless", "--expect-workers", str(WORKERS), "-u", "4", "-r", "4", "-t", "3s",
        "--host", f"http://{server.http_url}", "--model", MODEL, "--protocol", "grpc",
        "--grpc-url", server.grpc_url,
    ]  # fmt: skip
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    spawn = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    procs = [subprocess.Popen(locust + master_args, **spawn)]
    procs += [subprocess.Popen(locust + worker_args, **spawn) for _ in range(WORKERS)]
    try:
        outputs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    master, *workers = outputs
    assert [p.returncode for p in procs] == [0] * (WORKERS + 1), master[-3000:]
    assert f"{WORKERS} workers connected" in master, master[-3000:]
    assert "Aggregated" in master and " 0(0.00%)" in master, master[-3000:]
    for output in workers:
        assert "exact latency over" in output and " over 0 ok" not in output, output[-2000:]
