"""A tiny Triton (pytriton) for developing and testing the load tests, run in its own process.

Two models with input ``input`` FP32 [1,16,16] and output ``logits`` FP32 [10], max batch 64:
``dense`` (a fixed random matmul, +5 ms) and ``dense_sleep20`` (+20 ms, to make concurrency
visible to Little's law). The server runs in a child process (``python -m
tests.integration.loadtest_server``) so that pytriton's threads never meet gevent's monkey patching
in the test process; the child prints one JSON line with its URLs when every model is ready and
stops on SIGTERM/SIGINT. ``dev_server()`` is the context manager; ``loadtest_server`` the fixture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = {"dense": 0.005, "dense_sleep20": 0.020}  # name -> seconds slept per batch
INPUT_DIMS = (1, 16, 16)
NUM_CLASSES = 10
START_TIMEOUT_S = 60.0  # per attempt; a start takes ~10 s here
START_ATTEMPTS = 3
READY_MARKER = "SERVEBENCH-DEV-TRITON-READY "


@dataclasses.dataclass(frozen=True)
class DevServer:
    http_url: str  # http://127.0.0.1:PORT
    grpc_url: str  # 127.0.0.1:PORT
    models: tuple[str, ...]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make_infer(sleep_s: float):
    import numpy as np
    from pytriton.decorators import batch

    weights = np.random.default_rng(0).standard_normal((int(np.prod(INPUT_DIMS)), NUM_CLASSES))
    weights = weights.astype(np.float32)

    @batch
    def infer(input):  # noqa: A002 - the tensor is named "input"
        time.sleep(sleep_s)
        return {"logits": input.reshape(input.shape[0], -1) @ weights}

    return infer


def serve() -> None:
    """Child-process entry: start Triton, print the URLs as JSON, serve until SIGTERM/SIGINT."""
    import numpy as np
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    http_port, grpc_port, metrics_port = _free_port(), _free_port(), _free_port()
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http_port,
        grpc_address="127.0.0.1",
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        allow_metrics=False,
    )
    with Triton(config=config) as triton:
        for name, sleep_s in MODELS.items():
            triton.bind(
                model_name=name,
                infer_func=_make_infer(sleep_s),
                inputs=[Tensor(name="input", dtype=np.float32, shape=INPUT_DIMS)],
                outputs=[Tensor(name="logits", dtype=np.float32, shape=(NUM_CLASSES,))],
                config=ModelConfig(max_batch_size=64),
            )
        triton.run()  # until here SIGINT/SIGTERM interrupt the start as usual
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ready = {
            "http_url": f"http://127.0.0.1:{http_port}",
            "grpc_url": f"127.0.0.1:{grpc_port}",
            "models": list(MODELS),
        }
        print(READY_MARKER + json.dumps(ready), flush=True)
        stop.wait()


def _child_env() -> dict[str, str]:
    """The interpreter's own libpython first, else the python stub may load another one."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ld_path = os.pathsep.join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)
    return os.environ | {"LD_LIBRARY_PATH": ld_path, "PYTHONPATH": str(ROOT)}


@contextlib.contextmanager
def dev_server(log_path: Path):
    """Run the dev server in a child process; yield a DevServer; always stop the child.

    A free port can be taken by another process between our probe and Triton's bind (other
    suites start servers too), which shows as a start that never gets ready: retry on new ports.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.loadtest_server"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=ROOT,
                env=_child_env(),
            )
        try:
            server = _wait_ready(proc, log_path)
        except RuntimeError:
            _stop(proc)
            if attempt == START_ATTEMPTS:
                raise
            continue
        try:
            yield server
        finally:
            _stop(proc)
        return


def _wait_ready(proc: subprocess.Popen, log_path: Path) -> DevServer:
    timer = threading.Timer(START_TIMEOUT_S, proc.terminate)
    timer.start()
    try:
        with open(log_path, "a") as log:
            line = ""
            for line in proc.stdout:  # tritonserver shares this stdout; log it up to the marker
                if line.startswith(READY_MARKER):
                    break
                log.write(line)
    finally:
        timer.cancel()
    if not line.startswith(READY_MARKER):
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"dev Triton did not start (exit {proc.poll()}); log tail:\n{tail}")
    data = json.loads(line[len(READY_MARKER) :])
    return DevServer(data["http_url"], data["grpc_url"], tuple(data["models"]))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def loadtest_server(tmp_path_factory):
    """A running dev Triton (session-wide); see the module docstring for its models."""
    with dev_server(tmp_path_factory.mktemp("devtriton") / "triton.log") as server:
        yield server


if __name__ == "__main__":
    serve()
