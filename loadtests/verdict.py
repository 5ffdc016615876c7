"""The verdict of a run: which path wins at concurrency 1 and under the p99 budget, and why.

Works on load-test records (dicts with the ``results.json`` keys). Every statement carries its
margin; caveats name scenarios whose figures should not be trusted as server speed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .record import CLIENT_BOUND_CPU, counts_apart


@dataclasses.dataclass
class Verdict:
    lowest_latency: str = ""
    highest_throughput: str = ""
    framework_claim: str = ""
    caveats: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        out = [s for s in (self.lowest_latency, self.highest_throughput, self.framework_claim) if s]
        return out + [f"Caveat: {c}" for c in self.caveats]


def path_label(r: dict) -> str:
    return f"{r['model']} over {r['protocol']}"


def _closed(records, concurrency=None):
    return [
        r
        for r in records
        if r.get("mode") == "closed"
        and r.get("requests", 0) > 0
        and (concurrency is None or r.get("concurrency") == concurrency)
    ]


def decide(
    records: list[dict],
    p99_budget_ms: float | None,
    cpu_only: bool,
    untrusted: Mapping[tuple[str, str], str] | None = None,
) -> Verdict:
    """``untrusted`` maps (model, protocol) to why its answers are wrong (e.g. a served-
    correctness mismatch): such a path is never named a winner, and a caveat says why."""
    verdict = Verdict()
    untrusted = untrusted or {}
    every_record, records = (
        records,
        [r for r in records if (r.get("model"), r.get("protocol")) not in untrusted],
    )
    at_one = sorted(_closed(records, 1), key=lambda r: r["p50_ms"])
    if at_one:
        best = at_one[0]
        margin = ""
        if len(at_one) > 1:
            second = at_one[1]
            margin = (
                f", {second['p50_ms'] - best['p50_ms']:.2f} ms "
                f"({second['p50_ms'] / best['p50_ms']:.2f}x) ahead of {path_label(second)}"
            )
        verdict.lowest_latency = (
            f"Lowest latency at concurrency 1: {path_label(best)}, p50 {best['p50_ms']:.2f} ms"
            f"{margin}."
        )
    within = [r for r in _closed(records) if p99_budget_ms is None or r["p99_ms"] <= p99_budget_ms]
    within.sort(key=lambda r: r["throughput_infer_per_s"], reverse=True)
    budget = f"within p99 <= {p99_budget_ms:g} ms" if p99_budget_ms else "(no p99 budget set)"
    if within:
        best = within[0]
        others = [r for r in within if path_label(r) != path_label(best)]
        margin = ""
        if others:
            second = others[0]
            margin = (
                f", {best['throughput_infer_per_s'] / second['throughput_infer_per_s']:.2f}x "
                f"{path_label(second)}'s best ({second['throughput_infer_per_s']:.1f}/s)"
            )
        verdict.highest_throughput = (
            f"Highest throughput {budget}: {path_label(best)} at concurrency "
            f"{best['concurrency']}, {best['throughput_infer_per_s']:.1f} inferences/s "
            f"(p99 {best['p99_ms']:.1f} ms){margin}."
        )
    elif records:
        verdict.highest_throughput = f"No scenario stayed {budget}."
    verdict.framework_claim = _framework_claim(records)
    verdict.caveats = caveats(every_record, cpu_only) + [
        f"{model} over {protocol} left out of the verdict: {why}."
        for (model, protocol), why in sorted(untrusted.items())
    ]
    return verdict


def _best_at_one(records, keep) -> dict | None:
    rows = [r for r in _closed(records, 1) if keep(r["model"])]
    return min(rows, key=lambda r: r["p50_ms"]) if rows else None


def _framework_claim(records) -> str:
    """The classic tutorial says TensorFlow's static graphs serve faster than PyTorch: check it
    on the native formats (SavedModel vs TorchScript) and on the best path of each framework."""
    parts = []
    for what, tf_keep, torch_keep in (
        ("native formats", lambda m: m.endswith("_tf_savedmodel"),
         lambda m: m.endswith("_torch_torchscript")),
        ("best path of each framework", lambda m: "_tf_" in m, lambda m: "_torch_" in m),
    ):  # fmt: skip
        tf, torch = _best_at_one(records, tf_keep), _best_at_one(records, torch_keep)
        if tf is None or torch is None:
            continue
        faster = "TensorFlow" if tf["p50_ms"] < torch["p50_ms"] else "PyTorch"
        ratio = max(tf["p50_ms"], torch["p50_ms"]) / min(tf["p50_ms"], torch["p50_ms"])
        parts.append(
            f"{what}: {path_label(tf)} p50 {tf['p50_ms']:.2f} ms vs {path_label(torch)} p50 "
            f"{torch['p50_ms']:.2f} ms, {faster} ahead by {ratio:.2f}x"
        )
    if not parts:
        return ""
    return (
        "The tutorial's claim that TensorFlow's static graphs serve faster than PyTorch, "
        "measured at concurrency 1 in this run: " + "; ".join(parts) + "."
    )


def caveats(records: list[dict], cpu_only: bool) -> list[str]:
    notes = []
    if cpu_only:
        notes.append("CPU-only run (no GPU): figures rank the paths on CPU, not on a GPU server.")
    for r in records:
        label = f"{path_label(r)} ({r.get('mode')}, c={r.get('concurrency')}, rate={r.get('rate')})"
        if r.get("errors") and not r.get("requests"):
            kinds = ", ".join(
                f"{k} x{n}" for k, n in sorted((r.get("errors_by_kind") or {}).items())
            )
            notes.append(f"{label}: every request failed ({kinds}); no figures from it.")
            continue
        if (r.get("client_cpu_percent") or 0) >= CLIENT_BOUND_CPU:
            notes.append(
                f"{label}: load generator at {r['client_cpu_percent']:.0f}% CPU "
                "(client-bound; the server may be faster than shown)."
            )
        server, client = r.get("server_inference_count"), r.get("client_inference_count")
        if counts_apart(r):
            notes.append(f"{label}: server counted {server} inferences, client {client}.")
        if r.get("errors"):
            notes.append(f"{label}: {r['errors']} errors.")
    return notes
