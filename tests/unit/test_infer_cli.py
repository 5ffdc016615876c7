"""``servebench infer`` mistakes caught before any connection is made."""

from __future__ import annotations

from serving.triton import free_ports
from tests.helpers import run_cli


def test_infer_cli_asks_for_repo_or_checkpoint_when_samples_are_asked_without_either():
    (port,) = free_ports(1)  # nothing listens: a connection attempt would say "refused"
    result = run_cli(
        "infer", "--samples", "4", "--model", "seedcnn_torch_onnx", "--url", f"127.0.0.1:{port}",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: --samples needs the model's source checkpoint")
    assert "--repo MODEL_REPO" in message and "--checkpoint RUN_DIR" in message
    assert "recorded in its servebench.json" not in message and "refused" not in message
    assert "Traceback" not in result.stderr
