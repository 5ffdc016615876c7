"""``servebench run`` end to end on a tiny configuration, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _argv(tmp_path, out, *extra):
    return [
        sys.executable, "-m", "servebench", "run", "--frameworks", "torch", "--formats", "onnx",
        "--epochs", "1", "--image-size", "16", "--repo", str(tmp_path / "repo"),
        "--workdir", str(tmp_path / "runs"), "--out", str(out), *extra,
    ]  # fmt: skip


def _env():
    return os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_run_writes_report_and_reuses_stages_when_rerun(tmp_path):
    quick = ("--concurrency", "1", "--duration", "1s", "--warmup", "0.5s")
    for name in ("first", "second"):
        result = subprocess.run(
            _argv(tmp_path, tmp_path / name, *quick), cwd=tmp_path, env=_env(),
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    first, second = tmp_path / "first", tmp_path / "second"
    for name in ("report.md", "report.html", "results.csv", "results.json", "manifest.json"):
        assert (second / name).is_file(), name
    records = json.loads((first / "results.json").read_text())
    assert sorted(r["protocol"] for r in records) == ["grpc", "http"]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in records)
    html = (first / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 1 and "Lowest latency at concurrency 1" in html
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["triton_version"] and manifest["cpu_cores"] and manifest["artifact_sha256"]
    assert "--frameworks torch" in manifest["command"]
    md = (second / "report.md").read_text()
    assert "| seedcnn | torch |" in md and "| yes |" in md  # training came from the cache
    first_stages = json.loads((first / "manifest.json").read_text())["stage_seconds"]
    assert manifest["stage_seconds"]["export"] < first_stages["export"]
    served = [line for line in md.splitlines() if line.startswith("| seedcnn_torch_onnx | ")]
    assert any("match" in line for line in served)


def test_run_keeps_finished_results_and_report_when_interrupted(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _argv(tmp_path, out, "--protocols", "http", "--concurrency", "1,1,1,1,1",
              "--duration", "3s", "--warmup", "0.5s"),
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines, deadline = [], time.monotonic() + 400
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "load test: [2/5]" in line or not line:
            break
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    began = time.monotonic()
    rest, _ = proc.communicate(timeout=120)
    assert time.monotonic() - began < 60
    assert proc.returncode == 130, "".join(lines)[-2000:] + rest[-2000:]
    md = (out / "report.md").read_text()
    assert "interrupted (Ctrl-C) during load test" in md
    records = json.loads((out / "load" / "results.json").read_text())
    assert 2 <= len(records) < 5
    assert json.loads((out / "results.json").read_text()) == records  # the report has them too
    assert "No load-test scenario finished" not in md and "Lowest latency at concurrency 1" in md
    time.sleep(1)
    assert [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def test_run_exits_2_before_training_when_remote_server_does_not_answer(tmp_path):
    from serving.triton import free_ports

    (port,) = free_ports(1)
    result = subprocess.run(
        _argv(tmp_path, tmp_path / "out", "--engine", "remote", "--url", f"127.0.0.1:{port}",
              "--protocols", "http"),
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()  # nothing trained
