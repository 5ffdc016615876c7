"""Keras -> SavedModel and Keras -> ONNX (tf2onnx through a tf.function with a signature)."""

from __future__ import annotations

import logging
from pathlib import Path

from exporters.onnx_tools import rename_io
from exporters.spec import NUMPY_TO_TRITON, TensorSpec

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
SIGNATURE = "serving_default"


def _signature(model):
    import tensorflow as tf

    shape = [None, *model.input_shape[1:]]
    return tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)


def export_savedmodel(model, path: Path) -> None:
    """A SavedModel whose ``serving_default`` signature maps ``input`` -> ``logits``."""
    import tensorflow as tf

    @tf.function(input_signature=[_signature(model)])
    def serve(input):  # noqa: A002 - the argument name becomes the signature's input key
        return {OUTPUT_NAME: model(input, training=False)}

    holder = tf.Module()
    holder.model = model
    holder.serve = serve
    tf.saved_model.save(holder, str(path), signatures={SIGNATURE: serve})


def export_onnx(model, path: Path, opset: int) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = _signature(model)

    @tf.function(input_signature=[spec])
    def forward(input):  # noqa: A002
        return model(input, training=False)

    _, _ = tf2onnx.convert.from_function(
        forward, input_signature=[spec], opset=opset, output_path=str(path)
    )
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    rename_io(
        path,
        inputs={graph.input[0].name: INPUT_NAME},
        outputs={graph.output[0].name: OUTPUT_NAME},
    )


def savedmodel_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Names, dtypes and per-sample dims from the SavedModel's serving signature."""
    import tensorflow as tf

    sig = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    _, kwargs = sig.structured_input_signature

    def spec(name, tensor_spec) -> TensorSpec:
        dims = tuple(-1 if d is None else int(d) for d in tensor_spec.shape[1:])
        return TensorSpec(name, NUMPY_TO_TRITON[tensor_spec.dtype.as_numpy_dtype.__name__], dims)

    inputs = tuple(spec(n, s) for n, s in sorted(kwargs.items()))
    outputs = tuple(spec(n, s) for n, s in sorted(sig.structured_outputs.items()))
    return inputs, outputs
