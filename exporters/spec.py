"""ModelSpec: what an exported artifact takes and returns, read from the artifact itself.

Every model directory of a repository carries its ModelSpec in ``servebench.json`` under
``"spec"``; the Triton config, the serving shim, the clients and the load tests all read it from
there. Example (a PyTorch model exported to ONNX)::

    {"name": "seedcnn_torch_onnx", "arch": "seedcnn", "framework": "torch", "format": "onnx",
     "inputs": [{"name": "input", "dtype": "FP32", "dims": [1, 32, 32]}],
     "outputs": [{"name": "logits", "dtype": "FP32", "dims": [10]}],
     "layout": "NCHW", "max_batch_size": 64, "classes": ["0", ..., "9"]}

``dims`` never include the batch dimension (Triton's convention with ``max_batch_size > 0``).
"""

from __future__ import annotations

import dataclasses

FORMATS = ("torchscript", "onnx", "savedmodel")
# which formats each source framework can produce
FRAMEWORK_FORMATS = {"torch": ("torchscript", "onnx"), "tf": ("savedmodel", "onnx")}
ARTIFACT_NAMES = {"torchscript": "model.pt", "onnx": "model.onnx", "savedmodel": "model.savedmodel"}
PLATFORMS = {
    "torchscript": "pytorch_libtorch",
    "onnx": "onnxruntime_onnx",
    "savedmodel": "tensorflow_savedmodel",
}
# Triton dtype names <-> numpy dtype names
TRITON_TO_NUMPY = {
    "FP32": "float32",
    "FP16": "float16",
    "FP64": "float64",
    "INT64": "int64",
    "INT32": "int32",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}
NUMPY_TO_TRITON = {v: k for k, v in TRITON_TO_NUMPY.items()}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # Triton name: FP32, INT64, ...
    dims: tuple[int, ...]  # per sample, without the batch dimension; -1 for a variable dim

    @property
    def numpy_dtype(self) -> str:
        return TRITON_TO_NUMPY[self.dtype]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(name=data["name"], dtype=data["dtype"], dims=tuple(int(d) for d in data["dims"]))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str
    framework: str
    format: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    layout: str
    max_batch_size: int
    classes: tuple[str, ...]

    @property
    def artifact_name(self) -> str:
        return ARTIFACT_NAMES[self.format]

    @property
    def platform(self) -> str:
        return PLATFORMS[self.format]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "arch": self.arch,
            "framework": self.framework,
            "format": self.format,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "layout": self.layout,
            "max_batch_size": self.max_batch_size,
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        return cls(
            name=data["name"],
            arch=data["arch"],
            framework=data["framework"],
            format=data["format"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            layout=data["layout"],
            max_batch_size=int(data["max_batch_size"]),
            classes=tuple(data["classes"]),
        )


def model_name(arch: str, framework: str, fmt: str) -> str:
    return f"{arch}_{framework}_{fmt}"
