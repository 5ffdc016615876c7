"""The embedded Triton server on a served repository derived from a native one written by the exporters."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from serving.derive import derive_served_repo
from serving.errors import ModelLoadError, PortInUseError, ServerStateError
from serving.triton import EmbeddedTriton, TritonOptions, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ATOL = 1e-4
ALL_MODELS = [
    "seedcnn_torch_onnx",
    "seedcnn_torch_torchscript",
    "seedcnn_tf_savedmodel",
    "seedcnn_tf_onnx",
]


def _options(**overrides) -> TritonOptions:
    http, grpc, metrics = free_ports(3)
    return TritonOptions(http_port=http, grpc_port=grpc, metrics_port=metrics, **overrides)


def _server_pids(server: EmbeddedTriton) -> list[int]:
    import psutil

    parent = psutil.Process(server.pid)
    return [parent.pid, *(child.pid for child in parent.children(recursive=True))]


def _alive(pids: list[int]) -> list[int]:
    import psutil

    return [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


def _collect(results, index, result, error) -> None:
    results.put((index, result, error))


def _batch(spec, size: int, seed: int) -> np.ndarray:
    shape = (size, *spec.inputs[0].dims)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def served_repo(native_repo, tmp_path_factory):
    return derive_served_repo(native_repo.path, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(served_repo):
    with EmbeddedTriton(served_repo, _options()) as running:
        print(f"\ntime-to-ready: {running.startup_seconds:.1f}s; probes {running.probe_seconds}")
        yield running


def test_derive_served_repo_links_artifacts_when_rebuilt(native_repo, tmp_path):
    out = tmp_path / "served"
    for _ in range(2):  # idempotent
        derive_served_repo(native_repo.path, out, threads=2)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(native_repo.specs)
    for name, spec in native_repo.specs.items():
        artifact = out / name / "1" / spec.artifact_name
        assert artifact.is_symlink()
        assert artifact.resolve() == (native_repo.path / name / "1" / spec.artifact_name)
        assert (out / name / "servebench.json").is_symlink()
        assert (out / name / "labels.txt").is_symlink()
        assert (out / name / "1" / "model.py").is_file()
        config = (out / name / "config.pbtxt").read_text()
        assert 'backend: "python"' in config
        assert "platform" not in config
        assert "execution_accelerators" not in config
        assert 'string_value: "2"' in config


def test_embedded_triton_serves_every_model_when_started(server, native_repo):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    index = {m["name"]: m["state"] for m in client.get_model_repository_index()}
    assert index == {name: "READY" for name in native_repo.specs}
    assert client.is_server_ready()
    assert server.startup_seconds is not None and server.startup_seconds < 300


@pytest.mark.parametrize("model", ALL_MODELS)
def test_http_inference_matches_source_model(server, native_repo, model):
    import tritonclient.http as httpclient

    spec = native_repo.specs[model]
    x = _batch(spec, 3, seed=1)
    infer_input = httpclient.InferInput(spec.inputs[0].name, list(x.shape), "FP32")
    infer_input.set_data_from_numpy(x)
    client = httpclient.InferenceServerClient(server.http_url)
    got = client.infer(model, [infer_input]).as_numpy(spec.outputs[0].name)
    np.testing.assert_allclose(got, native_repo.reference[model](x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_grpc_inference_matches_source_model_when_requests_are_batched(server, native_repo, model):
    """Concurrent requests of different sizes: the shim's concat/run/split keeps each one apart."""
    import queue

    import tritonclient.grpc as grpcclient

    spec = native_repo.specs[model]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results: queue.Queue = queue.Queue()
    batches = [_batch(spec, size, seed=size) for size in (1, 2, 3, 1, 2)]
    for k, x in enumerate(batches):
        infer_input = grpcclient.InferInput(spec.inputs[0].name, list(x.shape), "FP32")
        infer_input.set_data_from_numpy(x)
        client.async_infer(model, [infer_input], functools.partial(_collect, results, k))
    for _ in batches:
        k, result, error = results.get(timeout=60)
        assert error is None, error
        got = result.as_numpy(spec.outputs[0].name)
        expected = native_repo.reference[model](batches[k])
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    client.close()


