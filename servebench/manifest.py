"""manifest.json: what a report's numbers were measured on and with."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from models.checkpoint import file_sha256
from models.versions import package_versions

PACKAGES = (
    "servebench", "torch", "tensorflow", "keras", "onnx", "onnxruntime-gpu", "onnxruntime",
    "onnxscript", "tf2onnx", "tritonclient", "nvidia-pytriton", "locust", "numpy", "grpcio",
)  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return (
        [line.strip() for line in out.stdout.splitlines() if line.strip()]
        if out.returncode == 0
        else []
    )


def triton_version(http_url: str) -> str | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{http_url.split('://')[-1]}/v2", timeout=5) as r:
            return json.loads(r.read()).get("version")
    except (OSError, ValueError):
        return None


def artifact_hashes(model_dirs: list[Path]) -> dict[str, str]:
    """sha256 of each model's artifact (a SavedModel is hashed by its saved_model.pb)."""
    hashes = {}
    for model_dir in model_dirs:
        version = model_dir / "1"
        for candidate in ("model.onnx", "model.pt", "model.savedmodel/saved_model.pb"):
            if (version / candidate).is_file():
                hashes[model_dir.name] = file_sha256(version / candidate)
                break
    return hashes


def build_manifest(config: dict, model_dirs: list[Path], engine: str, triton: str | None) -> dict:
    return {
        "command": " ".join(sys.argv),
        "config": config,
        "engine": engine,
        "triton_version": triton,
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu": gpu_names() or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": package_versions(PACKAGES),
        "artifact_sha256": artifact_hashes(model_dirs),
    }
