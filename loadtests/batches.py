"""Request payloads: batches of real held-out samples or of seeded random numbers.

Every batch is built and converted to little-endian bytes once, before the load starts, so the
load generator spends its time sending, not preparing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from exporters.spec import TRITON_TO_NUMPY

from .errors import LoadTestInputError
from .target import TritonTarget, shape_matches

INPUT_KINDS = ("real", "random")
MAX_DISTINCT_BATCHES = 64


@dataclasses.dataclass(frozen=True)
class Workload:
    """What each request carries: ``inputs`` "real" needs ``samples`` (N, *dims)."""

    batch_size: int = 1
    inputs: str = "random"
    samples: np.ndarray | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Batch:
    array: np.ndarray  # the request tensor, little-endian, full shape (batch dim if any)
    raw: bytes  # array.tobytes(), the KServe v2 binary payload


def load_samples(path: str | Path) -> np.ndarray:
    """Held-out samples from a ``.npy`` file, shape (N, *dims)."""
    path = Path(path)
    if not path.is_file():
        raise LoadTestInputError(f"samples file {path} not found; pass a .npy of shape (N, *dims)")
    return np.load(path, allow_pickle=False)


def build_batches(target: TritonTarget, workload: Workload) -> tuple[Batch, ...]:
    """The distinct request payloads a user cycles through."""
    if workload.inputs not in INPUT_KINDS:
        raise LoadTestInputError(f"inputs must be one of {INPUT_KINDS}, got {workload.inputs!r}")
    dtype = _numpy_dtype(target)
    target.request_shape(workload.batch_size)  # checks the batch size against the model
    batched = target.max_batch_size > 0
    if workload.inputs == "random":
        samples = _random_samples(target, dtype, workload.batch_size * 8, workload.seed)
    else:
        samples = _checked_samples(target, dtype, workload.samples)
    chunks = _chunks(samples, workload.batch_size)
    return tuple(_to_batch(chunk if batched else chunk[0], dtype) for chunk in chunks)


def _numpy_dtype(target: TritonTarget) -> np.dtype:
    name = TRITON_TO_NUMPY.get(target.input.dtype)
    if name is None:
        raise LoadTestInputError(
            f"input {target.input.name} of {target.model} is {target.input.dtype}; "
            f"the load tests send numeric tensors only ({sorted(TRITON_TO_NUMPY)})"
        )
    return np.dtype(name).newbyteorder("<")


def _random_samples(target: TritonTarget, dtype: np.dtype, count: int, seed: int) -> np.ndarray:
    if any(d < 0 for d in target.input.dims):
        raise LoadTestInputError(
            f"input {target.input.name} has variable dims {target.input.dims}; random inputs "
            "need fixed dims: pass --inputs real with samples of the shape to test"
        )
    rng = np.random.default_rng(seed)
    shape = (count, *target.input.dims)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    high = min(256, np.iinfo(dtype).max + 1)
    return rng.integers(0, high, shape).astype(dtype)


def _checked_samples(
    target: TritonTarget, dtype: np.dtype, samples: np.ndarray | None
) -> np.ndarray:
    if samples is None or len(samples) == 0:
        raise LoadTestInputError("inputs 'real' needs held-out samples: pass --samples FILE.npy")
    expected = target.input.dims
    found = tuple(samples.shape[1:])
    if not shape_matches(found, expected):
        raise LoadTestInputError(
            f"samples have per-sample shape {found}, model {target.model} input "
            f"{target.input.name} expects {expected}; preprocess them to the model's layout"
        )
    return np.ascontiguousarray(samples, dtype=dtype)


def _chunks(samples: np.ndarray, batch_size: int):
    """Consecutive batches, wrapping around, at most MAX_DISTINCT_BATCHES of them."""
    count = max(1, min(MAX_DISTINCT_BATCHES, len(samples) // batch_size))
    for i in range(count):
        index = np.arange(i * batch_size, (i + 1) * batch_size) % len(samples)
        yield samples[index]


def _to_batch(chunk: np.ndarray, dtype: np.dtype) -> Batch:
    array = np.ascontiguousarray(chunk, dtype=dtype)
    return Batch(array=array, raw=array.tobytes())
