"""Report plots (matplotlib, Agg), returned as PNG bytes so the HTML can embed them."""

from __future__ import annotations

import io


def _figure(width=8.0, height=4.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=110)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def latency_vs_throughput(records: list[dict]) -> bytes | None:
    """One line per (model, protocol): p50 (solid) and p99 (dashed) against throughput."""
    closed = [r for r in records if r.get("mode") == "closed" and r.get("requests")]
    if not closed:
        return None
    plt, fig, ax = _figure()
    paths = sorted({(r["model"], r["protocol"]) for r in closed})
    for i, (model, protocol) in enumerate(paths):
        rows = sorted(
            (r for r in closed if (r["model"], r["protocol"]) == (model, protocol)),
            key=lambda r: r["concurrency"],
        )
        x = [r["throughput_infer_per_s"] for r in rows]
        color = f"C{i % 10}"
        ax.plot(x, [r["p50_ms"] for r in rows], "o-", color=color, label=f"{model} {protocol}")
        ax.plot(x, [r["p99_ms"] for r in rows], "x--", color=color, alpha=0.6)
        for r in rows:
            ax.annotate(
                str(r["concurrency"]),
                (r["throughput_infer_per_s"], r["p50_ms"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    ax.set_xlabel("throughput (inferences/s)")
    ax.set_ylabel("latency (ms): p50 solid, p99 dashed")
    ax.set_title("Latency vs throughput (closed loop; labels = concurrency)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _png(plt, fig)


def server_breakdown(records: list[dict]) -> bytes | None:
    """Stacked bars of the server's own time per request: queue, compute input/infer/output."""
    rows = [r for r in records if r.get("mode") == "closed" and r.get("server_compute_infer_us")]
    if not rows:
        return None
    top = max(r["concurrency"] for r in rows)
    rows = sorted(
        (r for r in rows if r["concurrency"] == top), key=lambda r: (r["model"], r["protocol"])
    )
    plt, fig, ax = _figure(8.0, 1.6 + 0.35 * len(rows))  # title and axis labels need ~1.6 in
    labels = [f"{r['model']} {r['protocol']}" for r in rows]
    left = [0.0] * len(rows)
    parts = (("server_queue_us", "queue"), ("server_compute_input_us", "compute input"),
             ("server_compute_infer_us", "compute infer"), ("server_compute_output_us", "compute output"))  # fmt: skip
    for key, name in parts:
        values = [(r.get(key) or 0.0) / 1000.0 for r in rows]
        ax.barh(labels, values, left=left, label=name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("ms per request (server side)")
    ax.set_title(f"Where the server spends its time (concurrency {top})")
    ax.legend(fontsize=7)
    ax.invert_yaxis()
    return _png(plt, fig)


def protocol_difference(records: list[dict]) -> bytes | None:
    """gRPC p50 minus HTTP p50 per model and concurrency (negative: gRPC faster)."""
    closed = {(r["model"], r["protocol"], r["concurrency"]): r for r in records
              if r.get("mode") == "closed" and r.get("requests")}  # fmt: skip
    pairs = sorted(
        {(m, c) for (m, p, c) in closed if (m, "http", c) in closed and (m, "grpc", c) in closed}
    )
    if not pairs:
        return None
    plt, fig, ax = _figure(8.0, 1.6 + 0.3 * len(pairs))
    labels = [f"{m} c={c}" for m, c in pairs]
    diffs = [closed[m, "grpc", c]["p50_ms"] - closed[m, "http", c]["p50_ms"] for m, c in pairs]
    ax.barh(labels, diffs, color=["C2" if d < 0 else "C3" for d in diffs])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("gRPC p50 - HTTP p50 (ms); negative = gRPC faster")
    ax.set_title("HTTP vs gRPC")
    ax.invert_yaxis()
    return _png(plt, fig)
