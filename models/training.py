"""Train a registered CNN in PyTorch or Keras with one shared recipe.

Recipe (both frameworks): Adam lr 1e-3, cross-entropy on logits, batch 32, fixed seeds, the
dataset's preprocessing. ``train`` returns a :class:`TrainResult` and writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from models.checkpoint import METRICS_FILE, MODEL_FILES, CheckpointInfo, write_meta
from models.datasets import Dataset, load_dataset
from models.errors import UserInputError
from models.progress import EpochProgress
from models.registry import FRAMEWORKS, get_arch

log = logging.getLogger(__name__)

BATCH_SIZE = 32
LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    framework: str
    arch: str = "seedcnn"
    data: str = "digits"
    epochs: int = 3
    image_size: int | None = None
    out: Path = Path("runs/seedcnn_torch")
    seed: int = 0
    force: bool = False
    max_train: int | None = None  # cap on training samples (tiny models for tests)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    framework: str
    arch: str
    run_dir: Path
    test_accuracy: float
    train_seconds: float
    num_train: int
    num_test: int
    epoch_losses: list[float]

    def metrics(self) -> dict:
        return {
            "framework": self.framework,
            "arch": self.arch,
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
            "num_train": self.num_train,
            "num_test": self.num_test,
            "epoch_losses": self.epoch_losses,
        }


def train(config: TrainConfig) -> TrainResult:
    """Train, evaluate on the test split and write ``config.out``."""
    _validate(config)
    arch = get_arch(config.arch)
    dataset = load_dataset(config.data, config.image_size, seed=config.seed)
    train_x, train_y = dataset.train_images, dataset.train_labels
    if config.max_train:
        train_x, train_y = train_x[: config.max_train], train_y[: config.max_train]
    layout = "NCHW" if config.framework == "torch" else "NHWC"
    pre = dataset.preprocess.with_layout(layout)
    x_train, x_test = pre.apply(train_x), pre.apply(dataset.test_images)
    staging = _staging_dir(config.out)
    start = time.perf_counter()
    fit = _fit_torch if config.framework == "torch" else _fit_keras
    losses, test_logits = fit(arch, dataset, config, x_train, train_y, x_test, staging)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(test_logits, axis=1) == dataset.test_labels))
    info = CheckpointInfo(
        run_dir=staging,
        framework=config.framework,
        arch=config.arch,
        classes=dataset.classes,
        preprocess=pre,
        data=config.data,
        seed=config.seed,
    )
    write_meta(info)
    result = TrainResult(
        framework=config.framework,
        arch=config.arch,
        run_dir=config.out,
        test_accuracy=accuracy,
        train_seconds=round(seconds, 3),
        num_train=len(train_y),
        num_test=len(dataset.test_labels),
        epoch_losses=losses,
    )
    metrics = result.metrics() | {
        "epochs": config.epochs,
        "data": config.data,
        "image_size": pre.image_size,
        "seed": config.seed,
    }
    (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    _publish(staging, config.out)
    log.info("%s/%s test accuracy %.4f in %.1f s", config.framework, config.arch, accuracy, seconds)
    return result


def _validate(config: TrainConfig) -> None:
    if config.framework not in FRAMEWORKS:
        raise UserInputError(
            f"unknown framework {config.framework!r}; expected one of {', '.join(FRAMEWORKS)}"
        )
    get_arch(config.arch)
    if config.epochs < 1:
        raise UserInputError(f"--epochs must be at least 1; found {config.epochs}")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; pass a directory")
    if out.is_dir() and any(out.iterdir()) and not config.force:
        raise UserInputError(
            f"{out} exists and is not empty; pass --force to overwrite it or choose another --out"
        )


def _staging_dir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Replace ``out`` with the finished run (so a crash never leaves a half-written run)."""
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def _fit_torch(arch, dataset: Dataset, config: TrainConfig, x_train, y_train, x_test, out: Path):
    import torch
    from torch import nn

    torch.manual_seed(config.seed)
    pre = dataset.preprocess
    model = arch.build_torch(dataset.num_classes, pre.channels, pre.image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    with EpochProgress(f"train {config.arch} torch", config.epochs) as progress:
        for _ in range(config.epochs):
            model.train()
            order = torch.randperm(len(xs), generator=generator)
            total, count = 0.0, 0
            for i in range(0, len(xs), BATCH_SIZE):
                idx = order[i : i + BATCH_SIZE]
                optimizer.zero_grad()
                loss = loss_fn(model(xs[idx]), ys[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            losses.append(round(total / count, 6))
            progress.epoch_done(losses[-1])
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(b) for b in torch.from_numpy(x_test).split(256)]).numpy()
    torch.save(
        {
            "state_dict": model.state_dict(),
            "arch": config.arch,
            "classes": dataset.classes,
            "preprocess": pre.with_layout("NCHW").to_dict(),
        },
        out / MODEL_FILES["torch"],
    )
    return losses, logits


def _fit_keras(arch, dataset: Dataset, config: TrainConfig, x_train, y_train, x_test, out: Path):
    import keras

    keras.utils.set_random_seed(config.seed)
    pre = dataset.preprocess
    model = arch.build_keras(dataset.num_classes, pre.channels, pre.image_size)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    losses: list[float] = []
    with EpochProgress(f"train {config.arch} tf", config.epochs) as progress:

        class _Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                losses.append(round(float(logs["loss"]), 6))
                progress.epoch_done(losses[-1])

        model.fit(
            x_train,
            y_train,
            batch_size=BATCH_SIZE,
            epochs=config.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[_Report()],
        )
    logits = model.predict(x_test, batch_size=256, verbose=0)
    model.save(out / MODEL_FILES["tf"])
    return losses, np.asarray(logits)
