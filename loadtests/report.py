"""The comparison report: report.md, a self-contained report.html (plots embedded), results.csv,
results.json and manifest.json, written from the records of a run (whatever of it finished).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
from pathlib import Path

from loadtests import plots
from loadtests.verdict import decide

LOAD_COLUMNS = [
    ("model", "model"), ("protocol", "protocol"), ("mode", "mode"), ("concurrency", "c"),
    ("rate", "rate/s"), ("throughput_infer_per_s", "infer/s"), ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("requests", "requests"),
    ("errors", "errors"), ("littles_law_concurrency", "Little's L"),
    ("client_cpu_percent", "client CPU %"), ("server_queue_us", "queue us"),
    ("server_compute_infer_us", "infer us"), ("avg_batch_size", "avg batch"),
]  # fmt: skip


@dataclasses.dataclass
class ReportData:
    manifest: dict
    training: list[dict] = dataclasses.field(default_factory=list)
    exports: list[dict] = dataclasses.field(default_factory=list)
    served: list[dict] = dataclasses.field(default_factory=list)
    results: list[dict] = dataclasses.field(default_factory=list)
    p99_budget_ms: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. "interrupted at ..."


def _untrusted(served: list[dict]) -> dict[tuple[str, str], str]:
    """Paths whose served answers did not match the source model, with what was found."""
    return {
        (s["model"], s["protocol"]): (
            f"served check error ({s['error']})" if s.get("error")
            else f"served answers differ from the source model (max abs diff "
            f"{s['max_abs_diff']:.3g} > atol {s['atol']:g})"
        )
        for s in served
        if not s.get("passed")
    }  # fmt: skip


def write_report(data: ReportData, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu_only = not data.manifest.get("gpu")
    verdict = decide(data.results, data.p99_budget_ms, cpu_only, _untrusted(data.served))
    sections = _sections(data, verdict)
    figures = {
        "Latency vs throughput": plots.latency_vs_throughput(data.results),
        "Server time breakdown": plots.server_breakdown(data.results),
        "HTTP vs gRPC": plots.protocol_difference(data.results),
    }
    paths = {
        "md": out_dir / "report.md",
        "html": out_dir / "report.html",
        "csv": out_dir / "results.csv",
        "json": out_dir / "results.json",
        "manifest": out_dir / "manifest.json",
    }
    figure_files = {}
    for title, png in figures.items():
        if png:
            name = title.lower().replace(" ", "_") + ".png"
            (out_dir / name).write_bytes(png)
            figure_files[title] = name
    paths["md"].write_text(_markdown(sections, figure_files))
    paths["html"].write_text(_html(sections, figures))
    write_results(data.results, out_dir)
    paths["manifest"].write_text(json.dumps(data.manifest, indent=2, default=str) + "\n")
    return paths


def write_results(results: list[dict], out_dir: Path) -> None:
    """results.json and results.csv (also called after every scenario by the load runner).

    Each file is written beside and renamed into place, so an interrupted write keeps the last
    complete version.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    keys = sorted({k for r in results for k in r})
    head = [k for k, _ in LOAD_COLUMNS if k in keys]
    keys = head + [k for k in keys if k not in head]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow({k: _cell(r.get(k)) for k in keys})
    _atomic_write(out_dir / "results.csv", buffer.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _cell(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:.2f}"
    return str(value)


def _sections(data: ReportData, verdict) -> list[tuple[str, list[str], list[list[str]] | None]]:
    """(title, paragraphs, table rows with header first) in report order."""
    m = data.manifest
    sections = [
        ("Verdict", ([] if data.results else ["No load-test scenario finished."]) + verdict.lines(), None),
        ("Run", [
            f"Engine: {m.get('engine')} (Triton {m.get('triton_version', '?')}); "
            f"CPU: {m.get('cpu_model')} x {m.get('cpu_cores')} cores; GPU: {m.get('gpu') or 'none'}.",
            f"Command: `{m.get('command', '')}`",
            *data.notes,
        ], None),
    ]  # fmt: skip
    if data.training:
        rows = [["arch", "framework", "test accuracy", "train s", "train/test", "cached"]]
        rows += [[t["arch"], t["framework"], f"{t['test_accuracy']:.4f}",
                  _fmt(t.get("train_seconds")), f"{t.get('num_train')}/{t.get('num_test')}",
                  "yes" if t.get("cached") else "no"] for t in data.training]  # fmt: skip
        sections.append(("Trained models", [], rows))
    if data.exports:
        rows = [["model", "status", "export s", "size MB", "max abs diff", "top-1 agreement"]]
        for e in data.exports:
            p = e.get("parity") or {}
            rows.append([e["name"], e["status"], _fmt(e.get("export_seconds")),
                         f"{(e.get('artifact_bytes') or 0) / 1e6:.1f}",
                         _fmt(p.get("max_abs_diff")), _fmt(p.get("top1_agreement"))])  # fmt: skip
        sections.append(("Exports and parity", [], rows))
    if data.served:
        rows = [["model", "protocol", "samples", "max abs diff", "top-1 agreement", "status"]]
        rows += [[s["model"], s["protocol"], str(s.get("samples")), _fmt(s.get("max_abs_diff")),
                  _fmt(s.get("top1_agreement")), "match" if s.get("passed") else "MISMATCH"]
                 for s in data.served]  # fmt: skip
        sections.append(("Served correctness (over the wire vs source model)", [], rows))
    if data.results:
        rows = [[label for _, label in LOAD_COLUMNS]]
        rows += [[_fmt(r.get(k)) for k, _ in LOAD_COLUMNS] for r in data.results]
        sections.append(("Load tests (exact percentiles from raw samples)", [], rows))
    return sections


def _markdown(sections, figure_files: dict[str, str]) -> str:
    lines = ["# servebench report", ""]
    for title, paragraphs, rows in sections:
        lines += [f"## {title}", ""]
        lines += [f"- {p}" if title == "Verdict" else p for p in paragraphs]
        if paragraphs:
            lines.append("")
        if rows:
            lines.append("| " + " | ".join(rows[0]) + " |")
            lines.append("|" + "---|" * len(rows[0]))
            lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            lines.append("")
    for title, name in figure_files.items():
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    return "\n".join(lines)


def _html(sections, figures: dict[str, bytes | None]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>servebench report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "th{background:#f0f0f0}td:first-child{text-align:left}"
        "img{max-width:100%;border:1px solid #ddd}</style></head><body>",
        "<h1>servebench report</h1>",
    ]
    for title, paragraphs, rows in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if title == "Verdict":
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in paragraphs) + "</ul>"
            )
        else:
            parts += [f"<p>{html.escape(p)}</p>" for p in paragraphs]
        if rows:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                for r in rows[1:]
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    for title, png in figures.items():
        if png:
            data = base64.b64encode(png).decode()
            parts.append(
                f"<h2>{html.escape(title)}</h2><img alt='{title}' src='data:image/png;base64,{data}'>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
