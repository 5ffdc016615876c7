"""servebench's load generator against Triton's own C++ one, perf_analyzer, in one run.

Targets (issue): on the same embedded Triton, model ``seedcnn_torch_onnx``, batch 1, random inputs:

- HTTP, concurrency 1 and 4: servebench throughput >= 0.9 x perf_analyzer's, p50 within 15 %;
- gRPC, 4 and 8 users: servebench's Little's-law concurrency >= 0.9 x users.

For the record (no target), each gRPC window is paired with a perf_analyzer gRPC window at the
same concurrency, so the report's HTTP-vs-gRPC figures can be read against the client's own cost.

Trains seedcnn (torch, one epoch, 32 x 32) and exports it to ONNX (not timed), serves it, then
interleaves equal-length windows, alternating which tool goes first: perf_analyzer HTTP then
servebench HTTP at each concurrency, ``--repeats`` times; ratios are the median of the paired
(adjacent-window) ratios. Each tool warms up for ``--warmup`` seconds before every window.
perf_analyzer measures three windows of duration/3 (``-s 1000`` stops it at the first three) and
reports their merged numbers. The servebench windows run in a child process (Locust patches its
process with gevent); the server stays in this one. Prints the ratios and PASS/FAIL per target;
exits 1 if a target is missed.

    .venv/bin/python benchmarks/loadgen_vs_perf_analyzer.py [--duration 5] [--repeats 4]

perf_analyzer comes from ../shared/tools/get-perf-analyzer.sh (run here unless it is installed
already or ``--skip-install`` is given).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "seedcnn_torch_onnx"
HTTP_CONCURRENCY = (1, 4)
GRPC_USERS = (4, 8)  # the Little's-law target
GRPC_COMPARED = (1, 4, 8)  # paired with perf_analyzer's gRPC, for the record
MIN_THROUGHPUT_RATIO = 0.9
P50_TOLERANCE = 0.15
MIN_CONCURRENCY_RATIO = 0.9
INSTALLER = ROOT.parent / "shared" / "tools" / "get-perf-analyzer.sh"  # beside the checkout
DEFAULT_PA = ROOT / ".cache" / "perf_analyzer" / "perf_analyzer"
RECORD_MARKER = "LOADGEN-RECORD "
PROCESS_SLACK_S = 90.0  # start-up and tear-down allowance on top of a window's own length


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says which and shows the tool's output."""


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    duration_s: float = 5.0
    warmup_s: float = 2.0
    repeats: int = 4
    perf_analyzer: Path = DEFAULT_PA
    skip_install: bool = False
    repo: Path | None = None  # an exported repository holding MODEL; None: train and export


@dataclasses.dataclass(frozen=True)
class Window:
    """One measurement window of one tool."""

    tool: str  # perf_analyzer | servebench
    protocol: str
    concurrency: int
    repeat: int
    throughput: float  # inferences/s
    p50_ms: float
    p99_ms: float
    extra: str = ""  # tool-specific health (servebench: Little's law, client CPU, errors)


@dataclasses.dataclass(frozen=True)
class Verdict:
    target: str
    value: float
    bound: str
    passed: bool
    per_repeat: tuple[float, ...] = ()  # the paired ratios the median comes from


# ---- perf_analyzer ----------------------------------------------------------------------------


