"""Parity: an artifact, run in its own runtime, against the source model on real samples.

Checked in the order names -> shapes -> values, at several batch sizes (so a trace that froze the
export batch is caught). Every failure is collected; :func:`check_parity` returns a
:class:`ParityResult` and the caller decides whether to raise :class:`ParityError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from exporters.runtimes import Runner


@dataclasses.dataclass
class ParityResult:
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    top1_agreement: float = 1.0
    batch_sizes: list[int] = dataclasses.field(default_factory=list)
    samples: int = 0
    atol: float = 1e-4
    failures: list[str] = dataclasses.field(default_factory=list)
    per_batch: dict[str, dict] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "top1_agreement": self.top1_agreement,
            "passed": self.passed,
            "batch_sizes": self.batch_sizes,
            "samples": self.samples,
            "atol": self.atol,
            "failures": self.failures,
            "per_batch": self.per_batch,
        }


def parity_batch_sizes(max_batch_size: int, export_batch: int) -> list[int]:
    """1, an odd batch (3) and the max batch; each different from the export batch if possible."""
    sizes = [1, 3, max_batch_size]
    sizes = [s for s in sizes if s <= max_batch_size and s != export_batch] or [1]
    return sorted(set(sizes))


def check_parity(
    runner: Runner,
    reference: Callable[[np.ndarray], np.ndarray],
    samples: np.ndarray,
    input_name: str,
    output_name: str,
    batch_sizes: list[int],
    atol: float,
) -> ParityResult:
    """Compare ``runner``'s ``output_name`` with ``reference`` on ``samples`` at each batch size."""
    expected = reference(samples)
    result = ParityResult(batch_sizes=list(batch_sizes), samples=len(samples), atol=atol)
    agreements = []
    for bs in batch_sizes:
        try:
            got = _run_batched(runner, samples, bs, input_name, output_name)
        except Exception as exc:  # any runtime error at this batch size is a parity failure
            result.failures.append(f"{output_name} @ batch {bs}: runtime error: {exc}")
            continue
        if got.shape != expected.shape:
            result.failures.append(
                f"{output_name} @ batch {bs}: shape {got.shape}, expected {expected.shape}"
            )
            continue
        diff = np.abs(got.astype(np.float64) - expected)
        abs_diff = float(diff.max())
        rel_diff = float((diff / (np.abs(expected) + atol)).max())
        agree = float(np.mean(got.argmax(1) == expected.argmax(1)))
        result.per_batch[str(bs)] = {
            "max_abs_diff": abs_diff,
            "max_rel_diff": rel_diff,
            "top1_agreement": agree,
        }
        result.max_abs_diff = max(result.max_abs_diff, abs_diff)
        result.max_rel_diff = max(result.max_rel_diff, rel_diff)
        agreements.append(agree)
        if not abs_diff <= atol:  # also catches NaN
            result.failures.append(
                f"{output_name} @ batch {bs}: max abs diff {abs_diff:.3g} > atol {atol:g} "
                f"(top-1 agreement {agree:.4f})"
            )
    result.top1_agreement = min(agreements) if agreements else 0.0
    return result


def _run_batched(runner: Runner, samples, bs: int, input_name: str, output_name: str):
    outs = []
    for i in range(0, len(samples), bs):
        outs.append(runner({input_name: samples[i : i + bs]})[output_name])
    return np.concatenate(outs).astype(np.float64)
