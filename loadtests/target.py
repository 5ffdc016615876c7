"""TritonTarget: which model to load, where, and what its one input and output look like.

Built from a ModelSpec (``servebench.json``) or asked from the server itself (KServe v2 model
metadata and config over HTTP), so the users never assume tensor names or shapes.
"""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlsplit

from exporters.spec import ModelSpec, TensorSpec

from .errors import LoadTestInputError

METADATA_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True)
class TritonTarget:
    model: str
    http_url: str  # http://host:port
    grpc_url: str  # host:port
    input: TensorSpec
    output: TensorSpec
    max_batch_size: int  # 0: the model takes no batch dimension

    def request_shape(self, batch_size: int) -> tuple[int, ...]:
        """The full tensor shape of one request carrying ``batch_size`` samples."""
        if self.max_batch_size == 0:
            if batch_size != 1:
                raise LoadTestInputError(
                    f"model {self.model} has no batch dimension (max_batch_size 0); "
                    f"got batch size {batch_size}; pass --batch-size 1"
                )
            return self.input.dims
        if not 1 <= batch_size <= self.max_batch_size:
            raise LoadTestInputError(
                f"batch size must be 1..{self.max_batch_size} for model {self.model}, "
                f"got {batch_size}; pass a smaller --batch-size"
            )
        return (batch_size, *self.input.dims)

    def output_shape(self, batch_size: int) -> tuple[int, ...]:
        dims = self.output.dims
        return dims if self.max_batch_size == 0 else (batch_size, *dims)

    @classmethod
    def from_spec(cls, spec: ModelSpec, http_url: str, grpc_url: str) -> TritonTarget:
        _require_one("input", spec.name, spec.inputs)
        _require_one("output", spec.name, spec.outputs)
        return cls(
            spec.name, http_url, grpc_url, spec.inputs[0], spec.outputs[0], spec.max_batch_size
        )


def shape_matches(found: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Same rank, and every dim equal where ``expected`` is not variable (-1)."""
    return len(found) == len(expected) and all(
        e in (-1, f) for e, f in zip(expected, found, strict=True)
    )


def resolve_target(
    model: str, http_url: str, grpc_url: str, url_flag: str = "--url"
) -> TritonTarget:
    """Ask the server (KServe v2 over HTTP) for the model's tensors and max batch size.

    ``url_flag`` is the option that gave ``http_url``, named in the error when nothing answers.
    """
    base = f"{http_url.rstrip('/')}/v2/models/{model}"
    metadata = _get_json(base, model, url_flag)
    config = _get_json(f"{base}/config", model, url_flag)
    max_batch = int(config.get("max_batch_size", 0))
    inputs = tuple(_tensor(t, max_batch) for t in metadata.get("inputs", []))
    outputs = tuple(_tensor(t, max_batch) for t in metadata.get("outputs", []))
    _require_one("input", model, inputs)
    _require_one("output", model, outputs)
    return TritonTarget(model, http_url.rstrip("/"), grpc_url, inputs[0], outputs[0], max_batch)


def grpc_url_for(host: str | None, grpc_url: str, protocol: str) -> str:
    """The gRPC endpoint: ``--grpc-url``, else derived from ``--host`` when that is unambiguous.

    Triton's ports are 8000 (HTTP) and 8001 (gRPC) by default; a server on other ports says
    nothing about its gRPC port, and guessing 8001 could load-test some other server.
    """
    if grpc_url:
        return grpc_url.split("://")[-1]
    parts = urlsplit(host if host and "://" in host else f"http://{host or ''}")
    if parts.hostname and parts.port in (None, 8000):
        return f"{parts.hostname}:8001"
    if protocol != "grpc":
        return ""
    raise LoadTestInputError(
        f"--protocol grpc needs --grpc-url HOST:PORT: --host {host} is Triton's HTTP endpoint, "
        "and its gRPC port cannot be told from it (servebench serve: HTTP 8000, gRPC 8001)"
    )


def check_grpc_endpoint(grpc_url: str, timeout_s: float = 5.0) -> None:
    """Refuse to start when no Triton answers gRPC at ``grpc_url`` (wrong port, server down).

    Without this, every request of every gRPC scenario fails at once and the users spin.
    """
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(grpc_url) as channel:
        live = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive
        try:
            live(service_pb2.ServerLiveRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise LoadTestInputError(
                f"no Triton answers gRPC at {grpc_url} ({exc.code().name}: {exc.details()}); "
                "check --grpc-url (servebench serve: HTTP 8000, gRPC 8001), or leave grpc out "
                "of --protocols"
            ) from exc


def _get_json(url: str, model: str, url_flag: str) -> dict:
    import http.client
    import urllib.error  # late: sockets only after locust has applied gevent's patching
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=METADATA_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise LoadTestInputError(
            f"GET {url} answered {exc.code}: is model {model!r} loaded? "
            "Check the name (--model/--models) against the server's repository"
        ) from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, not
        # HTTP at all (a gRPC port answers HTTP/2 frames: show the kind, not the bytes)
        cause = f"not HTTP/1.1: {type(exc).__name__}" if isinstance(
            exc, http.client.HTTPException
        ) else exc  # fmt: skip
        raise LoadTestInputError(
            f"no Triton HTTP endpoint answers at {url} ({cause}); is the server running, and is "
            f"{url_flag} its HTTP address (servebench serve: HTTP 8000, gRPC 8001)?"
        ) from exc


def _tensor(data: dict, max_batch: int) -> TensorSpec:
    shape = [int(d) for d in data["shape"]]
    dims = shape[1:] if max_batch > 0 else shape  # metadata shows the batch dim as -1
    return TensorSpec(name=data["name"], dtype=data["datatype"], dims=tuple(dims))


def _require_one(what: str, model: str, tensors: tuple[TensorSpec, ...]) -> None:
    if len(tensors) != 1:
        names = [t.name for t in tensors]
        raise LoadTestInputError(
            f"the load tests drive models with exactly one {what}; {model} has {names}"
        )
