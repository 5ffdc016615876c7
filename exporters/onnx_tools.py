"""ONNX helpers: self-contained files, stable tensor names, and Triton compatibility."""

from __future__ import annotations

from pathlib import Path

from exporters.errors import CompatibilityError
from exporters.spec import TensorSpec

# Triton release -> (max ONNX IR version, max opset) its ONNX Runtime reads
TRITON_ONNX_LIMITS = {
    "23.12": (9, 19),  # ONNX Runtime 1.16
    "24.05": (10, 21),  # ONNX Runtime 1.18
    "24.10": (10, 21),  # ONNX Runtime 1.19
    "25.01": (10, 21),  # ONNX Runtime 1.20
}
MIN_OPSET = 13  # the oldest opset the exporters are asked for and checked at (Reduce*/Split forms)
ONNX_ELEM_TO_TRITON = {1: "FP32", 10: "FP16", 11: "FP64", 7: "INT64", 6: "INT32", 2: "UINT8"}


def check_release(triton_version: str, opset: int) -> None:
    """Refuse, before anything is exported, a release we know nothing of or an opset it can't
    read."""
    if triton_version not in TRITON_ONNX_LIMITS:
        known = ", ".join(TRITON_ONNX_LIMITS)
        raise CompatibilityError(
            f"unknown --triton-version {triton_version!r}; known releases: {known}"
        )
    max_opset = TRITON_ONNX_LIMITS[triton_version][1]
    if opset < MIN_OPSET:
        raise CompatibilityError(
            f"--opset {opset} is older than servebench exports to; expected {MIN_OPSET} to "
            f"{max_opset} for Triton {triton_version} (default 17)"
        )
    if opset > max_opset:
        raise CompatibilityError(
            f"--opset {opset} is newer than Triton {triton_version} reads (<= {max_opset}); "
            f"pass --opset {max_opset} or lower, or target a newer --triton-version"
        )


def check_compatible(path: Path, triton_version: str, opset: int) -> tuple[int, int]:
    """Raise unless ``path`` was written with the requested ``opset`` and its IR version loads
    on the ONNX Runtime that ``triton_version`` ships."""
    import onnx

    check_release(triton_version, opset)
    model = onnx.load(str(path), load_external_data=False)
    written = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:
        raise CompatibilityError(
            f"{path} was written with opset {written}, not the requested --opset {opset} (the "
            f"exporter could not convert it); pass --opset {written} if Triton "
            f"{triton_version} reads it (<= {TRITON_ONNX_LIMITS[triton_version][1]})"
        )
    max_ir = TRITON_ONNX_LIMITS[triton_version][0]
    if model.ir_version > max_ir:
        raise CompatibilityError(
            f"{path} has ONNX IR version {model.ir_version} but Triton {triton_version} reads "
            f"IR <= {max_ir}; target a newer --triton-version"
        )
    return model.ir_version, written


def rename_io(path: Path, inputs: dict[str, str], outputs: dict[str, str]) -> None:
    """Rename graph inputs/outputs in place (tf2onnx names outputs like ``Identity:0``)."""
    import onnx

    model = onnx.load(str(path))
    mapping = inputs | outputs
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = mapping.get(value.name, value.name)
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def read_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Tensor names, dtypes and per-sample dims from the ONNX graph (batch dim dropped)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}

    def spec(value) -> TensorSpec:
        ttype = value.type.tensor_type
        dims = tuple(d.dim_value if d.dim_value > 0 else -1 for d in ttype.shape.dim)
        return TensorSpec(value.name, ONNX_ELEM_TO_TRITON[ttype.elem_type], dims[1:])

    inputs = tuple(spec(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(spec(v) for v in model.graph.output)


def assert_self_contained(path: Path) -> None:
    """One file only: no ``.onnx.data`` side file and no external tensors."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in model.graph.initializer if uses_external_data(t)]
    if external:
        raise CompatibilityError(
            f"{path} keeps {len(external)} weights in side files; expected one self-contained "
            "model.onnx"
        )
