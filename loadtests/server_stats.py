"""Triton's own statistics for a model, and their delta over one scenario.

``GET /v2/models/<model>/stats`` reports cumulative counts and nanoseconds per phase; the delta
between two snapshots gives the server's view of a scenario: inferences and executions (so the
average dynamic batch), and the average queue / compute input / infer / output time per request.
"""

from __future__ import annotations

import json
import urllib.request

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


def snapshot(http_url: str, model: str, timeout_s: float = 10.0) -> dict | None:
    """Cumulative statistics of ``model``, or None when the server does not answer."""
    url = f"{http_url.rstrip('/')}/v2/models/{model}/stats"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    stats = data["model_stats"][0]
    inference = stats["inference_stats"]
    return {
        "inference_count": int(stats.get("inference_count", 0)),
        "execution_count": int(stats.get("execution_count", 0)),
        "success_count": int(inference["success"]["count"]),
        **{f"{phase}_ns": int(inference[phase]["ns"]) for phase in PHASES},
    }


def delta(before: dict | None, after: dict | None) -> dict:
    """Per-scenario server figures (``server_*`` keys); None values when a snapshot is missing."""
    keys = ["server_inference_count", "server_execution_count", "avg_batch_size"]
    keys += [f"server_{phase}_us" for phase in PHASES]
    if before is None or after is None:
        return dict.fromkeys(keys)
    d = {k: after[k] - before[k] for k in after}
    requests = max(d["success_count"], 1)
    out = {
        "server_inference_count": d["inference_count"],
        "server_execution_count": d["execution_count"],
        "avg_batch_size": d["inference_count"] / d["execution_count"]
        if d["execution_count"]
        else None,
    }
    for phase in PHASES:
        out[f"server_{phase}_us"] = d[f"{phase}_ns"] / requests / 1000.0
    return out
