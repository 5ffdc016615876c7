"""``servebench loadtest`` against a real embedded Triton: records, server cross-checks, stalls,
and a server that dies mid-run. The load generator runs as a subprocess (Locust patches gevent
into whatever process imports it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loadtests.record import CLOSED_BASIS, OPEN_BASIS
from serving.derive import derive_served_repo
from serving.process import kill_group
from serving.triton import EmbeddedTriton, TritonOptions, free_ports
from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
MODEL = "seedcnn_torch_onnx"
REQUIRED = {
    "model", "protocol", "mode", "concurrency", "rate", "throughput_infer_per_s", "p50_ms",
    "p90_ms", "p95_ms", "p99_ms", "max_ms", "requests", "errors", "server_inference_count",
    "littles_law_concurrency", "client_cpu_percent", "server_queue_us",
    "server_compute_infer_us", "avg_batch_size",
}  # fmt: skip


def _server(native_repo, tmp_path, models=(MODEL,)):
    native = tmp_path / "native"
    native.mkdir()
    for name in models:
        (native / name).symlink_to(native_repo.path / name, target_is_directory=True)
    served = derive_served_repo(native, tmp_path / "served")
    http, grpc, metrics = free_ports(3)
    return EmbeddedTriton(
        served, TritonOptions(http_port=http, grpc_port=grpc, metrics_port=metrics)
    )


def _loadtest(server, out, *args, **popen):
    argv = [sys.executable, "-m", "servebench", "loadtest", "--url", f"http://{server.http_url}",
            "--grpc-url", server.grpc_url, "--models", MODEL, "--out", str(out), *args]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


@pytest.fixture(scope="module")
def server(native_repo, tmp_path_factory):
    with _server(native_repo, tmp_path_factory.mktemp("lt")) as running:
        yield running


def test_loadtest_records_both_protocols_and_modes_when_run_briefly(server, tmp_path):
    for mode_args in (["--concurrency", "1,4"], ["--rate", "40"]):
        proc = _loadtest(server, tmp_path / mode_args[0][2:], *mode_args,
                         "--duration", "3s", "--warmup", "1s")  # fmt: skip
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output[-3000:]
    closed = json.loads((tmp_path / "concurrency" / "results.json").read_text())
    opened = json.loads((tmp_path / "rate" / "results.json").read_text())
    assert [(r["protocol"], r["concurrency"]) for r in closed] == [
        ("http", 1),
        ("http", 4),
        ("grpc", 1),
        ("grpc", 4),
    ]
    assert [(r["protocol"], r["rate"]) for r in opened] == [("http", 40.0), ("grpc", 40.0)]
    for r in closed + opened:
        assert r.keys() >= REQUIRED
        assert r["requests"] > 0 and r["errors"] == 0
        assert not r["count_mismatch"], (r["client_inference_count"], r["server_inference_count"])
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["server_compute_infer_us"] > 0 and r["avg_batch_size"] >= 1
    for r in closed:
        assert r["littles_law_concurrency"] >= 0.9 * r["concurrency"]
        assert r["latency_basis"].startswith("closed loop")
    assert (tmp_path / "rate" / "results.csv").read_text().startswith("model,protocol,mode")


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_stall_of_2s_shows_in_open_loop_p99_and_closed_loop_is_labelled_when_server_paused(
    native_repo, tmp_path, mode
):
    load = ("--rate", "20") if mode == "open" else ("--concurrency", "1")
    with _server(native_repo, tmp_path) as srv:
        out = tmp_path / "stall"
        proc = _loadtest(srv, out, "--protocols", "http", *load, "--duration", "8s",
                         "--warmup", "1s")  # fmt: skip
        time.sleep(6)  # interpreter start-up and warm-up done; inside the window
        os.kill(srv.pid, signal.SIGSTOP)
        time.sleep(2)
        os.kill(srv.pid, signal.SIGCONT)
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output[-3000:]
    (record,) = json.loads((out / "results.json").read_text())
    assert record["max_ms"] >= 1500, record
    if mode == "open":
        assert record["p99_ms"] >= 1500, record
        assert record["latency_basis"] == OPEN_BASIS
    else:  # one user waited once; the sends it held back are missing, not slow: p99 hides it
        assert record["p99_ms"] < 1500, record
        assert record["latency_basis"] == CLOSED_BASIS


def test_loadtest_ends_with_cause_and_keeps_results_when_server_dies(native_repo, tmp_path):
    srv = _server(native_repo, tmp_path).start()
    out = tmp_path / "dies"
    try:
        proc = _loadtest(srv, out, "--protocols", "http,grpc", "--concurrency", "2,2,2",
                         "--duration", "3s", "--warmup", "0.5s")  # fmt: skip
        deadline = time.monotonic() + 120
        while not (out / "results.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        kill_group(srv.pid)
        began = time.monotonic()
        output, _ = proc.communicate(timeout=120)
        ended_in = time.monotonic() - began
    finally:
        srv.stop()
    assert proc.returncode == 1, output[-3000:]
    assert "stopped early" in output and "stopped answering" in output
    records = json.loads((out / "results.json").read_text())
    assert records[0]["errors"] == 0 and records[0]["requests"] > 0
    assert records[-1]["errors"] > 0
    assert len(records) < 6
    assert ended_in < 60


def test_loadtest_exits_2_at_once_when_grpc_url_is_not_a_grpc_endpoint(server, tmp_path):
    argv = [sys.executable, "-m", "servebench", "loadtest", "--url", f"http://{server.http_url}",
            "--grpc-url", server.http_url, "--models", MODEL, "--out", str(tmp_path / "x"),
            "--concurrency", "1", "--duration", "2s"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"no Triton answers gRPC at {server.http_url}" in proc.stderr
    assert "--grpc-url" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_loadtest_exits_2_at_once_when_url_is_the_grpc_port(server, tmp_path):
    argv = [sys.executable, "-m", "servebench", "loadtest", "--url", f"http://{server.grpc_url}",
            "--protocols", "http", "--models", MODEL, "--out", str(tmp_path / "x"),
            "--concurrency", "1", "--duration", "2s"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not HTTP/1.1" in proc.stderr and "is --url its HTTP address" in proc.stderr
    assert "Traceback" not in proc.stderr and "\x00" not in proc.stderr


def test_loadtest_exits_130_and_keeps_finished_scenarios_when_interrupted(server, tmp_path):
    out = tmp_path / "ctrl-c"
    proc = _loadtest(server, out, "--protocols", "http,grpc", "--concurrency", "1",
                     "--duration", "3s", "--warmup", "0.5s")  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "results.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted (Ctrl-C) during scenario 2/2" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    records = json.loads((out / "results.json").read_text())
    assert [(r["protocol"], r["errors"]) for r in records] == [("http", 0)]
