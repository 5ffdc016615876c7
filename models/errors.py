"""The exception hierarchy shared by every layer of servebench.

``ServebenchError`` is the root. ``UserInputError`` marks mistakes a user can fix (a wrong path, a
bad option, an existing output directory); the CLI turns it into exit code 2. Anything else that
escapes is a bug or an environment failure and exits 1.
"""

from __future__ import annotations


class ServebenchError(Exception):
    """Base class of every error servebench raises on purpose."""


class UserInputError(ServebenchError):
    """The input is wrong; the message says what was expected, what was found and what to do."""


class DatasetError(UserInputError):
    """A dataset folder or file cannot be used."""


class CheckpointError(UserInputError):
    """A training run directory or checkpoint cannot be read."""
