"""KServe v2 HTTP inference with the binary tensor extension: encode a request, check a response.

Request: a JSON header (inputs with ``binary_data_size``, outputs with ``binary_data: true``)
followed by the raw little-endian tensor bytes; the header's length travels in the
``Inference-Header-Content-Length`` HTTP header. The response has the same layout.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from exporters.spec import TRITON_TO_NUMPY

from .batches import Batch
from .errors import InferenceFailure
from .target import TritonTarget, shape_matches

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclasses.dataclass(frozen=True)
class HttpInferRequest:
    path: str
    body: bytes
    headers: dict[str, str]


def encode_request(target: TritonTarget, batch: Batch) -> HttpInferRequest:
    header = {
        "inputs": [
            {
                "name": target.input.name,
                "shape": list(batch.array.shape),
                "datatype": target.input.dtype,
                "parameters": {"binary_data_size": len(batch.raw)},
            }
        ],
        "outputs": [{"name": target.output.name, "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }
    return HttpInferRequest(f"/v2/models/{target.model}/infer", head + batch.raw, headers)


@dataclasses.dataclass(frozen=True)
class ExpectedOutput:
    """What a correct response carries for one batch size; built once, checked per response."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 where the model's dim is variable
    dtype: np.dtype

    @classmethod
    def for_batch(cls, target: TritonTarget, batch_size: int) -> ExpectedOutput:
        dtype = np.dtype(TRITON_TO_NUMPY[target.output.dtype]).newbyteorder("<")
        return cls(target.output.name, target.output.dtype, target.output_shape(batch_size), dtype)


def decode_response(
    body: bytes, header_length: int | None, target: TritonTarget, batch_size: int
) -> np.ndarray:
    """The output tensor; raises InferenceFailure("bad_response") unless it is what was asked."""
    return check_response(body, header_length, ExpectedOutput.for_batch(target, batch_size))


def check_response(body: bytes, header_length: int | None, expected: ExpectedOutput) -> np.ndarray:
    """``decode_response`` with the expectation built beforehand (the load-test hot path)."""
    head_bytes = body if header_length is None else body[:header_length]
    try:
        head = json.loads(head_bytes)
        output = next(o for o in head["outputs"] if o["name"] == expected.name)
    except (ValueError, KeyError, TypeError, StopIteration) as exc:
        raise _bad(f"no output {expected.name!r} in the response header: {exc!r}") from exc
    shape = tuple(output.get("shape", ()))
    if shape != expected.shape and not (
        all(type(d) is int for d in shape) and shape_matches(shape, expected.shape)
    ):
        raise _bad(f"output shape {list(shape)}, expected {list(expected.shape)}")
    if output.get("datatype") != expected.datatype:
        raise _bad(f"output datatype {output.get('datatype')}, expected {expected.datatype}")
    size = output.get("parameters", {}).get("binary_data_size")
    if header_length is None or size is None:
        raise _bad("the output came back as JSON, not binary; the server ignored binary_data")
    expected_size = math.prod(shape) * expected.dtype.itemsize
    raw = body[header_length : header_length + size]
    if size != expected_size or len(raw) != expected_size:
        raise _bad(f"output has {len(raw)} bytes (declared {size}), expected {expected_size}")
    return np.frombuffer(raw, dtype=expected.dtype).reshape(shape)


def _bad(message: str) -> InferenceFailure:
    return InferenceFailure("bad_response", message)
