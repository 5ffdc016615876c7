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


class InferenceError(ServingError):
    """Triton answered a request with an error; carries Triton's status and its own message.

    ``status`` is the HTTP code ("400", "404") or the gRPC code name ("INVALID_ARGUMENT").
    """

    def __init__(self, status: str, triton_message: str, url: str, sent: str):
        super().__init__(
            f"Triton at {url} rejected the request with status {status}: {triton_message}\n"
            f"  sent: {sent}"
        )
        self.status = status
        self.triton_message = triton_message
        self.url = url
        self.sent = sent


class ServerUnreachableError(ServingError, UserInputError):
    """No answer from the server: refused, reset mid-request, timed out or another protocol.

    ``cause`` says what happened and names the URL ("connection to 127.0.0.1:8000 refused: is the
    server running?"); ``detail`` is the transport's own message.
    """

    def __init__(self, cause: str, url: str, detail: str = ""):
        super().__init__(f"{cause} [{detail}]" if detail else cause)
        self.cause = cause
        self.url = url
        self.detail = detail


class UnknownModelError(UserInputError):
    """A model name the repository or the server does not have; the message lists those it has."""
