"""KServe v2 gRPC inference: build a ModelInferRequest, check the response, call cooperatively.

A blocking gRPC call made in a greenlet stalls gevent's whole loop, so N users would run one
at a time; ``grpc.experimental.gevent.init_gevent()`` hung here (grpcio 1.85). ``GrpcInferCaller``
runs each blocking call in a real OS thread of a gevent ``ThreadPool``: the calling greenlet
waits on the pool's result (a thread-safe hub wake-up), the loop keeps serving the other users,
and the gRPC C core releases the GIL while the request is on the wire. The pool grows with the
number of live users, so every user has a thread and N requests are in flight at once.
"""

from __future__ import annotations

import numpy as np

from exporters.spec import TRITON_TO_NUMPY

from .batches import Batch
from .errors import InferenceFailure
from .target import TritonTarget, shape_matches

CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
SPARE_THREADS = 2


def build_request(target: TritonTarget, batch: Batch):
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=target.model)
    tensor = request.inputs.add()
    tensor.name = target.input.name
    tensor.datatype = target.input.dtype
    tensor.shape.extend(batch.array.shape)
    request.outputs.add().name = target.output.name
    request.raw_input_contents.append(batch.raw)
    return request


def decode_response(response, target: TritonTarget, batch_size: int) -> np.ndarray:
    """The output tensor; raises InferenceFailure("bad_response") unless it is what was asked."""
    names = [output.name for output in response.outputs]
    if target.output.name not in names:
        raise _bad(f"no output {target.output.name!r} in the response (got {names})")
    index = names.index(target.output.name)
    output = response.outputs[index]
    shape = tuple(output.shape)
    expected = target.output_shape(batch_size)
    if not shape_matches(shape, expected):
        raise _bad(f"output shape {list(shape)}, expected {list(expected)}")
    if output.datatype != target.output.dtype:
        raise _bad(f"output datatype {output.datatype}, expected {target.output.dtype}")
    if index >= len(response.raw_output_contents):
        raise _bad("the response carries no raw output contents")
    raw = response.raw_output_contents[index]
    dtype = np.dtype(TRITON_TO_NUMPY[target.output.dtype]).newbyteorder("<")
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise _bad(f"output has {len(raw)} bytes, expected {int(np.prod(shape)) * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


class GrpcInferCaller:
    """One channel (one HTTP/2 connection) per user; calls run in the shared thread pool."""

    _pool = None
    _live = 0

    def __init__(self, url: str, timeout_s: float):
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        self._timeout_s = timeout_s
        self._channel = grpc.insecure_channel(url, options=CHANNEL_OPTIONS)
        self._infer = service_pb2_grpc.GRPCInferenceServiceStub(self._channel).ModelInfer
        type(self)._reserve_thread()

    def submit(self, request):
        """Start the call in a pool thread; the handle ``wait`` takes."""
        return self._pool.spawn(self._call, request)

    @staticmethod
    def wait(handle):
        """The ModelInferResponse of a submitted call; blocks only the calling greenlet.

        Raises grpc.RpcError, or ValueError once the channel is closed."""
        response, error = handle.get()
        if error is not None:
            raise error
        return response

    def _call(self, request):
        """In a pool thread. The error is returned, not raised: a call still queued or running
        when its user stops (channel closed) would otherwise print a traceback from the pool."""
        import grpc

        try:
            return self._infer(request, timeout=self._timeout_s), None
        except grpc.RpcError as exc:
            return None, exc
        except ValueError as exc:  # "Cannot invoke RPC on closed channel!"
            return None, exc

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            type(self)._live -= 1

    @classmethod
    def _reserve_thread(cls) -> None:
        from gevent.threadpool import ThreadPool

        cls._live += 1
        if cls._pool is None:
            cls._pool = ThreadPool(cls._live + SPARE_THREADS)
        if cls._pool.maxsize < cls._live + SPARE_THREADS:
            cls._pool.maxsize = cls._live + SPARE_THREADS


def _bad(message: str) -> InferenceFailure:
    return InferenceFailure("bad_response", message)
