"""Run a server in the foreground until Ctrl-C or SIGTERM (what ``servebench serve`` does)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from serving.engines import ServeConfig, open_server, stub_memory_mb
from serving.errors import ServingError


def ready_line(server) -> str:
    return (
        f"ready: http={server.http_url} grpc={server.grpc_url} metrics={server.metrics_url} "
        f"models={len(server.model_names())}"
    )


def serve_forever(config: ServeConfig, report: Callable[[str], None]) -> None:
    """Start, report the ready line (and stub memory), block until interrupted, then stop.

    SIGTERM is handled like Ctrl-C, so ``with`` blocks unwind and the server is stopped. A server
    that dies on its own raises ``ServingError`` with its log tail.
    """
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and `kill -INT` must work
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with open_server(config) as server:
            report(ready_line(server))
            report(f"time to ready: {server.startup_seconds:.1f} s")
            memory = stub_memory_mb(getattr(server, "pid", None))
            if memory:
                report("stub memory (RSS MB): " + ", ".join(f"{k}={v}" for k, v in memory.items()))
            while True:
                if hasattr(server, "is_alive") and not server.is_alive():
                    raise ServingError(
                        "tritonserver exited unexpectedly\n--- tritonserver log (tail) ---\n"
                        f"{server.log_excerpt()}"
                    )
                time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
