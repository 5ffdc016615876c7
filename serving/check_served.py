"""End-to-end parity through a running server: what Triton returns equals the source model.

For every model of a repository, the held-out samples of export parity (the same preprocessed
images, from the checkpoint recorded in ``servebench.json``) go over each protocol in chunks of
the model's ``max_batch_size``; the answers are compared with the source model's logits against
the export tolerance. One :class:`ServedCheck` per (model, protocol).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from exporters.repository import list_models
from models.errors import CheckpointError, UserInputError
from serving.clients import PROTOCOLS, ServedModel, TritonClient, infer_batched, read_served_model
from serving.errors import ServerUnreachableError, ServingError, UnknownModelError

log = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-4
REACH_TIMEOUT_S = 10.0


@dataclasses.dataclass
class ServedCheck:
    """One model over one protocol: the served logits against the source model's."""

    model: str
    protocol: str
    url: str
    atol: float
    checkpoint_dir: str = ""
    samples: int = 0
    max_abs_diff: float = math.nan
    top1_agreement: float = 0.0
    seconds: float = 0.0
    error: str = ""  # the request failed: Triton's refusal or an unreachable server

    @property
    def passed(self) -> bool:
        return not self.error and self.max_abs_diff <= self.atol  # NaN fails

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed, "status": self.status}


def check_served(
    url: str | None,
    grpc_url: str | None,
    repo: Path,
    models: Sequence[str] | None = None,
    atol: float | None = None,
    protocols: Sequence[str] = PROTOCOLS,
    checkpoints: Mapping[str, Path] | None = None,
    timeout_s: float = 60.0,
) -> list[ServedCheck]:
    """Check each model of ``repo`` (or those named) over each protocol; never raises for a
    failed request (it is recorded), raises ``UserInputError`` for a wrong argument and
    ``ServerUnreachableError`` (before any source model is loaded) when an endpoint is down."""
    urls = _protocol_urls(url, grpc_url, protocols)
    served = [read_served_model(repo, name) for name in _select(repo, models)]
    run_dirs = {s.spec.name: _run_dir(s, checkpoints or {}) for s in served}
    check_reachable(urls, min(timeout_s, REACH_TIMEOUT_S))
    references = _References()
    results = []
    for protocol, endpoint in urls.items():
        with TritonClient(endpoint, protocol, timeout_s=timeout_s) as client:
            for model in served:
                samples, expected = references.get(run_dirs[model.spec.name])
                check = ServedCheck(
                    model=model.spec.name,
                    protocol=protocol,
                    url=endpoint,
                    atol=_atol(model, atol),
                    checkpoint_dir=str(run_dirs[model.spec.name]),
                )
                _run_check(client, model, samples, expected, check)
                results.append(check)
    return sorted(results, key=lambda r: (r.model, r.protocol))


def _run_check(client, model: ServedModel, samples, expected, check: ServedCheck) -> None:
    start = time.perf_counter()
    try:
        got = infer_batched(client, model.spec, samples)[model.spec.outputs[0].name]
    except ServingError as error:
        check.error = str(error)  # reported by the caller, with the other results
        log.debug("%s over %s: %s", check.model, check.protocol, error)
        return
    finally:
        check.seconds = round(time.perf_counter() - start, 3)
    check.samples = len(samples)
    if got.shape != expected.shape:
        check.error = f"output shape {got.shape}, expected {expected.shape}"
        return
    check.max_abs_diff = float(np.abs(got.astype(np.float64) - expected).max())
    check.top1_agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
    log.info(
        "%s over %s: %s (max abs diff %.2e, top-1 agreement %.4f, %d samples)",
        check.model, check.protocol, check.status, check.max_abs_diff, check.top1_agreement,
        check.samples,
    )  # fmt: skip


def check_reachable(urls: Mapping[str, str], timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise one ``ServerUnreachableError`` naming every endpoint (protocol -> URL) that does
    not answer as a live Triton of that protocol."""
    causes, first_url = [], None
    for protocol, endpoint in urls.items():
        with TritonClient(endpoint, protocol, timeout_s=timeout_s) as client:
            try:
                client.check_live()
            except ServingError as error:
                causes.append(getattr(error, "cause", str(error)))
                first_url = first_url or client.url
    if len(causes) == 1:
        raise ServerUnreachableError(causes[0], first_url)
    if causes:
        message = f"no Triton server answers at {len(causes)} endpoints:\n  " + "\n  ".join(causes)
        raise ServerUnreachableError(message, first_url)


class _References:
    """Held-out samples and source-model logits, computed once per checkpoint directory."""

    def __init__(self):
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        if run_dir not in self._cache:
            from exporters.export import reference_fn, source_from_checkpoint
            from models.checkpoint import read_checkpoint

            log.info("loading the source model from %s", run_dir)
            source = source_from_checkpoint(read_checkpoint(run_dir))
            self._cache[run_dir] = (source.samples, reference_fn(source)(source.samples))
        return self._cache[run_dir]


def _protocol_urls(url, grpc_url, protocols) -> dict[str, str]:
    given = {"http": url, "grpc": grpc_url}
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise UserInputError(f"protocols must be among {PROTOCOLS}, got {list(protocols)}")
    missing = [p for p in protocols if not given[p]]
    if missing:
        flags = ", ".join("--url" if p == "http" else "--grpc-url" for p in missing)
        raise UserInputError(f"no URL for protocol(s) {missing}: pass {flags}")
    return {p: given[p] for p in protocols}


def _select(repo: Path, models: Sequence[str] | None) -> list[str]:
    available = [p.name for p in list_models(Path(repo))]
    if not models:
        return available
    unknown = [m for m in models if m not in available]
    if unknown:
        raise UnknownModelError(
            f"model(s) {', '.join(unknown)} not in {repo}; models there: "
            f"{', '.join(available) or 'none'}"
        )
    return list(models)


def _run_dir(model: ServedModel, checkpoints: Mapping[str, Path]) -> Path:
    run_dir = checkpoints.get(model.spec.name) or model.checkpoint_dir
    if run_dir is None:
        raise CheckpointError(
            f"{model.spec.name}: its servebench.json records no checkpoint_dir (exported before "
            "it was recorded); pass the training run directory (--checkpoint "
            f"{model.spec.name}=RUN_DIR) or export again"
        )
    return Path(run_dir).resolve()


def _atol(model: ServedModel, atol: float | None) -> float:
    if atol is not None:
        return atol
    return float(model.sidecar.get("parity", {}).get("atol", DEFAULT_ATOL))
