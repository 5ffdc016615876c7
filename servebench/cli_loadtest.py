"""``servebench loadtest``: argument parsing for the load-test runner."""

from __future__ import annotations

import re
from pathlib import Path

from models.errors import UserInputError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def parse_duration(text: str) -> float:
    """``15s``, ``2m``, ``500ms`` or plain seconds -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UserInputError(f"cannot read duration {text!r}; write e.g. 15s, 2m or 500ms")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_concurrency(text: str, flag: str = "--concurrency") -> tuple[int, ...]:
    """``1,4,8`` -> (1, 4, 8): closed-loop user counts, each a whole number >= 1."""
    values = _csv(text)
    if not values or not all(v.isdigit() and int(v) >= 1 for v in values):
        raise UserInputError(
            f"{flag} takes comma-separated user counts >= 1, e.g. 1,4,8; got {text!r}"
        )
    return tuple(int(v) for v in values)


def parse_rates(text: str, flag: str = "--rate") -> tuple[float, ...]:
    """``50,100`` -> (50.0, 100.0): open-loop arrival rates in requests/s, each > 0."""
    try:
        rates = tuple(float(v) for v in _csv(text))
    except ValueError:
        rates = ()
    if not rates or not all(0 < r < float("inf") for r in rates):
        raise UserInputError(
            f"{flag} takes comma-separated requests/s > 0, e.g. 50,100; got {text!r}"
        )
    return rates


def add_loadtest_command(sub) -> None:
    p = sub.add_parser("loadtest", help="load-test served models with Locust (HTTP and gRPC)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="Triton HTTP endpoint")
    p.add_argument("--grpc-url", default="127.0.0.1:8001", help="Triton gRPC endpoint")
    p.add_argument("--models", default="all", help="all | comma-separated model names")
    p.add_argument("--protocols", default="http,grpc")
    levels = p.add_mutually_exclusive_group()
    levels.add_argument("--concurrency", default=None, help="closed loop users, e.g. 1,2,4,8")
    levels.add_argument("--rate", default=None, help="open loop requests/s, e.g. 50,100")
    p.add_argument("--duration", default="15s", help="measurement window per scenario")
    p.add_argument("--warmup", default="3s", help="discarded warm-up per scenario")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--inputs", choices=["random", "real"], default="random")
    p.add_argument("--repo", type=Path, default=Path("model_repo"), help="for --inputs real")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    p.add_argument("--workers", type=int, default=0, help="local Locust worker processes")
    p.add_argument("--out", type=Path, default=None, help="results dir (default reports/load-*)")
    p.set_defaults(handler=cmd_loadtest)


def cmd_loadtest(args) -> int:
    import time

    from loadtests.runner import LoadTestConfig, real_samples, run_loadtest

    models = None if args.models == "all" else _csv(args.models)
    url = args.url if "://" in args.url else f"http://{args.url}"
    out = args.out or Path("reports") / time.strftime("load-%Y%m%d-%H%M%S")
    samples = None
    if args.inputs == "real":
        if not models:
            raise UserInputError("--inputs real needs --models (names in --repo)")
        samples = {m: real_samples(args.repo, m) for m in models}
    config = LoadTestConfig(
        http_url=url,
        grpc_url=args.grpc_url.split("://")[-1],
        models=models,
        protocols=_csv(args.protocols),
        concurrency=parse_concurrency(args.concurrency or "1,2,4,8"),
        rates=parse_rates(args.rate) if args.rate else (),
        duration_s=parse_duration(args.duration),
        warmup_s=parse_duration(args.warmup),
        batch_size=args.batch_size,
        inputs=args.inputs,
        samples=samples,
        out=out,
        timeout_s=args.timeout,
    )
    _quiet_keyboard_interrupt()
    if args.workers:
        from loadtests.distributed import run_distributed

        run = run_distributed(config, args.workers, on_record=_print_record)
    else:
        run = run_loadtest(config, on_record=_print_record)
    return _conclude(run, out)


def _quiet_keyboard_interrupt() -> None:
    """Ctrl-C reaches gevent's hub first, which would print it as a crash before passing it on
    to the runner (which stops cleanly and keeps what finished)."""
    import gevent

    hub = gevent.get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)


def _conclude(run, out: Path) -> int:
    """Say where the results are and how the run ended; the exit code.

    0: every scenario ran and each had successes; 1: a scenario failed outright or the server
    stopped answering; 130: Ctrl-C (what finished is kept).
    """
    if run.records:
        print(f"results: {out / 'results.json'} ({len(run.records)} scenarios)")
    else:
        print("no scenario finished; nothing was written")
    if run.stopped_early:
        print(f"stopped early: {run.stopped_early}")
    for record in run.failed_scenarios:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(record["errors_by_kind"].items()))
        print(
            f"failed: {record['model']} {record['protocol']}: all {record['errors']} requests "
            f"failed ({kinds}); its figures measure nothing"
        )
    if run.interrupted:
        return 130
    return 1 if run.stopped_early or run.failed_scenarios else 0


def _print_record(record: dict, index: int, total: int) -> None:
    flags = [f for f in ("all_failed", "client_bound", "count_mismatch") if record.get(f)]
    level = f"c={record['concurrency']}" if record["mode"] == "closed" else f"rate={record['rate']}"
    print(
        f"[{index}/{total}] {record['model']} {record['protocol']} {level}: "
        f"{record['throughput_infer_per_s']:.1f} infer/s p50 {record['p50_ms']:.2f} ms "
        f"p99 {record['p99_ms']:.2f} ms errors {record['errors']} "
        f"L={record['littles_law_concurrency']:.2f} "
        f"server/client count (warm-up incl.) {record['server_inference_count']}/"
        f"{record['client_inference_count']} "
        f"avg_batch={_num(record['avg_batch_size'])}" + (f" FLAGS {flags}" if flags else ""),
        flush=True,
    )


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"
