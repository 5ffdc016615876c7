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


def export_onnx(model, example: np.ndarray, path: Path, opset: int, max_batch_size: int) -> None:
    """torch.onnx (dynamo) with a dynamic batch axis, saved as one self-contained file."""
    import torch

    if example.shape[0] < 2:  # torch.export specializes a size-1 dim to a constant
        example = np.concatenate([example, example])
    batch = torch.export.Dim("batch", min=1, max=max(max_batch_size, 2))
    arg_name = _first_arg_name(model)
    torch.onnx.export(
        model.eval(),
        (torch.from_numpy(example),),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        opset_version=opset,
        dynamic_shapes={arg_name: {0: batch}},
        external_data=False,
        verbose=False,
    )


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
