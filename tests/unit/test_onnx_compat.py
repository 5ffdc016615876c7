"""Which ONNX files a Triton release can load: real files built with onnx.helper."""

from __future__ import annotations

import pytest

from exporters.errors import CompatibilityError
from exporters.onnx_tools import check_compatible


def _identity_model(path, opset: int, ir_version: int):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return path


def test_check_compatible_returns_ir_and_opset_when_release_reads_them(tmp_path):
    path = _identity_model(tmp_path / "model.onnx", opset=17, ir_version=8)
    assert check_compatible(path, "24.10", 17) == (8, 17)


def test_check_compatible_names_the_written_opset_when_exporter_did_not_convert(tmp_path):
    path = _identity_model(tmp_path / "model.onnx", opset=18, ir_version=8)
    with pytest.raises(
        CompatibilityError, match="written with opset 18, not the requested --opset 17"
    ):
        check_compatible(path, "24.10", 17)


def test_check_compatible_asks_for_newer_release_when_ir_version_too_new(tmp_path):
    path = _identity_model(tmp_path / "model.onnx", opset=17, ir_version=10)
    with pytest.raises(CompatibilityError, match="IR version 10 but Triton 23.12 reads IR <= 9"):
        check_compatible(path, "23.12", 17)
