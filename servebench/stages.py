"""Content-keyed caching of the pipeline's train and export stages.

A stage is skipped when its output exists and was produced from the same inputs: for training,
the recipe (arch, framework, data, epochs, image size, seed) plus a fingerprint of the data; for
export, the checkpoint's sha256 plus the export options. ``--fresh`` ignores the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from exporters.export import ExportConfig, ExportResult, export_checkpoint, resolve_formats
from exporters.parity import ParityResult
from exporters.repository import read_sidecar
from exporters.spec import model_name
from models.checkpoint import file_sha256, read_checkpoint
from models.datasets import DIGITS
from models.training import TrainConfig, train

log = logging.getLogger(__name__)
STAGE_FILE = "stage.json"


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(source: str) -> str:
    """``digits`` is fixed; an ImageFolder is keyed by every file's path, size and mtime."""
    if source == DIGITS:
        return DIGITS
    root = Path(source)
    if not root.is_dir():
        return f"missing:{root}"
    files = sorted(
        (str(p.relative_to(root)), p.stat().st_size, int(p.stat().st_mtime))
        for p in root.rglob("*")
        if p.is_file()
    )
    return _digest(files)


def cached_train(config: TrainConfig, fresh: bool) -> dict:
    """Train unless ``config.out`` already holds a run made from the same recipe and data."""
    recipe = dataclasses.asdict(config) | {"data_fingerprint": data_fingerprint(config.data)}
    recipe.pop("out"), recipe.pop("force")
    key = _digest(recipe)
    stage = Path(config.out) / STAGE_FILE
    if not fresh and stage.is_file() and json.loads(stage.read_text()).get("key") == key:
        metrics = json.loads((Path(config.out) / "metrics.json").read_text())
        log.info("train %s/%s: cached (%s)", config.arch, config.framework, config.out)
        return metrics | {"cached": True}
    train(dataclasses.replace(config, force=True))
    stage.write_text(json.dumps({"key": key, "recipe": recipe}, indent=2) + "\n")
    return json.loads((Path(config.out) / "metrics.json").read_text()) | {"cached": False}


def export_key(checkpoint_sha: str, config: ExportConfig) -> str:
    options = dataclasses.asdict(config)
    for volatile in ("checkpoint", "repo", "force", "formats", "cache_key"):
        options.pop(volatile)
    return _digest({"checkpoint": checkpoint_sha, "options": options})


def cached_export(config: ExportConfig, fresh: bool) -> list[ExportResult]:
    """Export the formats whose model dir is missing or was made from other inputs."""
    info = read_checkpoint(config.checkpoint)
    key = export_key(file_sha256(info.model_file), config)
    todo, results = [], []
    for fmt in resolve_formats(info.framework, config.formats):
        model_dir = Path(config.repo) / model_name(info.arch, info.framework, fmt)
        sidecar = _sidecar_or_none(model_dir)
        if not fresh and sidecar and sidecar.get("provenance", {}).get("export_key") == key:
            results.append(_cached_result(model_dir, fmt, sidecar))
            log.info("export %s: cached", model_dir.name)
        else:
            todo.append(fmt)
    if todo:
        started = time.perf_counter()
        results += export_checkpoint(
            dataclasses.replace(config, formats=tuple(todo), force=True, cache_key=key)
        )
        log.info("exported %s in %.1f s", ", ".join(todo), time.perf_counter() - started)
    return results


def _sidecar_or_none(model_dir: Path) -> dict | None:
    try:
        return read_sidecar(model_dir)
    except (OSError, ValueError):
        return None


def _cached_result(model_dir: Path, fmt: str, sidecar: dict) -> ExportResult:
    parity = sidecar["parity"]
    fields = {f.name for f in dataclasses.fields(ParityResult)}
    return ExportResult(
        name=model_dir.name,
        format=fmt,
        status="passed" if parity["passed"] else "kept-failed",
        model_dir=model_dir,
        export_seconds=sidecar["provenance"]["export_seconds"],
        artifact_bytes=sidecar["provenance"]["artifact_bytes"],
        parity=ParityResult(**{k: v for k, v in parity.items() if k in fields}),
    )
