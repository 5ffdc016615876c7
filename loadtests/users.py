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
from locust.exception import StopUser

from . import http_conn, kserve_grpc, kserve_http
from .batches import Batch, Workload, build_batches
from .errors import InferenceFailure, LoadTestError
from .schedule import ArrivalSchedule
from .target import TritonTarget

PROTOCOLS = ("http", "grpc")
DEFAULT_TIMEOUT_S = 30.0
HEADER_LENGTH_KEY = kserve_http.HEADER_LENGTH.lower()  # http_conn lower-cases header names


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
        """One request: sent, then the previous one reported, then this one's answer read."""
        if not self._payloads:  # the run was refused at start (see on_start)
            raise StopUser()
        scheduled = self._wait_for_slot(self.setup.schedule)
        payload = self._payloads[self._next % len(self._payloads)]
        self._next += 1
        start_time = time.time()
        sent = time.perf_counter_ns()
        response = failure = handle = None
        try:
            handle = self._issue(payload)
        except InferenceFailure as exc:
            failure = exc
        self._report_pending()  # while this request is on the wire
        if failure is None:
            try:
                response = self._complete(handle)
            except InferenceFailure as exc:
                failure = exc
        end = time.perf_counter_ns()
        self._pending = _Exchange(payload, response, failure, start_time, scheduled, sent, end)

    def on_stop(self) -> None:
        self._report_pending()

    def _report_pending(self) -> None:
        """Check the last answer and fire ``events.request`` for it (once)."""
        exchange, self._pending = getattr(self, "_pending", None), None
        if exchange is None:
            return
        failure, length = exchange.failure, 0
        if failure is None:
            try:
                length = self._check(exchange.payload, exchange.response)
            except InferenceFailure as exc:
                failure = exc
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=self.setup.target.model,
            response_time=(exchange.end_ns - exchange.scheduled_ns) / 1e6,
            response_length=length,
            response=None,
            exception=failure,
            start_time=exchange.start_time,
            url=None,
            context={
                "scheduled_ns": exchange.scheduled_ns,
                "sent_ns": exchange.sent_ns,
                "end_ns": exchange.end_ns,
                "error_kind": None if failure is None else failure.kind,
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

    def _issue(self, payload: Any) -> Any:
        """Put the request on the wire; a handle for ``_complete``. Raises InferenceFailure."""
        raise NotImplementedError

    def _complete(self, handle: Any) -> Any:
        """Wait for the answer to an issued request; the raw response. Raises InferenceFailure."""
        raise NotImplementedError

    def _check(self, payload: Any, response: Any) -> int:
        """Check an answer against its request; its size in bytes. Raises InferenceFailure."""
        raise NotImplementedError


@dataclasses.dataclass
class _Exchange:
    """A finished request whose answer is checked and reported after the next one is sent.

    Checking the output and Locust's bookkeeping cost client CPU; done while the next request
    is on the wire, they stay off the path between an answer and the next request, the way a
    load generator written in C++ keeps them off it. The times are taken when they happen.
    """

    payload: Any
    response: Any
    failure: InferenceFailure | None
    start_time: float  # time.time(), for Locust
    scheduled_ns: int  # perf_counter_ns
    sent_ns: int
    end_ns: int


class TritonHttpUser(TritonUser, FastHttpUser):
    """KServe v2 over HTTP/1.1 with the binary tensor extension, one keep-alive connection.

    A FastHttpUser: ``self.client`` is there for any extra requests a subclass adds, and the
    class attributes ``connection_timeout``, ``network_timeout`` and ``insecure`` apply. The
    inference task itself sends each pre-serialised request on a lean keep-alive connection
    (``http_conn``), which costs a third of the client CPU per request (measured; see there).
    """

    abstract = True
    request_type = "HTTP"
    max_retries = 0  # a retry would hide a failure inside one longer request
    network_timeout = DEFAULT_TIMEOUT_S

    def on_start(self) -> None:
        super().on_start()
        if self.setup is not None:
            self._connection = http_conn.KeepAliveConnection(
                self._endpoint(),
                connect_timeout_s=self.connection_timeout,
                timeout_s=self.setup.timeout_s,
                insecure=self.insecure,
            )

    def on_stop(self) -> None:
        super().on_stop()
        connection = getattr(self, "_connection", None)
        if connection is not None:
            connection.close()

    def _endpoint(self) -> http_conn.Endpoint:
        try:
            return http_conn.Endpoint.parse(self.setup.target.http_url)
        except ValueError as exc:
            raise LoadTestError(f"bad HTTP URL for {self.setup.target.model}: {exc}") from exc

    def _prepare(self, batch: Batch) -> tuple[bytes, kserve_http.ExpectedOutput]:
        request = kserve_http.encode_request(self.setup.target, batch)
        data = http_conn.serialize_request(
            self._endpoint(), "POST", request.path, request.headers, request.body
        )
        batch_size = _batch_size(self.setup.target, batch)
        return data, kserve_http.ExpectedOutput.for_batch(self.setup.target, batch_size)

    def _issue(self, payload: tuple[bytes, kserve_http.ExpectedOutput]) -> None:
        try:
            self._connection.send(payload[0])
        except http_conn.HttpTransportError as exc:
            raise InferenceFailure(exc.kind, str(exc)) from exc

    def _complete(self, handle: None) -> http_conn.HttpResponse:
        try:
            return self._connection.read_response()
        except http_conn.HttpTransportError as exc:
            raise InferenceFailure(exc.kind, str(exc)) from exc

    def _check(
        self, payload: tuple[bytes, kserve_http.ExpectedOutput], response: http_conn.HttpResponse
    ) -> int:
        body = response.body
        if response.status != 200:
            detail = body[:300].decode(errors="replace") or "(no response body)"
            raise InferenceFailure(f"http_{response.status}", f"HTTP {response.status}: {detail}")
        header_length = response.headers.get(HEADER_LENGTH_KEY)
        if header_length is not None and not header_length.isdigit():
            raise InferenceFailure("bad_response", f"{HEADER_LENGTH_KEY}: {header_length!r}")
        length = None if header_length is None else int(header_length)
        kserve_http.check_response(body, length, payload[1])
        return len(body)


class TritonGrpcUser(TritonUser):
    """KServe v2 over gRPC; its blocking calls run in OS threads (see ``kserve_grpc``)."""

    abstract = True
    request_type = "gRPC"

    def on_start(self) -> None:
        super().on_start()
        if self.setup is not None:  # None: the run was refused at start (see TritonUser)
            target = self.setup.target
            self._caller = kserve_grpc.GrpcInferCaller(target.grpc_url, self.setup.timeout_s)

    def on_stop(self) -> None:
        super().on_stop()
        caller = getattr(self, "_caller", None)
        if caller is not None:
            caller.close()

    def _prepare(self, batch: Batch) -> tuple[Any, int]:
        return kserve_grpc.build_request(self.setup.target, batch), _batch_size(
            self.setup.target, batch
        )

    def _issue(self, payload: tuple[Any, int]) -> Any:
        return self._caller.submit(payload[0])

    def _complete(self, handle: Any) -> Any:
        import grpc

        try:
            return self._caller.wait(handle)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise InferenceFailure(f"grpc_{code}", f"gRPC {code}: {details}") from exc
        except ValueError as exc:  # the channel was closed under a queued call (user stopping)
            raise InferenceFailure("grpc_channel_closed", str(exc)) from exc

    def _check(self, payload: tuple[Any, int], response: Any) -> int:
        kserve_grpc.decode_response(response, self.setup.target, payload[1])
        return response.ByteSize()


BASES: dict[str, type[TritonUser]] = {"http": TritonHttpUser, "grpc": TritonGrpcUser}


def user_class_for(protocol: str, setup: UserSetup) -> type[TritonUser]:
    """A concrete, configured user class for one run (a fresh subclass: no shared state)."""
    base = BASES[protocol]
    name = f"{setup.target.model}_{protocol}".replace("-", "_")
    return type(name, (base,), {"abstract": False, "setup": setup, "host": setup.target.http_url})


def _batch_size(target: TritonTarget, batch: Batch) -> int:
    return int(batch.array.shape[0]) if target.max_batch_size > 0 else 1
