"""Session fixtures: tiny trained checkpoints reused by the export and serving tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_IMAGE_SIZE = 16
TINY_MAX_TRAIN = 256


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """A dict (arch, framework) -> run directory of a 1-epoch model on 16x16 digits."""
    from models.registry import ARCHITECTURES, FRAMEWORKS
    from models.training import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for arch in ARCHITECTURES:
        for framework in FRAMEWORKS:
            out = root / f"{arch}_{framework}"
            train(
                TrainConfig(
                    framework=framework,
                    arch=arch,
                    epochs=1,
                    image_size=TINY_IMAGE_SIZE,
                    out=out,
                    max_train=TINY_MAX_TRAIN,
                )
            )
            runs[arch, framework] = out
    return runs
