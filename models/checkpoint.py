"""Training run directories: the checkpoint plus the metadata every later stage needs.

A run directory holds ``model.pt`` (PyTorch: state dict, arch, classes, preprocessing) or
``model.keras`` (Keras), ``checkpoint.json`` (framework, arch, classes, preprocessing, the data
source and seed that reproduce the held-out split) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

from models.datasets import Preprocess
from models.errors import CheckpointError
from models.registry import FRAMEWORKS, get_arch

log = logging.getLogger(__name__)

META_FILE = "checkpoint.json"
METRICS_FILE = "metrics.json"
MODEL_FILES = {"torch": "model.pt", "tf": "model.keras"}


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a run directory says about its model (read without importing a framework)."""

    run_dir: Path
    framework: str
    arch: str
    classes: list[str]
    preprocess: Preprocess
    data: str
    seed: int

    @property
    def model_file(self) -> Path:
        return self.run_dir / MODEL_FILES[self.framework]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "arch": self.arch,
            "classes": self.classes,
            "preprocess": self.preprocess.to_dict(),
            "data": self.data,
            "seed": self.seed,
            "model_file": MODEL_FILES[self.framework],
        }

    def sha256(self) -> str:
        return file_sha256(self.model_file)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_meta(info: CheckpointInfo) -> None:
    (info.run_dir / META_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")


def read_checkpoint(run_dir: Path | str) -> CheckpointInfo:
    """Validate a run directory and return its metadata; errors name the missing piece."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise CheckpointError(
            f"checkpoint {run_dir} is a file; expected the run directory of 'servebench train' "
            f"(the folder holding {META_FILE} and the model file): pass its folder "
            f"{run_dir.parent}"
        )
    if not run_dir.is_dir():
        raise CheckpointError(
            f"checkpoint directory {run_dir} does not exist; pass the --out folder of "
            "'servebench train'"
        )
    meta_path = run_dir / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(
            f"{run_dir} holds no {META_FILE}; expected a folder written by 'servebench train'"
        )
    try:
        meta = json.loads(meta_path.read_text())
        info = CheckpointInfo(
            run_dir=run_dir,
            framework=meta["framework"],
            arch=meta["arch"],
            classes=list(meta["classes"]),
            preprocess=Preprocess.from_dict(meta["preprocess"]),
            data=meta["data"],
            seed=int(meta["seed"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path} is corrupt ({exc!r}); retrain with --force") from exc
    if info.framework not in FRAMEWORKS:
        raise CheckpointError(f"{meta_path}: unknown framework {info.framework!r}")
    get_arch(info.arch)
    if not info.model_file.is_file():
        raise CheckpointError(f"{info.model_file} is missing; retrain into {run_dir} with --force")
    return info


def load_model(info: CheckpointInfo):
    """The trained model, in eval mode (PyTorch) or as a Keras model."""
    arch = get_arch(info.arch)
    pre = info.preprocess
    if info.framework == "torch":
        import torch

        try:
            payload = torch.load(info.model_file, map_location="cpu", weights_only=True)
            model = arch.build_torch(info.num_classes, pre.channels, pre.image_size)
            model.load_state_dict(payload["state_dict"])
        except Exception as exc:  # torch raises many types for a damaged file
            raise CheckpointError(
                f"cannot load {info.model_file}: {exc}; the file is damaged or not a servebench "
                "checkpoint, retrain with --force"
            ) from exc
        return model.eval()
    import keras

    try:
        return keras.saving.load_model(info.model_file, compile=False)
    except Exception as exc:  # keras raises many types for a damaged file
        raise CheckpointError(
            f"cannot load {info.model_file}: {exc}; the file is damaged or not a Keras model, "
            "retrain with --force"
        ) from exc
