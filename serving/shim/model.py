"""servebench shim: a Triton Python-backend model that runs one exported artifact.

Copied by ``serving.derive`` into ``<name>/<version>/model.py`` of a served repository. It reads the
model's ``servebench.json`` (version dir, else model dir), loads the artifact with its own runtime
(``exporters.runtimes``, the same code the export parity check ran) and answers batched requests: the inputs of all requests are
concatenated, run once and split back, so dynamic batching behaves as with the native backends.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

THREADS_PARAMETER = "servebench_threads"
# the stub's interpreter ignores PYTHONPATH; the launcher passes the repository root this way
_REPO_ROOT = os.environ.get("SERVEBENCH_REPO_ROOT")
if _REPO_ROOT and _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)


class TritonPythonModel:
    def initialize(self, args):
        from exporters.runtimes import load_runner
        from exporters.spec import ModelSpec

        model_dir = Path(args["model_repository"])
        version_dir = model_dir / str(args["model_version"])
        config = json.loads(args["model_config"])
        meta_path = _first_existing(version_dir / "servebench.json", model_dir / "servebench.json")
        self.spec = ModelSpec.from_dict(json.loads(meta_path.read_text())["spec"])
        artifact = version_dir / self.spec.artifact_name
        if not artifact.exists():
            raise FileNotFoundError(
                f"{args['model_name']}: artifact {artifact} not found (dangling link or never "
                f"exported); expected the {self.spec.format} file {self.spec.artifact_name}"
            )
        threads = int(
            config.get("parameters", {}).get(THREADS_PARAMETER, {}).get("string_value", 1)
        )
        gpu = args.get("model_instance_kind") == "GPU"
        device_id = int(args.get("model_instance_device_id", 0))
        self.input_names = [t.name for t in self.spec.inputs]
        self.output_names = [t.name for t in self.spec.outputs]
        self.runner = load_runner(
            self.spec.format, artifact, self.input_names, self.output_names, threads, gpu, device_id
        )
        pb_utils.Logger.log_info(
            f"servebench shim: {args['model_name']} loaded {artifact.name} "
            f"({self.spec.format}, threads={threads}, gpu={gpu})"
        )

    def execute(self, requests):
        responses = [None] * len(requests)
        valid = []  # (request index, input arrays)
        for index, request in enumerate(requests):
            try:
                valid.append((index, [self._input(request, t) for t in self.spec.inputs]))
            except ValueError as error:
                responses[index] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(error))
                )
        if valid:
            self._run_batch(valid, responses)
        return responses

    def _run_batch(self, valid, responses):
        sizes = [arrays[0].shape[0] for _, arrays in valid]
        try:
            stacked = [
                np.concatenate([arrays[j] for _, arrays in valid])
                for j in range(len(self.spec.inputs))
            ]
            result = self.runner(dict(zip(self.input_names, stacked, strict=True)))
            outputs = [result[n] for n in self.output_names]
        except Exception as error:  # reported to every request of the batch, not swallowed
            message = f"{self.spec.name}: inference failed: {type(error).__name__}: {error}"
            pb_utils.Logger.log_error(message)
            for index, _ in valid:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(message))
            return
        bounds = np.cumsum(sizes)[:-1]
        pieces = [np.split(out, bounds) for out in outputs]
        for k, (index, _) in enumerate(valid):
            tensors = [
                pb_utils.Tensor(t.name, np.ascontiguousarray(piece[k], dtype=t.numpy_dtype))
                for t, piece in zip(self.spec.outputs, pieces, strict=True)
            ]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)

    def _input(self, request, tensor_spec):
        tensor = pb_utils.get_input_tensor_by_name(request, tensor_spec.name)
        if tensor is None:
            raise ValueError(f"{self.spec.name}: missing input {tensor_spec.name!r}")
        array = tensor.as_numpy()
        expected = (-1, *tensor_spec.dims)
        shape_ok = array.ndim == len(expected) and all(
            e in (-1, a) for e, a in zip(expected, array.shape, strict=True)
        )
        if not shape_ok or array.dtype != np.dtype(tensor_spec.numpy_dtype):
            raise ValueError(
                f"{self.spec.name}: input {tensor_spec.name!r} expected {tensor_spec.dtype} "
                f"shape {list(expected)}, got {array.dtype} shape {list(array.shape)}"
            )
        return array

    def finalize(self):
        self.runner = None


def _first_existing(*paths: Path) -> Path:
    for path in paths:
        if path.exists():
            return path
    raise FileNotFoundError(f"servebench.json not found; looked in {', '.join(map(str, paths))}")
