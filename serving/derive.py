"""Derive a *served* repository (Python backend + shim) from a *native* Triton repository.

The native repository (written by ``exporters/``) uses ``onnxruntime_onnx``, ``pytorch_libtorch``
and ``tensorflow_savedmodel``; the embedded server only ships the Python backend. The served copy
keeps every tensor name, shape and batching setting, switches the config to ``backend: "python"``,
drops what the Python backend rejects, puts the shim ``model.py`` in each version directory and
*symlinks* the artifacts, ``labels.txt`` and ``servebench.json`` (nothing large is copied).

The output directory is build output: rebuilding it is idempotent, stale models are removed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from serving.errors import ServedRepoError

LOGGER = logging.getLogger(__name__)

SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "model.py"
MARKER = ".servebench-served"
THREADS_PARAMETER = "servebench_threads"
# ModelConfig fields that only make sense for the native backends
_DROPPED_FIELDS = ("platform", "runtime", "default_model_filename", "cc_model_filenames")
_DROPPED_OPTIMIZATION = ("execution_accelerators", "graph", "cuda")


def derive_served_repo(native_repo: Path, out_dir: Path, threads: int = 1) -> Path:
    """Build (or rebuild) the served repository for ``native_repo`` in ``out_dir``; return it."""
    native_repo, out_dir = Path(native_repo).resolve(), Path(out_dir).resolve()
    if threads < 1:
        raise ServedRepoError(f"threads must be >= 1, got {threads}")
    model_dirs = _native_model_dirs(native_repo)
    _prepare_out_dir(out_dir)
    names = set()
    for model_dir in model_dirs:
        _derive_model(model_dir, out_dir, threads)
        names.add(model_dir.name)
    for stale in out_dir.iterdir():
        if stale.is_dir() and stale.name not in names:
            LOGGER.info("removing stale served model %s", stale)
            shutil.rmtree(stale)
    LOGGER.info("served repository %s: %d model(s)", out_dir, len(names))
    return out_dir


def served_config_text(native_config: str, threads: int = 1) -> str:
    """The native ``config.pbtxt`` text rewritten for the Python backend (typed via protobuf)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(native_config, model_config_pb2.ModelConfig())
    for field in _DROPPED_FIELDS:
        config.ClearField(field)
    for field in _DROPPED_OPTIMIZATION:
        config.optimization.ClearField(field)
    if not config.HasField("optimization") or config.optimization.ByteSize() == 0:
        config.ClearField("optimization")
    config.backend = "python"
    config.parameters[THREADS_PARAMETER].string_value = str(threads)
    return text_format.MessageToString(config)


def _native_model_dirs(native_repo: Path) -> list[Path]:
    if not native_repo.is_dir():
        raise ServedRepoError(
            f"native model repository {native_repo} does not exist; export models first"
        )
    from exporters.repository import list_models

    dirs = list_models(native_repo)
    if not dirs:
        raise ServedRepoError(
            f"no model in {native_repo}: expected <name>/config.pbtxt directories; export first"
        )
    return dirs


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise ServedRepoError(
            f"{out_dir} exists and is not a servebench served repository (no {MARKER}); "
            "choose an empty or new directory"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("build output of serving.derive; safe to delete\n")


def _derive_model(model_dir: Path, out_dir: Path, threads: int) -> None:
    """Build ``out_dir/<name>`` in a staging directory, then swap it into place."""
    staging = out_dir / f".staging-{model_dir.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    version_dirs = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    for entry in sorted(model_dir.iterdir()):
        if entry.name == "config.pbtxt" or entry in version_dirs:
            continue
        (staging / entry.name).symlink_to(entry.resolve())
    if not version_dirs:  # keep the model visible so Triton reports it failing, by name
        LOGGER.warning("%s has no version directory; its load will fail", model_dir.name)
        (staging / "1").mkdir()
        shutil.copyfile(SHIM_SOURCE, staging / "1" / "model.py")
    for version_dir in version_dirs:
        target = staging / version_dir.name
        target.mkdir()
        for artifact in version_dir.iterdir():
            (target / artifact.name).symlink_to(artifact.resolve())
        shutil.copyfile(SHIM_SOURCE, target / "model.py")
    config = served_config_text((model_dir / "config.pbtxt").read_text(), threads)
    (staging / "config.pbtxt").write_text(config)
    final = out_dir / model_dir.name
    if final.exists():
        old = out_dir / f".old-{model_dir.name}"
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
