"""The main job, ``servebench run``: every stage end to end, from one config."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: str = "digits"
    archs: tuple[str, ...] = ("seedcnn",)
    frameworks: tuple[str, ...] = ("torch", "tf")
    epochs: int = 3
    image_size: int | None = None
    workdir: Path = Path("runs")
    fresh: bool = False


def run(config: RunConfig) -> list:
    """Train every (arch, framework) pair; later stages build on these run directories."""
    from models.training import TrainConfig, train

    results = []
    for arch in config.archs:
        for framework in config.frameworks:
            results.append(
                train(
                    TrainConfig(
                        framework=framework,
                        arch=arch,
                        data=config.data,
                        epochs=config.epochs,
                        image_size=config.image_size,
                        out=config.workdir / f"{arch}_{framework}",
                        force=True,
                    )
                )
            )
    return results
