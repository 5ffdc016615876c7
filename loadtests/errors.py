"""Errors of the load-test layer, under servebench's one hierarchy."""

from __future__ import annotations

from models.errors import ServebenchError, UserInputError


class LoadTestError(ServebenchError):
    """A load test could not run (the server or the model is not what it should be)."""


class LoadTestInputError(UserInputError):
    """A load-test option or input file is wrong; the message says what to pass instead."""


class InferenceFailure(LoadTestError):
    """One request failed; ``kind`` names the failure for the error counts (``http_500``...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
