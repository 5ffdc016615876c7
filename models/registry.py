"""One declarative spec per architecture, with its PyTorch and Keras twins side by side.

Exporters, parity checks and tests iterate over :data:`ARCHITECTURES`; a registered architecture
that lacks a twin, or whose twins differ in parameter count, fails the test suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from models.errors import UserInputError

FRAMEWORKS = ("torch", "tf")


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """Everything that differs between architectures, as data."""

    name: str
    torch_builder: str  # "module:attr", imported late so the registry stays light
    keras_builder: str
    atol: float = 1e-4  # fp32 parity tolerance for exported artifacts
    opset: int = 17
    description: str = ""

    def build_torch(self, num_classes: int, in_channels: int, image_size: int):
        return _resolve(self.torch_builder)(num_classes, in_channels, image_size)

    def build_keras(self, num_classes: int, in_channels: int, image_size: int):
        return _resolve(self.keras_builder)(num_classes, in_channels, image_size)

    def build(self, framework: str, num_classes: int, in_channels: int, image_size: int):
        if framework == "torch":
            return self.build_torch(num_classes, in_channels, image_size)
        if framework == "tf":
            return self.build_keras(num_classes, in_channels, image_size)
        raise UserInputError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")


def _resolve(target: str) -> Callable:
    import importlib

    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            name="seedcnn",
            torch_builder="models.torch_archs:SeedCNN",
            keras_builder="models.keras_archs:build_seedcnn",
            description="two conv/pool stages and two dense layers (the classic tutorial CNN)",
        ),
        ArchSpec(
            name="resnet18",
            torch_builder="models.torch_archs:ResNet18",
            keras_builder="models.keras_archs:build_resnet18",
            description="standard ResNet-18 with batch norm",
        ),
    )
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UserInputError(
            f"unknown architecture {name!r}; expected one of {', '.join(ARCHITECTURES)}"
        ) from None