def test_bad_request_gets_clear_error_when_shape_is_wrong_and_server_keeps_serving(
    server, native_repo
):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    model = "seedcnn_torch_onnx"
    spec = native_repo.specs[model]
    client = httpclient.InferenceServerClient(server.http_url)
    wrong = np.zeros((1, 3, 5, 5), dtype=np.float32)
    infer_input = httpclient.InferInput(spec.inputs[0].name, list(wrong.shape), "FP32")
    infer_input.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException, match="(?i)shape"):
        client.infer(model, [infer_input])
    x = _batch(spec, 2, seed=7)
    good = httpclient.InferInput(spec.inputs[0].name, list(x.shape), "FP32")
    good.set_data_from_numpy(x)
    got = client.infer(model, [good]).as_numpy(spec.outputs[0].name)
    np.testing.assert_allclose(got, native_repo.reference[model](x), atol=ATOL, rtol=0)
    assert server.is_alive()


def test_start_refuses_when_already_started(server):
    with pytest.raises(ServerStateError, match="already started"):
        server.start()


def test_start_fails_naming_the_model_when_its_artifact_is_missing(native_repo, tmp_path):
    native = tmp_path / "native"
    native.mkdir()
    for name in ("seedcnn_torch_onnx", "seedcnn_torch_torchscript"):
        shutil.copytree(native_repo.path / name, native / name)
    (native / "seedcnn_torch_onnx" / "1" / "model.onnx").unlink()
    served = derive_served_repo(native, tmp_path / "served")
    server = EmbeddedTriton(served, _options(startup_timeout_s=180))
    with pytest.raises(ModelLoadError) as caught:
        server.start()
    assert set(caught.value.failures) == {"seedcnn_torch_onnx"}
    assert "model.onnx" in caught.value.failures["seedcnn_torch_onnx"]
    assert "seedcnn_torch_onnx" in str(caught.value)
    assert not server.is_alive()
    # the log is kept, and the error says where
    log_path = server.log_path
    try:
        assert log_path.is_file() and "model.onnx" in log_path.read_text()
        assert f"--- full log: {log_path} ---" in str(caught.value)
        assert sorted(p.name for p in log_path.parent.iterdir()) == ["tritonserver.log"]
    finally:
        shutil.rmtree(log_path.parent, ignore_errors=True)


def test_start_raises_port_in_use_before_launch_when_http_port_is_taken(served_repo):
    options = _options()
    with socket.socket() as taken:
        taken.bind((options.host, options.http_port))
        taken.listen()
        server = EmbeddedTriton(served_repo, options)
        with pytest.raises(PortInUseError, match=rf"{options.http_port}.*--http-port"):
            server.start()
    assert server.pid is None  # nothing was launched


@pytest.fixture
def one_model_repo(native_repo, tmp_path):
    native = tmp_path / "native"
    shutil.copytree(native_repo.path / "seedcnn_torch_onnx", native / "seedcnn_torch_onnx")
    return derive_served_repo(native, tmp_path / "served")


def test_no_server_process_or_temp_dir_remains_when_context_exits(one_model_repo):
    with EmbeddedTriton(one_model_repo, _options()) as server:
        pids = _server_pids(server)
        assert len(pids) >= 2, "expected tritonserver and at least one python backend stub"
        workdir = server.log_path.parent
        assert workdir.name.startswith("servebench-triton-") and server.log_path.is_file()
    assert not workdir.exists()
    deadline = time.monotonic() + 10
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(pids) == []
    pgrep = subprocess.run(["pgrep", "-g", str(pids[0])], capture_output=True, text=True)
    assert pgrep.stdout.strip() == ""


def test_stop_keeps_the_log_and_drops_the_rest_when_server_crashed(one_model_repo):
    server = EmbeddedTriton(one_model_repo, _options()).start()
    try:
        os.killpg(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "full log: " + str(server.log_path) in server.log_excerpt()
    finally:
        server.stop()
    workdir = server.log_path.parent
    try:
        assert sorted(p.name for p in workdir.iterdir()) == ["tritonserver.log"]
        assert "Started HTTPService" in server.log_path.read_text()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_stop_keeps_the_users_log_file_and_drops_the_temp_dir_when_log_file_given(
    one_model_repo, tmp_path
):
    log_file = tmp_path / "logs" / "triton.log"
    with EmbeddedTriton(one_model_repo, _options(log_file=log_file)) as server:
        assert server.log_path == log_file.resolve()
        workdir = server._workdir
        assert (workdir / "backends").is_dir()
    assert not workdir.exists()
    assert "Started HTTPService" in log_file.read_text()
