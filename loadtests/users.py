"""Locust users that send KServe v2 inference requests to Triton, over HTTP or gRPC.

``TritonUser`` holds the protocol-independent loop: pick the next pre-built payload, wait for the
scheduled send time (open loop only), time the request with ``time.perf_counter_ns()`` and report
it through ``events.request`` with the raw times in the event's context (``SampleCollector``
keeps them; Locust's own statistics get the same request). A wrong status, a transport error or an
output of the wrong name, shape, dtype or size is a Locust failure. The concrete protocols are
``TritonHttpUser`` (FastHttpUser, binary tensor extension) and ``TritonGrpcUser``.

The users read their ``setup`` (a ``UserSetup``) from the class: ``user_class_for`` makes a
configured subclass for library runs, the locustfile sets it from the command line.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import gevent
import locust  # noqa: F401  - gevent monkey-patches here, before grpc or sockets load
from locust import FastHttpUser, User, constant, task
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, LocustBadStatusCode
from locust.exception import StopUser

from . import kserve_grpc, kserve_http
from .batches import Batch, Workload, build_batches
from .errors import InferenceFailure, LoadTestError
from .schedule import ArrivalSchedule
from .target import TritonTarget

PROTOCOLS = ("http", "grpc")
DEFAULT_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class UserSetup:
    """Everything a user needs: the model, the payloads and, for an open loop, the schedule."""

    target: TritonTarget
    workload: Workload
    batches: tuple[Batch, ...]
    schedule: ArrivalSchedule | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def build(
        cls,
        target: TritonTarget,
        workload: Workload,
        schedule: ArrivalSchedule | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> UserSetup:
        return cls(target, workload, build_batches(target, workload), schedule, timeout_s)


class TritonUser(User):
    """One closed-loop client (no think time), or one slot of an open loop's in-flight pool."""

    abstract = True
    wait_time = constant(0)
    setup: ClassVar[UserSetup | None] = None
    request_type: ClassVar[str] = ""
    _spawned: ClassVar[int] = 0

    def on_start(self) -> None:
        if self.setup is None:
            if self.environment.process_exit_code:  # the locustfile already said why
                self._payloads = []
                return
            raise LoadTestError(
                f"{type(self).__name__} has no setup; use loadtests.users.user_class_for() "
                "or run it through loadtests/locustfile.py"
            )
        self._payloads = [self._prepare(batch) for batch in self.setup.batches]
        TritonUser._spawned += 1
        self._next = TritonUser._spawned  # users start at different batches

    @task
    def infer(self) -> None:
        if not self._payloads:  # the run was refused at start (see on_start)
            raise StopUser()
        setup = self.setup
        scheduled = self._wait_for_slot(setup.schedule)
        payload = self._payloads[self._next % len(self._payloads)]
        self._next += 1
        start_time = time.time()
        sent = time.perf_counter_ns()
        error_kind = exception = None
        length = 0
        try:
            length = self._send(payload)
        except InferenceFailure as exc:
            error_kind, exception = exc.kind, exc
        end = time.perf_counter_ns()
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=setup.target.model,
            response_time=(end - scheduled) / 1e6,
            response_length=length,
            response=None,
            exception=exception,
            start_time=start_time,
            url=None,
            context={
                "scheduled_ns": scheduled,
                "sent_ns": sent,
                "end_ns": end,
                "error_kind": error_kind,
            },
        )

    @staticmethod
    def _wait_for_slot(schedule: ArrivalSchedule | None) -> int:
        if schedule is None:
            return time.perf_counter_ns()
        slot = schedule.take()
        delay_ns = slot - time.perf_counter_ns()
        if delay_ns > 0:
            gevent.sleep(delay_ns / 1e9)
        return slot

    def _prepare(self, batch: Batch) -> Any:
        """The protocol's pre-encoded request for one batch."""
        raise NotImplementedError

    def _send(self, payload: Any) -> int:
        """Send one request, check the answer; the response size in bytes. Raises InferenceFailure."""
        raise NotImplementedError


class TritonHttpUser(TritonUser, FastHttpUser):
    """KServe v2 over HTTP/1.1 with the binary tensor extension, one keep-alive connection."""

    abstract = True
    request_type = "HTTP"
    max_retries = 0  # a retry would hide a failure inside one longer request
    network_timeout = DEFAULT_TIMEOUT_S

    def _prepare(self, batch: Batch) -> tuple[kserve_http.HttpInferRequest, str, int]:
        request = kserve_http.encode_request(self.setup.target, batch)
        url = self.setup.target.http_url.rstrip("/") + request.path
        return request, url, _batch_size(self.setup.target, batch)

    def _send(self, payload: tuple[kserve_http.HttpInferRequest, str, int]) -> int:
        request, url, batch_size = payload
        try:
            response = self.client.client.urlopen(
                url, method="POST", payload=request.body, headers=request.headers
            )
            body = response.content
        except LocustBadStatusCode as exc:
            detail = _error_text(getattr(exc, "response", None))
            raise InferenceFailure(f"http_{exc.code}", f"HTTP {exc.code}: {detail}") from exc
        except FAILURE_EXCEPTIONS as exc:
            raise InferenceFailure("connection", f"{type(exc).__name__}: {exc}") from exc
        header_length = response.headers.get(kserve_http.HEADER_LENGTH)
        header_length = None if header_length is None else int(header_length)
        kserve_http.decode_response(body, header_length, self.setup.target, batch_size)
        return len(body)


class TritonGrpcUser(TritonUser):
    """KServe v2 over gRPC; its blocking calls run in OS threads (see ``kserve_grpc``)."""

    abstract = True
    request_type = "gRPC"

    def on_start(self) -> None:
        super().on_start()
        self._caller = kserve_grpc.GrpcInferCaller(self.setup.target.grpc_url, self.setup.timeout_s)

    def on_stop(self) -> None:
        caller = getattr(self, "_caller", None)
        if caller is not None:
            caller.close()

    def _prepare(self, batch: Batch) -> tuple[Any, int]:
        return kserve_grpc.build_request(self.setup.target, batch), _batch_size(
            self.setup.target, batch
        )

    def _send(self, payload: tuple[Any, int]) -> int:
        import grpc

        request, batch_size = payload
        try:
            response = self._caller.infer(request)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise InferenceFailure(f"grpc_{code}", f"gRPC {code}: {details}") from exc
        except ValueError as exc:  # the channel was closed under a queued call (user stopping)
            raise InferenceFailure("grpc_channel_closed", str(exc)) from exc
        kserve_grpc.decode_response(response, self.setup.target, batch_size)
        return response.ByteSize()


BASES: dict[str, type[TritonUser]] = {"http": TritonHttpUser, "grpc": TritonGrpcUser}


def user_class_for(protocol: str, setup: UserSetup) -> type[TritonUser]:
    """A concrete, configured user class for one run (a fresh subclass: no shared state)."""
    base = BASES[protocol]
    name = f"{setup.target.model}_{protocol}".replace("-", "_")
    return type(name, (base,), {"abstract": False, "setup": setup, "host": setup.target.http_url})


def _batch_size(target: TritonTarget, batch: Batch) -> int:
    return int(batch.array.shape[0]) if target.max_batch_size > 0 else 1


def _error_text(response) -> str:
    """Triton's error message from a failed response, shortened; the status is already known."""
    if response is None:
        return "(no response body)"
    try:
        return response.content.decode(errors="replace")[:300]
    except FAILURE_EXCEPTIONS as exc:
        return f"(body unreadable: {type(exc).__name__})"
