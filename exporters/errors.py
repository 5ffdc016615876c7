"""Typed errors of the export stage."""

from __future__ import annotations

from models.errors import ServebenchError, UserInputError


class ExportError(ServebenchError):
    """An artifact could not be produced."""


class ExportInputError(UserInputError):
    """The export was asked for something impossible (format, pairing, existing model dir)."""


class CompatibilityError(ExportInputError):
    """The artifact would not load on the target Triton release."""


class ParityError(ServebenchError):
    """An artifact's outputs differ from the source model's; lists every failing output."""

    def __init__(self, model: str, failures: list[str]):
        self.model = model
        self.failures = failures
        super().__init__(f"{model}: parity failed:\n  " + "\n  ".join(failures))
