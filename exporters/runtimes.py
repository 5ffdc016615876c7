"""Run an artifact in its own runtime: ONNX Runtime, torch.jit or tf.saved_model.

``load_runner(format, path, spec, threads)`` returns ``run(inputs: dict[name, array]) ->
dict[name, array]`` keyed by the ModelSpec's tensor names. The parity checks use it; so does the
serving shim, so what was proven at export is what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def load_runner(
    fmt: str, path: Path, input_names, output_names, threads: int = 1, device: str = "cpu"
) -> Runner:
    loaders = {"onnx": _onnx, "torchscript": _torchscript, "savedmodel": _savedmodel}
    return loaders[fmt](Path(path), list(input_names), list(output_names), threads, device)


def _onnx(path, input_names, output_names, threads, device) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device == "gpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)

    def run(inputs):
        outs = session.run(output_names, {n: inputs[n] for n in input_names})
        return dict(zip(output_names, outs, strict=True))

    return run


def _torchscript(path, input_names, output_names, threads, device) -> Runner:
    import torch

    torch.set_num_threads(threads)
    target = "cuda" if device == "gpu" and torch.cuda.is_available() else "cpu"
    module = torch.jit.load(str(path), map_location=target).eval()

    def run(inputs):
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(target) for n in input_names]
        with torch.inference_mode():
            out = module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.cpu().numpy() for n, o in zip(output_names, outs, strict=True)}

    return run


def _savedmodel(path, input_names, output_names, threads, device) -> Runner:
    import tensorflow as tf

    _set_tf_threads(threads)
    if device != "gpu":
        tf.config.set_visible_devices([], "GPU")
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(inputs):
        out = signature(**{n: tf.constant(inputs[n]) for n in input_names})
        return {n: out[n].numpy() for n in output_names}

    return run


def _set_tf_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process: keep the first setting
        pass
