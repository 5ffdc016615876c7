"""Load-generator health: the CPU this process, and its gevent loop thread, used in a window."""

from __future__ import annotations

import dataclasses
import time

import psutil

SATURATED_PERCENT = 90.0


@dataclasses.dataclass(frozen=True)
class CpuUsage:
    process_percent: float  # all threads; 100 = one core busy
    loop_percent: float  # the thread running the gevent loop (all users' Python code)

    @property
    def saturated(self) -> bool:
        """The loop thread was (nearly) always busy: the client, not the server, set the pace."""
        return self.loop_percent >= SATURATED_PERCENT


class CpuMeter:
    """``start()`` then ``stop()`` from the thread that runs the gevent loop."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._thread_id = _native_thread_id()
        self._start: tuple[float, float, float] | None = None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> CpuUsage:
        wall0, proc0, loop0 = self._start
        wall1, proc1, loop1 = self._read()
        wall = max(wall1 - wall0, 1e-9)
        return CpuUsage(100.0 * (proc1 - proc0) / wall, 100.0 * (loop1 - loop0) / wall)

    def _read(self) -> tuple[float, float, float]:
        times = self._process.cpu_times()
        loop = next(
            (
                t.user_time + t.system_time
                for t in self._process.threads()
                if t.id == self._thread_id
            ),
            0.0,
        )
        return time.perf_counter(), times.user + times.system, loop


def _native_thread_id() -> int:
    """The OS id of this thread, also when gevent has patched ``threading``."""
    try:
        from gevent.monkey import get_original

        return get_original("threading", "get_native_id")()
    except ImportError:  # pragma: no cover - gevent always comes with locust
        import threading

        return threading.get_native_id()
