"""Run an artifact in its own runtime: ONNX Runtime, torch.jit or tf.saved_model.

``load_runner(format, path, input_names, output_names, threads, gpu, device_id)`` returns
``run(inputs: dict[name, array]) -> dict[name, array]``. The export parity checks and the serving
shim both use it, so what was proven at export is what is served. Every loader sets the same
intra-op thread count (inter-op: 1) so the formats are compared on equal CPU terms; frameworks are
imported inside the loaders, so a process only imports the runtime its model needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def load_runner(
    fmt: str,
    path: Path,
    input_names,
    output_names,
    threads: int = 1,
    gpu: bool = False,
    device_id: int = 0,
) -> Runner:
    loaders = {"onnx": _onnx, "torchscript": _torchscript, "savedmodel": _savedmodel}
    if fmt not in loaders:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(loaders)}")
    return loaders[fmt](Path(path), list(input_names), list(output_names), threads, gpu, device_id)


def _onnx(path, input_names, output_names, threads, gpu, device_id) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers: list = ["CPUExecutionProvider"]
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
    session = ort.InferenceSession(str(path), options, providers=providers)

    def run(inputs):
        outs = session.run(output_names, {n: inputs[n] for n in input_names})
        return dict(zip(output_names, outs, strict=True))

    return run


def _torchscript(path, input_names, output_names, threads, gpu, device_id) -> Runner:
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
            torch.set_num_interop_threads(1)
    device = torch.device(f"cuda:{device_id}" if gpu and torch.cuda.is_available() else "cpu")
    module = torch.jit.load(str(path), map_location=device).eval()

    def run(inputs):
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(device) for n in input_names]
        with torch.inference_mode():
            out = module(*args)
        if isinstance(out, dict):
            out = [out[n] for n in output_names]
        elif isinstance(out, torch.Tensor):
            out = [out]
        return {n: o.detach().cpu().numpy() for n, o in zip(output_names, out, strict=True)}

    return run


def _savedmodel(path, input_names, output_names, threads, gpu, device_id) -> Runner:
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised in this process: keep it
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if not gpu:
            tf.config.set_visible_devices([], "GPU")
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    device = f"/GPU:{device_id}" if gpu and tf.config.list_logical_devices("GPU") else "/CPU:0"

    def run(inputs):
        _ = loaded  # the signature needs its SavedModel object alive
        with tf.device(device):
            out = signature(**{n: tf.constant(inputs[n]) for n in input_names})
        return {n: out[n].numpy() for n in output_names}

    return run
