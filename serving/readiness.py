"""Wait for a started Triton to be live, ready and serving every model; then probe each model.

Works over HTTP with ``tritonclient.http``. Load failures are read from the repository index
(``state``/``reason`` per model), so the error names each failing model with Triton's reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from serving.errors import ModelLoadError, ServerStartError

LOGGER = logging.getLogger(__name__)
_PENDING_STATES = {"", "LOADING", "UNLOADING"}


def wait_until_ready(
    client,
    expected_models: Iterable[str],
    deadline: float,
    exit_code: Callable[[], int | None],
    log_tail: Callable[[], str],
) -> None:
    """Poll until the server is live and ready and every expected model is READY.

    Raises ``ServerStartError`` when the process exits or the deadline passes, and
    ``ModelLoadError`` as soon as the index reports a model as failed.
    """
    expected = sorted(expected_models)
    waiting_for = "the server to become live"
    while True:
        code = exit_code()
        if code is not None:
            raise ServerStartError(
                f"tritonserver exited with code {code} before it was ready", log_tail()
            )
        if time.monotonic() > deadline:
            raise ServerStartError(f"timed out waiting for {waiting_for}", log_tail())
        states = _model_states(client)
        if states is not None:
            failures = {
                name: reason or f"state {state}"
                for name, (state, reason) in states.items()
                if name in expected and state not in _PENDING_STATES | {"READY"}
            }
            if failures:
                raise ModelLoadError(failures, log_tail())
            pending = [name for name in expected if states.get(name, ("", ""))[0] != "READY"]
            waiting_for = f"models {pending} to become READY" if pending else "server readiness"
            if not pending and _call(client.is_server_ready):
                return
        time.sleep(0.25)


def probe_models(
    client, model_names: Iterable[str], log_tail: Callable[[], str]
) -> dict[str, float]:
    """One real inference per model (zeros, batch 1) over HTTP; returns seconds per model."""
    from tritonclient.utils import InferenceServerException

    seconds = {}
    for name in sorted(model_names):
        start = time.perf_counter()
        try:
            _probe_one(client, name)
        except (InferenceServerException, ValueError) as error:
            raise ServerStartError(
                f"probe inference on model {name!r} failed: {error}", log_tail()
            ) from error
        seconds[name] = time.perf_counter() - start
        LOGGER.debug("probe %s: %.3fs", name, seconds[name])
    return seconds


def _probe_one(client, name: str) -> None:
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import triton_to_np_dtype

    metadata = client.get_model_metadata(name)
    inputs = []
    for tensor in metadata["inputs"]:
        shape = [1 if dim < 0 else int(dim) for dim in tensor["shape"]]
        data = np.zeros(shape, dtype=triton_to_np_dtype(tensor["datatype"]))
        infer_input = httpclient.InferInput(tensor["name"], shape, tensor["datatype"])
        infer_input.set_data_from_numpy(data)
        inputs.append(infer_input)
    result = client.infer(name, inputs)
    for tensor in metadata["outputs"]:
        if result.as_numpy(tensor["name"]) is None:
            raise ValueError(f"response has no output {tensor['name']!r}")


def _model_states(client) -> dict[str, tuple[str, str]] | None:
    """name -> (state, reason) from the repository index, or None while the server is not live."""
    if not _call(client.is_server_live):
        return None
    index = _call(client.get_model_repository_index)
    if index is None:
        return None
    return {m["name"]: (m.get("state", ""), m.get("reason", "")) for m in index}


def _call(method):
    """``method()``; None/False while the server is not answering yet (connection errors)."""
    from tritonclient.utils import InferenceServerException

    try:
        return method()
    except (OSError, InferenceServerException) as error:
        LOGGER.debug("server not answering yet: %s", error)
        return None
