"""PyTorch -> TorchScript and PyTorch -> ONNX."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from exporters.spec import TensorSpec

log = logging.getLogger(__name__)


def export_torchscript(model, example: np.ndarray, path: Path) -> None:
    """Trace ``model`` on ``example`` (export batch) and save a TorchScript file."""
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), torch.from_numpy(example), check_trace=False)
    traced.save(str(path))


# The lowest opset torch's ONNX exporter writes natively. Asked for less, it converts before its
# own graph optimisation, which fails on ops whose new-style inputs are not constants yet (resnet18's
# ReduceMean axes) and then silently keeps opset 18. So: export at 18, convert after optimisation.
TORCH_NATIVE_OPSET = 18


def export_onnx(model, example: np.ndarray, path: Path, opset: int, max_batch_size: int) -> None:
    """torch.onnx (dynamo) with a dynamic batch axis, at ``opset``, as one self-contained file."""
    import onnx
    import torch

    if example.shape[0] < 2:  # torch.export specializes a size-1 dim to a constant
        example = np.concatenate([example, example])
    batch = torch.export.Dim("batch", min=1, max=max(max_batch_size, 2))
    arg_name = _first_arg_name(model)
    program = torch.onnx.export(
        model.eval(),
        (torch.from_numpy(example),),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        opset_version=max(opset, TORCH_NATIVE_OPSET),
        dynamic_shapes={arg_name: {0: batch}},
        verbose=False,
    )
    proto = program.model_proto
    if opset < TORCH_NATIVE_OPSET:
        proto = _drop_opset18_reduce_attribute(onnx.version_converter.convert_version(proto, opset))
        onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def _drop_opset18_reduce_attribute(proto):
    """onnx's converter moves Reduce* axes back to an attribute but keeps the opset-18 attribute
    ``noop_with_empty_axes``, which older opsets reject; at its default (0) it means nothing."""
    for node in proto.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            kept = [
                a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)
            ]
            del node.attribute[:]
            node.attribute.extend(kept)
    return proto


def _first_arg_name(model) -> str:
    import inspect

    return next(iter(inspect.signature(model.forward).parameters))


def torchscript_io(path: Path, sample: np.ndarray) -> tuple[tuple[TensorSpec, ...], ...]:
    """pytorch_libtorch names: INPUT__i per forward argument, OUTPUT__j per output.

    The argument count comes from the TorchScript forward schema; per-sample dims from running
    the artifact once on ``sample``.
    """
    import torch

    module = torch.jit.load(str(path), map_location="cpu")
    args = [a for a in module.forward.schema.arguments if a.name != "self"]
    with torch.no_grad():
        out = module(torch.from_numpy(sample))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    inputs = tuple(
        TensorSpec(f"INPUT__{i}", "FP32", tuple(sample.shape[1:])) for i in range(len(args))
    )
    outputs = tuple(
        TensorSpec(f"OUTPUT__{j}", "FP32", tuple(o.shape[1:])) for j, o in enumerate(outs)
    )
    return inputs, outputs
