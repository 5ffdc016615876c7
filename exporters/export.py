"""Export a trained model along every path of its framework, prove parity, write the repository.

``export_checkpoint(ExportConfig)`` is what ``servebench export`` calls; ``export_model`` does
the same for an in-memory model (library use, and the batch-frozen test model).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from exporters import onnx_tools
from exporters.errors import ExportInputError, ParityError
from exporters.parity import ParityResult, check_parity, parity_batch_sizes
from exporters.repository import check_repo, check_target, finish_model_dir, staging_dir
from exporters.runtimes import load_runner
from exporters.spec import ARTIFACT_NAMES, FORMATS, FRAMEWORK_FORMATS, ModelSpec, model_name
from exporters.triton_config import ServingOptions, config_dict, to_pbtxt
from models.checkpoint import CheckpointInfo, load_model, read_checkpoint
from models.datasets import Preprocess, load_dataset

log = logging.getLogger(__name__)

MIN_PARITY_SAMPLES = 256


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    repo: Path = Path("model_repo")
    formats: tuple[str, ...] | None = None  # None: every format of the checkpoint's framework
    serving: ServingOptions = ServingOptions()
    opset: int = 17
    triton_version: str = "24.10"
    atol: float | None = None  # None: the architecture's registered tolerance
    force: bool = False
    keep_failed: bool = False
    export_batch: int = 2  # the batch traced at export; parity runs at other batch sizes
    cache_key: str = ""  # recorded in provenance; the pipeline skips exports whose key matches


@dataclasses.dataclass
class ExportResult:
    name: str
    format: str
    status: str  # "passed" | "failed" (parity) | "kept-failed" | "error"
    model_dir: Path | None = None
    export_seconds: float = 0.0
    artifact_bytes: int = 0
    parity: ParityResult | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "format": self.format,
            "status": self.status,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "export_seconds": self.export_seconds,
            "artifact_bytes": self.artifact_bytes,
            "parity": self.parity.to_dict() if self.parity else None,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True)
class Source:
    """A model in memory plus what the exporters need to know about it."""

    model: object
    framework: str
    arch: str
    classes: tuple[str, ...]
    preprocess: Preprocess
    samples: np.ndarray  # preprocessed held-out inputs in the model's layout
    checkpoint_sha256: str = ""
    checkpoint_dir: str = ""


def export_checkpoint(config: ExportConfig) -> list[ExportResult]:
    check_repo(config.repo)
    info = read_checkpoint(config.checkpoint)
    formats = resolve_formats(info.framework, config.formats)
    if "onnx" in formats:
        from exporters.onnx_tools import check_release

        check_release(config.triton_version, config.opset)
    for fmt in formats:  # refuse before anything is written
        check_target(config.repo, model_name(info.arch, info.framework, fmt), config.force)
    return export_model(source_from_checkpoint(info), formats, config)


def resolve_formats(framework: str, requested) -> tuple[str, ...]:
    allowed = FRAMEWORK_FORMATS[framework]
    if not requested or tuple(requested) == ("all",):
        return allowed
    for fmt in requested:
        if fmt not in FORMATS:
            raise ExportInputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        if fmt not in allowed:
            raise ExportInputError(
                f"a {framework} checkpoint cannot be exported to {fmt}; {framework} exports to "
                f"{', '.join(allowed)}"
            )
    return tuple(requested)


def source_from_checkpoint(info: CheckpointInfo) -> Source:
    model = load_model(info)
    dataset = load_dataset(info.data, info.preprocess.image_size, seed=info.seed)
    images = dataset.test_images
    if len(images) < MIN_PARITY_SAMPLES:  # small test split: add training images, still real
        images = np.concatenate([images, dataset.train_images])[:MIN_PARITY_SAMPLES]
    return Source(
        model=model,
        framework=info.framework,
        arch=info.arch,
        classes=tuple(info.classes),
        preprocess=info.preprocess,
        samples=info.preprocess.apply(images),
        checkpoint_sha256=info.sha256(),
        checkpoint_dir=str(info.run_dir.resolve()),
    )


def export_model(source: Source, formats, config: ExportConfig) -> list[ExportResult]:
    config.serving.validate()
    return [_export_one(source, fmt, config) for fmt in formats]


def _export_one(source: Source, fmt: str, config: ExportConfig) -> ExportResult:
    from models.registry import get_arch

    name = model_name(source.arch, source.framework, fmt)
    target = check_target(config.repo, name, config.force)
    staging = staging_dir(config.repo, name)
    result = ExportResult(name=name, format=fmt, status="error")
    try:
        artifact = staging / "1" / ARTIFACT_NAMES[fmt]
        artifact.parent.mkdir()
        start = time.perf_counter()
        _write_artifact(source, fmt, artifact, config)
        result.export_seconds = round(time.perf_counter() - start, 3)
        result.artifact_bytes = _size(artifact)
        spec = _read_spec(source, fmt, artifact, name, config)
        atol = config.atol if config.atol is not None else get_arch(source.arch).atol
        sizes = parity_batch_sizes(spec.max_batch_size, config.export_batch)
        result.parity = _parity(source, fmt, artifact, spec, atol, sizes)
        if not result.parity.passed and not config.keep_failed:
            result.status = "failed"
            result.error = str(ParityError(name, result.parity.failures))
            log.error("%s", result.error)
            return result
        result.status = "passed" if result.parity.passed else "kept-failed"
        sidecar = _sidecar(source, spec, result, config)
        pbtxt = to_pbtxt(config_dict(spec, config.serving, source.preprocess))
        finish_model_dir(staging, target, pbtxt, source.classes, sidecar, config.force)
        result.model_dir = target
        log.info("%s: %s (max abs diff %.2e)", name, result.status, result.parity.max_abs_diff)
        return result
    except ExportInputError:
        raise
    except Exception as exc:  # an exporter failure is reported per path; the others go on
        log.exception("export of %s failed", name)
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_artifact(source: Source, fmt: str, artifact: Path, config: ExportConfig) -> None:
    example = source.samples[: config.export_batch]
    if source.framework == "torch":
        from exporters import torch_paths

        if fmt == "torchscript":
            torch_paths.export_torchscript(source.model, example, artifact)
        else:
            torch_paths.export_onnx(
                source.model, example, artifact, config.opset, config.serving.max_batch_size
            )
    else:
        from exporters import tf_paths

        if fmt == "savedmodel":
            tf_paths.export_savedmodel(source.model, artifact)
        else:
            tf_paths.export_onnx(source.model, artifact, config.opset)
    if fmt == "onnx":
        onnx_tools.assert_self_contained(artifact)
        onnx_tools.check_compatible(artifact, config.triton_version, config.opset)


def _read_spec(source: Source, fmt: str, artifact: Path, name: str, config) -> ModelSpec:
    if fmt == "onnx":
        inputs, outputs = onnx_tools.read_io(artifact)
    elif fmt == "torchscript":
        from exporters.torch_paths import torchscript_io

        # run at the export batch: a batch-frozen trace must fail in parity, not here
        inputs, outputs = torchscript_io(artifact, source.samples[: config.export_batch])
    else:
        from exporters.tf_paths import savedmodel_io

        inputs, outputs = savedmodel_io(artifact)
    return ModelSpec(
        name=name,
        arch=source.arch,
        framework=source.framework,
        format=fmt,
        inputs=inputs,
        outputs=outputs,
        layout=source.preprocess.layout,
        max_batch_size=config.serving.max_batch_size,
        classes=source.classes,
    )


def _parity(source: Source, fmt: str, artifact: Path, spec: ModelSpec, atol: float, sizes):
    runner = load_runner(
        fmt, artifact, [t.name for t in spec.inputs], [t.name for t in spec.outputs]
    )
    return check_parity(
        runner,
        reference_fn(source),
        source.samples,
        spec.inputs[0].name,
        spec.outputs[0].name,
        sizes,
        atol,
    )


def reference_fn(source: Source):
    """The source model as ``float32 batch -> float64 logits``, in chunks."""
    if source.framework == "torch":
        import torch

        def run(x):
            with torch.no_grad():
                chunks = [source.model(torch.from_numpy(c)).numpy() for c in _chunks(x)]
            return np.concatenate(chunks).astype(np.float64)

        return run

    def run_keras(x):
        chunks = [np.asarray(source.model(c, training=False)) for c in _chunks(x)]
        return np.concatenate(chunks).astype(np.float64)

    return run_keras


def _chunks(x: np.ndarray, size: int = 64):
    return [x[i : i + size] for i in range(0, len(x), size)]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _sidecar(source: Source, spec: ModelSpec, result: ExportResult, config: ExportConfig) -> dict:
    return {
        "spec": spec.to_dict(),
        "preprocess": source.preprocess.to_dict(),
        "parity": result.parity.to_dict(),
        "provenance": {
            "checkpoint_sha256": source.checkpoint_sha256,
            "checkpoint_dir": source.checkpoint_dir,
            "export_key": config.cache_key,
            "export_seconds": result.export_seconds,
            "artifact_bytes": result.artifact_bytes,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "opset": config.opset if spec.format == "onnx" else None,
            "triton_version": config.triton_version,
            "libraries": library_versions(source.framework),
        },
    }


def library_versions(framework: str) -> dict:
    from models.versions import package_versions

    names = ["numpy", "onnx", "onnxruntime-gpu", "onnxruntime", "tritonclient"]
    names += ["torch", "onnxscript"] if framework == "torch" else ["tensorflow", "keras", "tf2onnx"]
    return package_versions(names)
