"""The client layer against a real embedded Triton: outputs, refusals, served parity, the CLI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models.errors import CheckpointError, UserInputError
from serving.check_served import check_served
from serving.clients import TritonClient
from serving.derive import derive_served_repo
from serving.errors import InferenceError, ServerUnreachableError, UnknownModelError
from serving.triton import EmbeddedTriton, TritonOptions, free_ports
from tests.helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ATOL = 1e-4
MODEL = "seedcnn_torch_onnx"
PROTOCOLS = ("http", "grpc")
# (case, inputs(spec, good batch) -> {name: array}, model override, HTTP status, gRPC status, text)
BAD_REQUESTS = {
    "wrong-shape": (
        lambda spec, x: {spec.inputs[0].name: np.zeros((2, 3, 5, 5), np.float32)},
        None, "400", "INVALID_ARGUMENT", r"unexpected shape for input 'input'",
    ),
    "fp64": (
        lambda spec, x: {spec.inputs[0].name: x.astype(np.float64)},
        None, "400", "INVALID_ARGUMENT", r"data-type is 'FP64', but model .* expects 'FP32'",
    ),
    "int32": (
        lambda spec, x: {spec.inputs[0].name: x.astype(np.int32)},
        None, "400", "INVALID_ARGUMENT", r"data-type is 'INT32', but model .* expects 'FP32'",
    ),
    "unknown-model": (
        lambda spec, x: {spec.inputs[0].name: x},
        "no_such_model", "404", "NOT_FOUND", r"unknown model: 'no_such_model'",
    ),
    "batch-above-max": (
        lambda spec, x: {spec.inputs[0].name: np.concatenate([x] * 5)[:9]},
        None, "400", "INVALID_ARGUMENT", r"batch-size must be <= 8",
    ),
    "wrong-input-name": (
        lambda spec, x: {"pixels": x},
        None, "400", "INVALID_ARGUMENT", r"unexpected inference input 'pixels'",
    ),
}  # fmt: skip


def _options() -> TritonOptions:
    http, grpc, metrics = free_ports(3)
    return TritonOptions(http_port=http, grpc_port=grpc, metrics_port=metrics)


def _url(server: EmbeddedTriton, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


@pytest.fixture(scope="module")
def server(native_repo, tmp_path_factory):
    served = derive_served_repo(native_repo.path, tmp_path_factory.mktemp("served_clients"))
    with EmbeddedTriton(served, _options()) as running:
        yield running


def _cli(*argv: str) -> int:
    from servebench.cli_clients import add_client_commands

    parser = argparse.ArgumentParser(prog="servebench")
    add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_client_output_equals_source_model_when_sent_over(server, native_repo, protocol):
    with TritonClient(_url(server, protocol), protocol) as client:
        for name, spec in sorted(native_repo.specs.items()):
            x = native_repo.samples[name][:5]
            got = client.infer(name, {spec.inputs[0].name: x}, [spec.outputs[0].name])
            assert set(got) == {spec.outputs[0].name}
            expected = native_repo.reference[name](x)
            np.testing.assert_allclose(got[spec.outputs[0].name], expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_client_model_spec_matches_sidecar_when_derived_from_server(
    server, native_repo, protocol
):
    with TritonClient(_url(server, protocol), protocol) as client:
        for name, spec in native_repo.specs.items():
            from_server = client.model_spec(name)
            assert from_server.origin == "server config"  # recipe + classes in its parameters
            assert from_server.spec == spec
            from_repo = client.model_spec(name, repo=native_repo.path)
            assert from_repo.origin == "repository" and from_repo.spec == spec
            assert from_server.preprocess == from_repo.preprocess
        with pytest.raises(UnknownModelError, match=f"no_such_model.*served models:.*{MODEL}"):
            client.model_spec("no_such_model")


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_client_raises_inference_error_when_request_is_bad(
    server, native_repo, protocol, case
):
    make_inputs, model, http_status, grpc_status, text = BAD_REQUESTS[case]
    spec = native_repo.specs[MODEL]
    x = native_repo.samples[MODEL][:2]
    inputs = make_inputs(spec, x)
    with TritonClient(_url(server, protocol), protocol) as client:
        with pytest.raises(InferenceError, match=text) as caught:
            client.infer(model or MODEL, inputs, [spec.outputs[0].name])
        error = caught.value
        assert error.status == (http_status if protocol == "http" else grpc_status)
        message = str(error)
        assert f"status {error.status}" in message
        assert f"{protocol}://{_url(server, protocol)}" in message
        name, array = next(iter(inputs.items()))
        assert f"model {model or MODEL!r}" in message and f"input {name!r}" in message
        assert f"shape {list(array.shape)}" in message
        # the server keeps serving
        got = client.infer(MODEL, {spec.inputs[0].name: x}, [spec.outputs[0].name])
        expected = native_repo.reference[MODEL](x)
        np.testing.assert_allclose(got[spec.outputs[0].name], expected, atol=ATOL, rtol=0)


def test_check_served_passes_every_model_and_protocol_when_served_from_the_export(
    server, native_repo, tiny_runs
):
    results = check_served(server.http_url, server.grpc_url, native_repo.path)
    assert {(r.model, r.protocol) for r in results} == {
        (name, p) for name in native_repo.specs for p in PROTOCOLS
    }
    assert all(r.passed for r in results), [r.to_dict() for r in results]
    for r in results:
        assert r.status == "passed" and r.error == ""
        assert r.samples == len(native_repo.samples[r.model])
        assert r.max_abs_diff <= r.atol == ATOL
        assert r.top1_agreement == 1.0
        framework = native_repo.specs[r.model].framework
        assert r.checkpoint_dir == str(tiny_runs["seedcnn", framework].resolve())
        assert json.loads(json.dumps(r.to_dict()))["status"] == "passed"


def _repo_without_checkpoint(native_repo, tmp_path) -> Path:
    """A copy of MODEL whose servebench.json does not say where its source checkpoint is."""
    repo = tmp_path / "repo"
    shutil.copytree(native_repo.path / MODEL, repo / MODEL)
    sidecar_path = repo / MODEL / "servebench.json"
    sidecar = json.loads(sidecar_path.read_text())
    del sidecar["provenance"]["checkpoint_dir"]
    sidecar_path.write_text(json.dumps(sidecar))
    return repo


def test_check_served_uses_given_checkpoint_when_sidecar_records_none(
    server, native_repo, tiny_runs, tmp_path
):
    repo = _repo_without_checkpoint(native_repo, tmp_path)
    with pytest.raises(CheckpointError, match=f"{MODEL}.*--checkpoint"):
        check_served(server.http_url, None, repo, protocols=("http",))
    checkpoints = {MODEL: tiny_runs["seedcnn", "torch"]}
    results = check_served(
        server.http_url, None, repo, protocols=("http",), checkpoints=checkpoints
    )
    assert [(r.model, r.protocol, r.status) for r in results] == [(MODEL, "http", "passed")]


def test_check_served_refuses_when_model_is_not_in_repo(server, native_repo):
    with pytest.raises(UnknownModelError, match=f"nope not in .*{MODEL}"):
        check_served(server.http_url, server.grpc_url, native_repo.path, models=["nope"])


def test_check_served_cli_prints_table_and_exits_zero_when_all_match(server, native_repo, capsys):
    code = _cli(
        "check-served", "--url", server.http_url, "--grpc-url", server.grpc_url,
        "--repo", str(native_repo.path), "--models", f"{MODEL},seedcnn_tf_savedmodel",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    for word in ("max abs diff", "top-1 agree", MODEL, "seedcnn_tf_savedmodel", "http", "grpc"):
        assert word in out
    assert out.count("passed") == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_infer_cli_prints_top_k_labels_when_given_a_png(
    server, native_repo, tmp_path, capsys, protocol
):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images[0] * (255.0 / 16.0)).astype(np.uint8)
    image = tmp_path / "digit.png"
    Image.fromarray(pixels).resize((32, 32)).save(image)
    code = _cli(
        "infer", "--url", _url(server, protocol), "--protocol", protocol, "--model", MODEL,
        "--repo", str(native_repo.path), "--top-k", "3", str(image),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if "digit.png" in line)
    found = [(label, float(p)) for label, p in _pairs(row)]
    assert len(found) == 3
    assert {label for label, _ in found} <= {str(d) for d in range(10)}
    probs = [p for _, p in found]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.001


def _pairs(row: str):
    import re

    return re.findall(r"(\d) \((0\.\d{3}|1\.000)\)", row)


def test_infer_cli_prints_predicted_and_true_labels_when_asked_for_samples(
    server, native_repo, capsys
):
    code = _cli(
        "infer", "--url", server.grpc_url, "--protocol", "grpc", "--model", "seedcnn_tf_onnx",
        "--repo", str(native_repo.path), "--samples", "6", "--top-k", "1",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert sum(f"sample {i} " in out for i in range(6)) == 6
    assert "accuracy: " in out and "/6" in out


def test_infer_cli_raises_user_input_error_when_image_is_missing_or_model_unknown(server, tmp_path):
    with pytest.raises(UserInputError, match="missing.png"):
        _cli("infer", "--url", server.http_url, "--model", MODEL, str(tmp_path / "missing.png"))
    image = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (16, 16)).save(image)
    with pytest.raises(UnknownModelError, match=f"served models: .*{MODEL}"):
        _cli("infer", "--url", server.http_url, "--model", "nope", str(image))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_client_names_refused_connection_when_no_server_listens(protocol):
    (port,) = free_ports(1)
    url = f"127.0.0.1:{port}"
    with TritonClient(url, protocol, timeout_s=10) as client:
        start = time.monotonic()
        with pytest.raises(ServerUnreachableError, match=rf"connection to {url} refused"):
            client.infer(MODEL, {"input": np.zeros((1, 1, 16, 16), np.float32)}, ["logits"])
    assert time.monotonic() - start < 15


def _request_loop(url, protocol, x, state: dict, stop: threading.Event) -> None:
    """Infer until an error; the client is made here (one client per thread)."""
    try:
        with TritonClient(url, protocol, timeout_s=10) as client:
            while not stop.is_set():
                client.infer(MODEL, {"input": x}, ["logits"])
                state["ok"] += 1
    except Exception as error:  # recorded for the test to assert on
        state["error"], state["at"] = error, time.monotonic()


def test_triton_client_names_the_cause_when_server_is_killed_mid_requests(native_repo, tmp_path):
    native = tmp_path / "native"
    shutil.copytree(native_repo.path / MODEL, native / MODEL)
    served = derive_served_repo(native, tmp_path / "served")
    x = native_repo.samples[MODEL][:8]
    stop = threading.Event()
    with EmbeddedTriton(served, _options()) as server:
        states = {p: {"ok": 0, "error": None, "at": None} for p in PROTOCOLS}
        threads = [
            threading.Thread(
                target=_request_loop, args=(_url(server, p), p, x, states[p], stop), daemon=True
            )
            for p in PROTOCOLS
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while min(s["ok"] for s in states.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(s["ok"] for s in states.values()) >= 5, states
        killed_at = time.monotonic()
        os.killpg(server.pid, signal.SIGKILL)
        for t in threads:
            t.join(timeout=30)
        stop.set()
        assert not any(t.is_alive() for t in threads), "a client hung after the server died"
    shutil.rmtree(server.log_path.parent, ignore_errors=True)  # kept because the server crashed
    for protocol, state in states.items():
        error = state["error"]
        print(f"\n{protocol}: {state['ok']} ok, then {error!r}")
        url = _url(server, protocol)
        assert isinstance(error, ServerUnreachableError), (protocol, repr(error))
        assert error.url == url
        assert url in str(error)
        assert "refused" in str(error) or "lost mid-request" in str(error), str(error)
        assert state["at"] - killed_at < 20, (protocol, state["at"] - killed_at)


def test_triton_client_asks_for_the_http_port_when_http_client_meets_the_grpc_port(server):
    x = np.zeros((1, 1, 16, 16), np.float32)
    client = TritonClient(server.grpc_url, "http", timeout_s=10)
    with client, pytest.raises(ServerUnreachableError) as caught:
        client.infer(MODEL, {"input": x}, ["logits"])
    message = str(caught.value)
    hint = f"is {server.grpc_url} Triton's HTTP port? (servebench serve: HTTP 8000, gRPC 8001)"
    assert f"{server.grpc_url} did not answer HTTP" in message and hint in message
    assert "lost mid-request" not in message


def test_triton_client_asks_for_the_http_port_when_http_client_meets_the_metrics_port(server):
    metrics = f"127.0.0.1:{server.options.metrics_port}"
    client = TritonClient(metrics, "http", timeout_s=10)
    x = np.zeros((1, 1, 16, 16), np.float32)
    for call in (
        lambda: client.model_spec(MODEL),  # GET: an empty reply, no JSON
        lambda: client.infer(MODEL, {"input": x}, ["logits"]),  # POST: 405 Method Not Allowed
    ):
        with pytest.raises(ServerUnreachableError) as caught:
            call()
        message = str(caught.value)
        assert f"{metrics} answered HTTP" in message, message
        assert "Triton's inference endpoint" in message and "metrics 8002" in message
    client.close()


def test_triton_client_asks_for_the_grpc_port_when_grpc_client_meets_the_http_port(server):
    client = TritonClient(server.http_url, "grpc", timeout_s=10)
    with client, pytest.raises(ServerUnreachableError) as caught:
        client.check_live()
    message = str(caught.value)
    assert f"{server.http_url} accepted the connection but did not answer gRPC" in message
    assert f"is {server.http_url} Triton's gRPC port?" in message
    assert "refused" not in caught.value.cause


def test_check_served_cli_exits_2_at_once_with_one_message_when_no_server_listens(native_repo):
    http, grpc = free_ports(2)
    start = time.monotonic()
    result = run_cli(
        "check-served", "--url", f"127.0.0.1:{http}", "--grpc-url", f"127.0.0.1:{grpc}",
        "--repo", str(native_repo.path), timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""  # no table of error rows
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "loading the source model" not in result.stderr  # refused before the slow part
    for port, protocol in ((http, "HTTP"), (grpc, "gRPC")):
        assert f"connection to 127.0.0.1:{port} refused: is the server running" in result.stderr
        assert f"is 127.0.0.1:{port} its {protocol} port" in result.stderr
    assert seconds < 30, seconds


def test_check_served_names_each_port_when_http_and_grpc_urls_are_swapped(server, native_repo):
    with pytest.raises(ServerUnreachableError) as caught:
        check_served(server.grpc_url, server.http_url, native_repo.path, models=[MODEL])
    message = str(caught.value)
    assert message.startswith("no Triton server answers at 2 endpoints:")
    assert f"is {server.grpc_url} Triton's HTTP port?" in message
    assert f"is {server.http_url} Triton's gRPC port?" in message


def test_predict_samples_asks_for_repo_or_checkpoint_when_spec_comes_from_the_server(server):
    from serving.clients import predict_samples

    with TritonClient(server.http_url, "http") as client:
        served = client.model_spec(MODEL)
        with pytest.raises(UserInputError, match=r"^--samples needs the model's source checkpoint"):
            predict_samples(client, served, 4)


def test_predict_samples_asks_for_checkpoint_when_sidecar_records_none(
    server, native_repo, tiny_runs, tmp_path
):
    from serving.clients import predict_samples

    repo = _repo_without_checkpoint(native_repo, tmp_path)
    with TritonClient(server.http_url, "http") as client:
        served = client.model_spec(MODEL, repo=repo)
        with pytest.raises(UserInputError, match=rf"{MODEL}: its servebench.json records no"):
            predict_samples(client, served, 4)
        run_dir = tiny_runs["seedcnn", "torch"]
        predictions = predict_samples(client, served, 4, checkpoint=run_dir)
    assert [p.source for p in predictions] == [f"sample {i}" for i in range(4)]
