"""``servebench serve`` as a user runs it: a real subprocess, real ports, Ctrl-C to stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from serving.engines import DockerTriton, RemoteTriton, ServeConfig
from serving.errors import ServingError
from serving.triton import free_ports
from tests.helpers import ROOT

MODEL = "seedcnn_torch_onnx"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def _wait_for_line(proc, prefix: str, timeout: float) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip())
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no {prefix!r} line within {timeout}s; got {lines}")


def _serve(repo: Path, cwd: Path, http: int, grpc: int, metrics: int) -> subprocess.Popen:
    """``servebench serve`` in a child process on the given ports, output on one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "servebench", "serve", "--repo", str(repo),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def test_serve_binds_loopback_and_leaves_nothing_when_interrupted(native_repo, tmp_path):
    http, grpc, metrics = free_ports(3)
    proc = _serve(native_repo.path, tmp_path, http, grpc, metrics)
    try:
        lines = _wait_for_line(proc, "ready:", 240)
        ready = lines[-1]
        assert f"http=127.0.0.1:{http}" in ready and f"grpc=127.0.0.1:{grpc}" in ready
        assert ready.endswith(f"models={len(native_repo.specs)}")
        processes = _tree(proc.pid)
        listening = {
            (c.laddr.ip, c.laddr.port)
            for p in processes
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert {port for _, port in listening} >= {http, grpc, metrics}
        assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip, _ in listening), listening

        with RemoteTriton(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", timeout_s=30) as remote:
            assert sorted(remote.probe_seconds) == sorted(native_repo.specs)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.5)
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == []
        assert not _log_path(lines).parent.exists()  # a clean stop leaves no temp dir
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_refuses_model_control_and_dies_with_its_parent_when_parent_is_killed(
    native_repo, tmp_path
):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    repo = tmp_path / "one"
    repo.mkdir()
    (repo / MODEL).symlink_to(native_repo.path / MODEL, target_is_directory=True)
    http, grpc, metrics = free_ports(3)
    proc = _serve(repo, tmp_path, http, grpc, metrics)
    try:
        _wait_for_line(proc, "ready:", 240)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
        with pytest.raises(InferenceServerException, match="explicit model load / unload"):
            client.unload_model(MODEL)  # model control mode none: nobody can unload over the wire
        assert client.is_model_ready(MODEL)
        client.close()
        processes = _tree(proc.pid)
        assert any(p.name() == "tritonserver" for p in processes)
        proc.kill()  # SIGKILL: no handler runs; the children must still go
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(processes[1:], timeout=30)
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        if proc.poll() is None:
            proc.kill()


def _log_path(lines: list[str]) -> Path:
    """The tritonserver log named by the 'starting ... (log PATH)' line."""
    match = next(re.search(r"\(log (\S+)\)$", line) for line in lines if "starting" in line)
    return Path(match.group(1))


def test_serve_exits_1_saying_where_the_log_is_kept_when_tritonserver_dies(native_repo, tmp_path):
    http, grpc, metrics = free_ports(3)
    proc = _serve(native_repo.path, tmp_path, http, grpc, metrics)
    log_path = None
    try:
        log_path = _log_path(_wait_for_line(proc, "ready:", 240))
        (triton,) = [p for p in psutil.Process(proc.pid).children() if p.name() == "tritonserver"]
        os.killpg(triton.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1, rest
        assert "error: tritonserver exited unexpectedly" in rest
        assert f"--- full log: {log_path} ---" in rest
        assert sorted(p.name for p in log_path.parent.iterdir()) == ["tritonserver.log"]
    finally:
        if proc.poll() is None:
            proc.kill()
        if log_path is not None:
            shutil.rmtree(log_path.parent, ignore_errors=True)


def test_serve_exits_2_naming_the_port_when_it_is_taken(native_repo, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "servebench", "serve", "--repo", str(native_repo.path),
             "--http-port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert result.returncode == 2
    assert str(port) in result.stderr and "--http-port" in result.stderr


def test_remote_engine_reports_clearly_when_nothing_answers():
    (port,) = free_ports(1)
    with pytest.raises(ServingError, match=f"no Triton answers at 127.0.0.1:{port}"):
        RemoteTriton(f"127.0.0.1:{port}", f"127.0.0.1:{port}", timeout_s=5).__enter__()


def test_docker_engine_prints_ngc_command_when_dry_run(native_repo):
    result = subprocess.run(
        [sys.executable, "-m", "servebench", "serve", "--engine", "docker", "--dry-run",
         "--repo", str(native_repo.path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in result.stdout
    assert "--gpus all" in result.stdout
    for model_dir in native_repo.path.iterdir():
        assert f"{model_dir}:/models/{model_dir.name}:ro" in result.stdout


def test_docker_engine_mounts_link_targets_when_repository_is_a_view_of_links(
    native_repo, tmp_path
):
    view = tmp_path / "view"
    view.mkdir()
    (view / MODEL).symlink_to(native_repo.path / MODEL, target_is_directory=True)
    command = DockerTriton(ServeConfig(repo=view, engine="docker")).command()
    assert f"{native_repo.path / MODEL}:/models/{MODEL}:ro" in command
    assert not any(str(view) in part for part in command)


def test_docker_engine_exits_2_naming_the_alternatives_when_no_docker_engine_answers(native_repo):
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    ):
        pytest.skip("a Docker engine answers on this machine")
    result = subprocess.run(
        [sys.executable, "-m", "servebench", "serve", "--engine", "docker",
         "--repo", str(native_repo.path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--engine embedded" in result.stderr and "Traceback" not in result.stderr
