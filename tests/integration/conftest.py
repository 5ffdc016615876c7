"""Integration fixtures: a native repository written by the real exporters from tiny models."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from exporters.spec import ModelSpec

MAX_BATCH = 8


@dataclasses.dataclass
class NativeRepo:
    path: Path
    specs: dict[str, ModelSpec]
    reference: dict[str, Callable[[np.ndarray], np.ndarray]]  # model name -> source model
    samples: dict[str, np.ndarray]  # model name -> preprocessed held-out inputs


@pytest.fixture(scope="session")
def native_repo(tiny_runs, tmp_path_factory) -> NativeRepo:
    """seedcnn in all four paths (torch: torchscript, onnx; tf: savedmodel, onnx)."""
    from exporters.export import (
        ExportConfig,
        export_checkpoint,
        reference_fn,
        source_from_checkpoint,
    )
    from exporters.repository import read_sidecar
    from exporters.triton_config import ServingOptions
    from models.checkpoint import read_checkpoint

    root = tmp_path_factory.mktemp("native_repo")
    repo = NativeRepo(path=root, specs={}, reference={}, samples={})
    for framework in ("torch", "tf"):
        run_dir = tiny_runs["seedcnn", framework]
        config = ExportConfig(
            checkpoint=run_dir, repo=root, serving=ServingOptions(max_batch_size=MAX_BATCH)
        )
        results = export_checkpoint(config)
        assert all(r.ok for r in results), [r.error for r in results]
        source = source_from_checkpoint(read_checkpoint(run_dir))
        for r in results:
            repo.specs[r.name] = ModelSpec.from_dict(read_sidecar(r.model_dir)["spec"])
            repo.reference[r.name] = reference_fn(source)
            repo.samples[r.name] = source.samples
    return repo
