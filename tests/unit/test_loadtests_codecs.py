"""Request payloads and the KServe v2 codecs, checked against tritonclient's own encoders."""

import json

import numpy as np
import pytest

from exporters.spec import TensorSpec
from loadtests import kserve_grpc, kserve_http
from loadtests.batches import Workload, build_batches
from loadtests.errors import InferenceFailure, LoadTestInputError
from loadtests.target import TritonTarget

TARGET = TritonTarget(
    model="dense",
    http_url="http://127.0.0.1:8000",
    grpc_url="127.0.0.1:8001",
    input=TensorSpec("input", "FP32", (1, 16, 16)),
    output=TensorSpec("logits", "FP32", (10,)),
    max_batch_size=64,
)


def _http_response(logits: np.ndarray, shape=None, datatype="FP32") -> tuple[bytes, int]:
    """A response laid out as Triton writes it with binary_data outputs."""
    raw = logits.astype("<f4").tobytes()
    header = {
        "model_name": "dense",
        "outputs": [
            {
                "name": "logits",
                "datatype": datatype,
                "shape": list(shape or logits.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
    }
    head = json.dumps(header).encode()
    return head + raw, len(head)


def test_build_batches_is_reproducible_when_inputs_are_random_and_seeded():
    first = build_batches(TARGET, Workload(batch_size=4, inputs="random", seed=7))
    again = build_batches(TARGET, Workload(batch_size=4, inputs="random", seed=7))
    other = build_batches(TARGET, Workload(batch_size=4, inputs="random", seed=8))
    assert first[0].array.shape == (4, 1, 16, 16) and first[0].array.dtype == np.dtype("<f4")
    assert [b.raw for b in first] == [b.raw for b in again]
    assert first[0].raw != other[0].raw


def test_build_batches_cycles_through_the_samples_when_inputs_are_real():
    samples = np.arange(5 * 256, dtype=np.float64).reshape(5, 1, 16, 16)
    batches = build_batches(TARGET, Workload(batch_size=2, inputs="real", samples=samples))
    assert len(batches) == 2  # 5 samples // 2 per batch
    np.testing.assert_array_equal(batches[1].array, samples[2:4].astype(np.float32))
    assert batches[0].raw == samples[0:2].astype("<f4").tobytes()


def test_build_batches_names_the_expected_shape_when_samples_do_not_fit():
    samples = np.zeros((3, 16, 16, 1), dtype=np.float32)  # NHWC for an NCHW model
    with pytest.raises(LoadTestInputError, match=r"\(16, 16, 1\).*\(1, 16, 16\)"):
        build_batches(TARGET, Workload(inputs="real", samples=samples))


def test_build_batches_refuses_when_batch_size_exceeds_max_batch_size():
    with pytest.raises(LoadTestInputError, match="1..64"):
        build_batches(TARGET, Workload(batch_size=65))


def test_build_batches_asks_for_samples_when_inputs_are_real_without_them():
    with pytest.raises(LoadTestInputError, match="--samples"):
        build_batches(TARGET, Workload(inputs="real"))


def test_http_encode_request_matches_tritonclient_when_given_a_batch():
    import tritonclient.http as httpclient

    batch = build_batches(TARGET, Workload(batch_size=3))[0]
    request = kserve_http.encode_request(TARGET, batch)
    reference_input = httpclient.InferInput("input", list(batch.array.shape), "FP32")
    reference_input.set_data_from_numpy(batch.array, binary_data=True)
    reference_output = httpclient.InferRequestedOutput("logits", binary_data=True)
    body, header_length = httpclient.InferenceServerClient.generate_request_body(
        [reference_input], [reference_output]
    )
    ours = int(request.headers[kserve_http.HEADER_LENGTH])
    assert json.loads(request.body[:ours]) == json.loads(body[:header_length])
    assert request.body[ours:] == body[header_length:]
    assert request.path == "/v2/models/dense/infer"


def test_http_decode_response_agrees_with_tritonclient_when_output_is_binary():
    from tritonclient.http import InferResult

    logits = np.random.default_rng(0).standard_normal((3, 10)).astype(np.float32)
    body, header_length = _http_response(logits)
    ours = kserve_http.decode_response(body, header_length, TARGET, batch_size=3)
    reference = InferResult.from_response_body(body, header_length=header_length)
    np.testing.assert_array_equal(ours, reference.as_numpy("logits"))


@pytest.mark.parametrize(
    "shape,datatype,match",
    [((3, 9), "FP32", "shape"), ((2, 10), "FP32", "shape"), ((3, 10), "FP16", "datatype")],
)
def test_http_decode_response_fails_when_output_is_not_what_was_asked(shape, datatype, match):
    logits = np.zeros(shape, dtype=np.float32)
    body, header_length = _http_response(logits, datatype=datatype)
    with pytest.raises(InferenceFailure, match=match) as failure:
        kserve_http.decode_response(body, header_length, TARGET, batch_size=3)
    assert failure.value.kind == "bad_response"


def test_http_decode_response_fails_when_binary_size_is_short():
    body, header_length = _http_response(np.zeros((3, 10), np.float32))
    with pytest.raises(InferenceFailure, match="bytes"):
        kserve_http.decode_response(body[:-4], header_length, TARGET, batch_size=3)


def test_grpc_request_carries_the_raw_batch_when_built():
    batch = build_batches(TARGET, Workload(batch_size=2))[0]
    request = kserve_grpc.build_request(TARGET, batch)
    assert request.model_name == "dense"
    assert request.inputs[0].name == "input" and list(request.inputs[0].shape) == [2, 1, 16, 16]
    assert request.raw_input_contents[0] == batch.raw
    assert [o.name for o in request.outputs] == ["logits"]


def _grpc_response(shape, raw: bytes, name="logits"):
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse(model_name="dense")
    output = response.outputs.add()
    output.name, output.datatype = name, "FP32"
    output.shape.extend(shape)
    response.raw_output_contents.append(raw)
    return response


def test_grpc_decode_response_returns_the_logits_when_shape_and_size_match():
    logits = np.arange(20, dtype="<f4").reshape(2, 10)
    decoded = kserve_grpc.decode_response(_grpc_response((2, 10), logits.tobytes()), TARGET, 2)
    np.testing.assert_array_equal(decoded, logits)


@pytest.mark.parametrize(
    "shape,size,name,match",
    [
        ((2, 10), 40, "logits", "bytes"),
        ((2, 5), 40, "logits", "shape"),
        ((2, 10), 80, "probs", "no output"),
    ],
)
def test_grpc_decode_response_fails_when_output_is_not_what_was_asked(shape, size, name, match):
    response = _grpc_response(shape, bytes(size), name=name)
    with pytest.raises(InferenceFailure, match=match):
        kserve_grpc.decode_response(response, TARGET, 2)
