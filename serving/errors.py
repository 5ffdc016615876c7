"""Errors raised by the serving layer (all rooted at ``models.errors.ServebenchError``)."""

from __future__ import annotations

from models.errors import ServebenchError, UserInputError


class ServingError(ServebenchError):
    """A server could not be started, queried or stopped."""


class PortInUseError(UserInputError):
    """A port the server needs is already taken; the message names the port and the flag."""


class ServedRepoError(UserInputError):
    """A native repository cannot be turned into a served repository."""


class ServerStateError(ServingError):
    """The server object was used out of order (started twice, queried while stopped)."""


class ServerStartError(ServingError):
    """The server did not become ready; carries the tail of its log."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(
            f"{message}\n--- tritonserver log (tail) ---\n{log_tail}" if log_tail else message
        )
        self.log_tail = log_tail


class ModelLoadError(ServerStartError):
    """One or more models failed to load; ``failures`` maps model name -> Triton's reason."""

    def __init__(self, failures: dict[str, str], log_tail: str = ""):
        lines = "\n".join(f"  {name}: {reason}" for name, reason in sorted(failures.items()))
        super().__init__(f"{len(failures)} model(s) failed to load:\n{lines}", log_tail)
        self.failures = dict(failures)