def ensure_perf_analyzer(config: BenchConfig) -> Path:
    """The perf_analyzer wrapper; installed with the shared tool unless present or skipped."""
    pa = config.perf_analyzer
    if pa.is_file():
        return pa
    if config.skip_install:
        raise BenchError(
            f"perf_analyzer not found at {pa}; run {INSTALLER} {pa.parent} or drop --skip-install"
        )
    print(f"installing perf_analyzer into {pa.parent} ...", flush=True)
    proc = subprocess.run(
        ["bash", str(INSTALLER), str(pa.parent)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0 or not pa.is_file():
        raise BenchError(f"{INSTALLER} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return pa


def perf_analyzer_window(
    pa: Path, url: str, protocol: str, concurrency: int, seconds: float, csv_path: Path
) -> dict[str, float]:
    """One perf_analyzer run: three windows of ``seconds``/3, merged; numbers from its CSV."""
    command = [
        str(pa), "-m", MODEL, "-u", url, "-i", protocol, "-b", "1",
        "--concurrency-range", str(concurrency), "--input-data", "random",
        "-p", str(max(1, round(seconds * 1000 / 3))), "-s", "1000", "-f", str(csv_path),
    ]  # fmt: skip
    csv_path.unlink(missing_ok=True)
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=2 * seconds + PROCESS_SLACK_S
    )
    if proc.returncode != 0 or not csv_path.is_file():
        output = (proc.stdout + proc.stderr)[-3000:]
        raise BenchError(f"perf_analyzer failed ({proc.returncode}): {' '.join(command)}\n{output}")
    with open(csv_path, newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if int(r["Concurrency"]) == concurrency)
    return {
        "throughput": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000,  # microseconds in the CSV
        "p99_ms": float(row["p99 latency"]) / 1000,
    }


def run_perf_analyzer(
    pa: Path, url: str, protocol: str, concurrency: int, config: BenchConfig, work: Path
) -> dict[str, float]:
    if config.warmup_s > 0:
        perf_analyzer_window(pa, url, protocol, concurrency, config.warmup_s, work / "warm.csv")
    return perf_analyzer_window(pa, url, protocol, concurrency, config.duration_s, work / "pa.csv")


# ---- servebench (Locust, in a child process) --------------------------------------------------


def run_servebench(
    http_url: str, grpc_url: str, protocol: str, users: int, config: BenchConfig
) -> dict:
    """One closed-loop servebench window in a child process; its LoadRecord as a dict."""
    request = {
        "http_url": f"http://{http_url}",
        "grpc_url": grpc_url,
        "protocol": protocol,
        "users": users,
        "duration_s": config.duration_s,
        "warmup_s": config.warmup_s,
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=config.warmup_s + config.duration_s + PROCESS_SLACK_S,
        cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RECORD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"servebench {protocol} window ({users} users) failed ({proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(RECORD_MARKER) :])


def child_main(request_json: str) -> int:
    """Child-process entry: one closed-loop window, printed as one JSON line."""
    import locust  # noqa: F401 - gevent's monkey patching before anything opens a socket

    from loadtests.closed_loop import ClosedLoopConfig, run_closed_loop
    from loadtests.target import resolve_target

    request = json.loads(request_json)
    target = resolve_target(MODEL, request["http_url"], request["grpc_url"])
    loop = ClosedLoopConfig(
        protocol=request["protocol"],
        users=request["users"],
        duration_s=request["duration_s"],
        warmup_s=request["warmup_s"],
    )
    record = run_closed_loop(target, loop)
    print(RECORD_MARKER + json.dumps(record.to_dict()), flush=True)
    return 0


def servebench_window(record: dict, repeat: int) -> Window:
    littles_law = record["concurrency_ratio"] * record["concurrency"]  # completions/s x mean s
    cpu_ms = 10 * record["client_cpu_percent"] / max(record["throughput_req_per_s"], 1e-9)
    extra = (
        f"L={littles_law:.2f} client cpu {record['client_cpu_percent']:.0f}% "
        f"({cpu_ms:.2f} ms/req) err={record['errors']}"
        f"{' SATURATED' if record['client_saturated'] else ''}"
    )
    return Window(
        "servebench",
        record["protocol"],
        record["concurrency"],
        repeat,
        record["throughput_infer_per_s"],
        record["p50_ms"],
        record["p99_ms"],
        extra,
    )


# ---- the run ----------------------------------------------------------------------------------


def build_repo(work: Path) -> Path:
    """seedcnn, torch, one epoch at 32 x 32, exported to ONNX: the repository holding MODEL."""
    from exporters.export import ExportConfig, export_checkpoint
    from models.training import TrainConfig, train

    run_dir, repo = work / "run", work / "repo"
    train(TrainConfig(framework="torch", arch="seedcnn", epochs=1, image_size=32, out=run_dir))
    results = export_checkpoint(ExportConfig(checkpoint=run_dir, repo=repo, formats=("onnx",)))
    failed = [f"{r.name}: {r.status} {r.error}" for r in results if not r.ok]
    if failed:
        raise BenchError(f"export failed: {failed}")
    return repo


def measure_http(server, pa: Path, config: BenchConfig, work: Path) -> list[Window]:
    """Interleaved perf_analyzer / servebench HTTP windows; the first tool alternates."""
    windows = []
    for repeat in range(config.repeats):
        for concurrency in HTTP_CONCURRENCY:
            tools = ("perf_analyzer", "servebench")
            for tool in tools if repeat % 2 == 0 else tools[::-1]:
                before = _server_snapshot(server)
                if tool == "perf_analyzer":
                    numbers = run_perf_analyzer(
                        pa, server.http_url, "http", concurrency, config, work
                    )
                    window = Window(tool, "http", concurrency, repeat, **numbers)
                else:
                    record = run_servebench(
                        server.http_url, server.grpc_url, "http", concurrency, config
                    )
                    window = servebench_window(record, repeat)
                after = _server_snapshot(server)
                windows.append(window)
                print(_window_line(window) + _server_text(before, after), flush=True)
    return windows


def measure_grpc(server, pa: Path, config: BenchConfig, work: Path) -> tuple[list[dict], list]:
    """servebench gRPC windows (Little's law is the target here), each paired with a
    perf_analyzer gRPC window at the same concurrency for the record (no target on it)."""
    records, pairs = [], []
    for users in GRPC_COMPARED:
        before = _server_snapshot(server)
        records.append(run_servebench(server.http_url, server.grpc_url, "grpc", users, config))
        after = _server_snapshot(server)
        ours = servebench_window(records[-1], 0)
        print(_window_line(ours) + _server_text(before, after), flush=True)
        before = _server_snapshot(server)
        numbers = run_perf_analyzer(pa, server.grpc_url, "grpc", users, config, work)
        theirs = Window("perf_analyzer", "grpc", users, 0, **numbers)
        print(_window_line(theirs) + _server_text(before, _server_snapshot(server)), flush=True)
        pairs.append((theirs, ours))
    return records, pairs


def print_grpc_comparison(pairs: list) -> None:
    """For the record: how servebench's gRPC users compare with perf_analyzer's gRPC client."""
    print(f"\n{'gRPC (no target; one window each)':40s} {'infer/s ratio':>13s} {'p50 ratio':>10s}")
    for pa, sb in pairs:
        throughput, p50 = sb.throughput / pa.throughput, sb.p50_ms / pa.p50_ms
        print(
            f"{f'c={pa.concurrency} servebench/perf_analyzer':40s} {throughput:13.3f} {p50:10.3f}"
        )


def _server_snapshot(server) -> dict | None:
    # late: urllib pulls in ssl, which the --child process must import only after locust
    from loadtests import server_stats

    return server_stats.snapshot(f"http://{server.http_url}", MODEL)


def _server_text(before: dict | None, after: dict | None) -> str:
    """Triton's view of the run (warm-up included): average dynamic batch, queue, infer time."""
    from loadtests import server_stats

    d = server_stats.delta(before, after)
    if d["avg_batch_size"] is None:
        return "  [server stats unavailable]"
    return (
        f"  [server: batch {d['avg_batch_size']:.2f}, queue {d['server_queue_us'] / 1000:.2f} ms,"
        f" infer {d['server_compute_infer_us'] / 1000:.2f} ms]"
    )


def http_verdicts(windows: list[Window]) -> list[Verdict]:
    """Median over repeats of the paired (adjacent-window) servebench / perf_analyzer ratios."""
    verdicts = []
    for concurrency in HTTP_CONCURRENCY:
        pairs = _pairs(windows, concurrency)
        throughput = tuple(sb.throughput / pa.throughput for pa, sb in pairs)
        p50 = tuple(sb.p50_ms / pa.p50_ms for pa, sb in pairs)
        mid_throughput, mid_p50 = statistics.median(throughput), statistics.median(p50)
        verdicts.append(
            Verdict(
                f"HTTP c={concurrency} throughput servebench/perf_analyzer",
                mid_throughput,
                f">= {MIN_THROUGHPUT_RATIO}",
                mid_throughput >= MIN_THROUGHPUT_RATIO,
                throughput,
            )
        )
        verdicts.append(
            Verdict(
                f"HTTP c={concurrency} p50 servebench/perf_analyzer",
                mid_p50,
                f"{1 - P50_TOLERANCE:.2f}..{1 + P50_TOLERANCE:.2f}",
                abs(mid_p50 - 1) <= P50_TOLERANCE,
                p50,
            )
        )
    return verdicts


def grpc_verdicts(records: list[dict]) -> list[Verdict]:
    return [
        Verdict(
            f"gRPC {r['concurrency']} users Little's-law concurrency / users",
            r["concurrency_ratio"],
            f">= {MIN_CONCURRENCY_RATIO}",
            r["concurrency_ratio"] >= MIN_CONCURRENCY_RATIO and r["errors"] == 0,
        )
        for r in records
        if r["concurrency"] in GRPC_USERS
    ]


def _pairs(windows: list[Window], concurrency: int) -> list[tuple[Window, Window]]:
    """(perf_analyzer, servebench) windows of the same repeat at one concurrency."""
    by_key = {(w.tool, w.repeat): w for w in windows if w.concurrency == concurrency}
    repeats = sorted({w.repeat for w in windows})
    return [(by_key["perf_analyzer", r], by_key["servebench", r]) for r in repeats]


def _window_line(w: Window) -> str:
    return (
        f"  {w.protocol:4s} c={w.concurrency} rep={w.repeat} {w.tool:13s} "
        f"{w.throughput:8.1f} infer/s  p50 {w.p50_ms:6.2f} ms  p99 {w.p99_ms:6.2f} ms  {w.extra}"
    )


def print_summary(http: list[Window], verdicts: list[Verdict]) -> None:
    print(f"\n{'HTTP':6s} {'tool':14s} {'infer/s (median)':>17s} {'p50 ms (median)':>16s}")
    for concurrency in HTTP_CONCURRENCY:
        for tool in ("perf_analyzer", "servebench"):
            chosen = [w for w in http if w.concurrency == concurrency and w.tool == tool]
            throughput = statistics.median(w.throughput for w in chosen)
            p50 = statistics.median(w.p50_ms for w in chosen)
            print(f"c={concurrency:<4d} {tool:14s} {throughput:17.1f} {p50:16.2f}")
    print(f"\n{'target':54s} {'measured':>8s} {'bound':>10s}  verdict  per repeat")
    for v in verdicts:
        spread = " ".join(f"{x:.2f}" for x in v.per_repeat)
        verdict = "PASS" if v.passed else "FAIL"
        print(f"{v.target:54s} {v.value:8.3f} {v.bound:>10s}  {verdict:7s}  {spread}")


def run(config: BenchConfig) -> list[Verdict]:
    from serving.engines import ServeConfig, open_server
    from serving.triton import free_ports

    pa = ensure_perf_analyzer(config)
    with tempfile.TemporaryDirectory(prefix="loadgen-vs-pa-") as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        repo = config.repo or build_repo(work)
        print(f"model repository ready in {time.perf_counter() - began:.0f} s", flush=True)
        http_port, grpc_port, metrics_port = free_ports(3)
        serve = ServeConfig(
            repo=repo,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            served_dir=work / "served",
            log_file=work / "triton.log",
        )
        with open_server(serve) as server:
            print(f"Triton up (http {server.http_url}, grpc {server.grpc_url}); {_load()}")
            print("windows (server figures include each tool's warm-up):", flush=True)
            http = measure_http(server, pa, config, work)
            grpc, grpc_pairs = measure_grpc(server, pa, config, work)
    verdicts = http_verdicts(http) + grpc_verdicts(grpc)
    print_summary(http, verdicts)
    print_grpc_comparison(grpc_pairs)
    print(f"\nafter the windows: {_load()}")
    return verdicts


def _load() -> str:
    """Other work on this host skews both tools; the load average says how much there was."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def parse_args(argv: list[str]) -> BenchConfig | str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved HTTP repeats")
    parser.add_argument("--perf-analyzer", type=Path, default=DEFAULT_PA)
    parser.add_argument("--skip-install", action="store_true", help="never run the installer")
    parser.add_argument("--repo", type=Path, help=f"exported repository with {MODEL}")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one servebench window
    args = parser.parse_args(argv)
    if args.child:
        return args.child
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("need --repeats >= 1, --duration > 0 and --warmup >= 0")
    return BenchConfig(
        args.duration, args.warmup, args.repeats, args.perf_analyzer, args.skip_install, args.repo
    )


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    if isinstance(config, str):
        return child_main(config)
    began = time.perf_counter()
    try:
        verdicts = run(config)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    passed = all(v.passed for v in verdicts)
    print(f"\n{'PASS' if passed else 'FAIL'}: {sum(v.passed for v in verdicts)}/{len(verdicts)} "
          f"targets met; total {time.perf_counter() - began:.0f} s")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
