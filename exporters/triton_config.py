"""Triton ``config.pbtxt`` built as data and serialized through Triton's own protobuf.

A misspelled field or a wrong enum fails in ``json_format.ParseDict`` at once, instead of at
model load time on a server.
"""

from __future__ import annotations

import dataclasses
import json

from exporters.errors import ExportInputError
from exporters.spec import ModelSpec
from models.datasets import Preprocess

DEVICE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
# Model parameters that make a served model self-describing: any client reads them from the
# server's model config (Triton serves no label file and no sidecar). Backends skip keys they
# do not use.
PREPROCESS_PARAMETER = "servebench.preprocess"
CLASSES_PARAMETER = "servebench.classes"
TRT_PRECISIONS = ("fp16", "fp32")


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = 64
    device: str = "cpu"
    instances: int = 1
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    trt: str | None = None  # "fp16" | "fp32": TensorRT accelerator for ONNX on GPU

    def validate(self) -> None:
        if self.max_batch_size < 1:
            raise ExportInputError(f"--max-batch-size must be >= 1; found {self.max_batch_size}")
        if self.device not in DEVICE_KINDS:
            raise ExportInputError(f"--device must be cpu or gpu; found {self.device!r}")
        if self.instances < 1:
            raise ExportInputError(f"--instances must be >= 1; found {self.instances}")
        if self.trt and (self.trt not in TRT_PRECISIONS or self.device != "gpu"):
            raise ExportInputError(
                f"--trt {self.trt} needs --device gpu and one of {', '.join(TRT_PRECISIONS)}"
            )


def preferred_batch_sizes(max_batch_size: int) -> list[int]:
    sizes, size = [], 4
    while size <= max_batch_size:
        sizes.append(size)
        size *= 2
    return sizes or [max_batch_size]


def config_dict(
    spec: ModelSpec, options: ServingOptions, preprocess: Preprocess | None = None
) -> dict:
    """The model config as a dict shaped like Triton's ModelConfig protobuf (JSON names).

    With ``preprocess``, the recipe and the class names travel in the config's ``parameters``.
    """
    config = {
        "name": spec.name,
        "platform": spec.platform,
        "max_batch_size": spec.max_batch_size,
        "input": [
            {"name": t.name, "data_type": f"TYPE_{t.dtype}", "dims": list(t.dims)}
            for t in spec.inputs
        ],
        "output": [
            {
                "name": t.name,
                "data_type": f"TYPE_{t.dtype}",
                "dims": list(t.dims),
                "label_filename": "labels.txt",
            }
            for t in spec.outputs
        ],
        "instance_group": [{"kind": DEVICE_KINDS[options.device], "count": options.instances}],
    }
    if preprocess is not None:
        config["parameters"] = {
            PREPROCESS_PARAMETER: {"string_value": _compact(preprocess.to_dict())},
            CLASSES_PARAMETER: {"string_value": _compact(list(spec.classes))},
        }
    if options.dynamic_batching:
        config["dynamic_batching"] = {
            "preferred_batch_size": preferred_batch_sizes(spec.max_batch_size),
            "max_queue_delay_microseconds": options.max_queue_delay_us,
        }
    if options.trt and spec.format == "onnx":
        config["optimization"] = {
            "execution_accelerators": {
                "gpu_execution_accelerator": [
                    {
                        "name": "tensorrt",
                        "parameters": {
                            "precision_mode": options.trt.upper(),
                            "max_workspace_size_bytes": str(1 << 30),
                        },
                    }
                ]
            }
        }
    return config


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def described_model(config: dict) -> tuple[Preprocess, tuple[str, ...]] | None:
    """The recipe and class names from a served model config (JSON form, either protocol), or
    None when the config carries none (not written by servebench, or by an older release)."""
    params = config.get("parameters") or {}
    try:
        recipe = json.loads(params[PREPROCESS_PARAMETER]["string_value"])
        classes = json.loads(params[CLASSES_PARAMETER]["string_value"])
        return Preprocess.from_dict(recipe), tuple(str(c) for c in classes)
    except (KeyError, TypeError, ValueError):
        return None


def to_pbtxt(config: dict) -> str:
    """Validate ``config`` against Triton's ModelConfig and render it as text protobuf."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    message = json_format.ParseDict(config, model_config_pb2.ModelConfig())
    return text_format.MessageToString(message)


def parse_pbtxt(text: str):
    """Text protobuf -> ModelConfig message (raises on any unknown field)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())
