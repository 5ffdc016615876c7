"""``EmbeddedTriton``: the ``tritonserver`` of the nvidia-pytriton wheel as a context manager.

    with EmbeddedTriton(served_repo, TritonOptions(http_port=8000)) as server:
        client = tritonclient.http.InferenceServerClient(server.http_url)

Start checks the ports, launches the binary in its own process group (so the Python-backend stubs
go with it) with PR_SET_PDEATHSIG (so it dies with its parent), waits for live + ready + every
model READY, then runs one real inference per model. Stop sends SIGINT, waits, then SIGKILLs the
whole group. Any start failure stops the server and raises with the log tail and the log's path.
A clean stop removes the temporary directory (backend dir, default log); after a failed start or
a crash the ``tritonserver.log`` in it is kept. A ``log_file`` the caller gives is never removed.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from models.errors import UserInputError
from serving.errors import ServerStateError
from serving.ports import check_ports_free, free_port, free_ports  # noqa: F401  (re-exported)
from serving.process import die_with_parent_hook, kill_group

LOGGER = logging.getLogger(__name__)

MODEL_CONTROL_MODES = ("none", "poll", "explicit")
# extra tritonserver flags a caller may pass; the ones servebench sets itself are not here
ALLOWED_FLAGS = frozenset(
    {
        "log-verbose", "log-info", "log-warning", "log-error", "log-format",
        "http-thread-count", "grpc-infer-allocation-pool-size", "allow-metrics",
        "allow-gpu-metrics", "allow-cpu-metrics", "metrics-interval-ms",
        "pinned-memory-pool-byte-size", "cuda-memory-pool-byte-size",
        "buffer-manager-thread-count", "model-load-thread-count", "backend-config",
        "repository-poll-secs", "load-model", "rate-limit", "cache-config", "trace-config",
    }
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TritonOptions:
    """How to run the embedded server. Ports must be free; ``free_port()`` finds some."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control_mode: str = "none"
    startup_timeout_s: float = 300.0
    stop_timeout_s: float = 30.0
    log_file: Path | None = None  # default: a file in a fresh temporary directory
    extra_flags: dict[str, str] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.model_control_mode not in MODEL_CONTROL_MODES:
            raise UserInputError(
                f"model_control_mode must be one of {MODEL_CONTROL_MODES}, got {self.model_control_mode!r}"
            )
        unknown = sorted(set(self.extra_flags) - ALLOWED_FLAGS)
        if unknown:
            raise UserInputError(
                f"tritonserver flags not allowed: {unknown}; allowed: {sorted(ALLOWED_FLAGS)}"
            )


class EmbeddedTriton:
    """One ``tritonserver`` process serving a *served* repository (see ``serving.derive``)."""

    def __init__(self, model_repository: Path, options: TritonOptions | None = None):
        self.model_repository = Path(model_repository).resolve()
        self.options = options or TritonOptions()
        self.startup_seconds: float | None = None
        self.probe_seconds: dict[str, float] = {}
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._start_failed = False
        self.log_path: Path | None = None

    # -- public API -----------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.options.host}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.options.host}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.options.host}:{self.options.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def model_names(self) -> list[str]:
        """The models of the repository (directories holding a ``config.pbtxt``)."""
        from exporters.repository import list_models

        return [p.name for p in list_models(self.model_repository)]

    def start(self) -> EmbeddedTriton:
        """Launch and wait until every model answers; raises on failure (server stopped)."""
        if self._process is not None:
            raise ServerStateError(
                f"tritonserver already started (pid {self._process.pid}); stop it first"
            )
        self.options.validate()
        if not self.model_repository.is_dir():
            raise UserInputError(f"model repository {self.model_repository} does not exist")
        check_ports_free(self.options.host, self._ports())
        began = time.monotonic()
        self._start_failed = False
        self._launch()
        try:
            self._wait_and_probe(began + self.options.startup_timeout_s)
        except Exception:
            self._start_failed = True  # keep the log: the error shows its tail and its path
            self.stop()
            raise
        except BaseException:  # Ctrl-C while starting: an ordinary stop
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        LOGGER.info(
            "tritonserver ready in %.1fs (pid %d, http %s, grpc %s, %d models)",
            self.startup_seconds, self.pid, self.http_url, self.grpc_url, len(self.probe_seconds),
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """SIGINT, wait ``stop_timeout_s``, then SIGKILL the process group. Safe to call twice.

        A clean stop (running, exits 0 on SIGINT in time, start did not fail) removes the
        temporary directory; after a failed start or a crash its ``tritonserver.log`` is kept.
        """
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        clean = False
        try:
            if process.poll() is None:
                clean = self._interrupt(process) and not self._start_failed
        finally:
            kill_group(process.pid)  # stubs left in the group
            self._remove_workdir(keep_log=not clean)
        LOGGER.info("tritonserver stopped (exit code %s)", process.returncode)

    def log_tail(self, max_lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-max_lines:])

    def log_excerpt(self, max_lines: int = 60) -> str:
        """The log tail for an error message, ending with where the full log is kept."""
        tail = self.log_tail(max_lines)
        if self.log_path is None:
            return tail
        return f"{tail}\n--- full log: {self.log_path} ---"

    def argv(self, backend_dir: Path) -> list[str]:
        """The tritonserver command line (binary excluded)."""
        o = self.options
        flags = {
            "model-repository": str(self.model_repository),
            "backend-directory": str(backend_dir),
            "model-control-mode": o.model_control_mode,
            "http-address": o.host,
            "http-port": str(o.http_port),
            "grpc-address": o.host,
            "grpc-port": str(o.grpc_port),
            "metrics-address": o.host,
            "metrics-port": str(o.metrics_port),
            "exit-on-error": "false",  # keep serving so the index can name each failed model
            "exit-timeout-secs": str(max(1, int(o.stop_timeout_s) - 5)),
            **o.extra_flags,
        }
        return [f"--{key}={value}" for key, value in flags.items()]

    def __enter__(self) -> EmbeddedTriton:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------
    def _ports(self) -> dict[str, int]:
        o = self.options
        return {"http_port": o.http_port, "grpc_port": o.grpc_port, "metrics_port": o.metrics_port}

    def _interrupt(self, process: subprocess.Popen) -> bool:
        """SIGINT and wait; True when it exited with code 0 in time (else it is killed)."""
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=self.options.stop_timeout_s) == 0
        except subprocess.TimeoutExpired:
            LOGGER.warning(
                "tritonserver did not stop in %.0fs; killing it", self.options.stop_timeout_s
            )
            kill_group(process.pid)
            process.wait(timeout=10)
            return False

    def _remove_workdir(self, keep_log: bool) -> None:
        """Remove the temporary directory; with ``keep_log``, all but a log that lives in it."""
        workdir, self._workdir = self._workdir, None
        if workdir is None:
            return
        log_inside = self.log_path is not None and self.log_path.parent == workdir.resolve()
        if keep_log and log_inside and self.log_path.exists():
            shutil.rmtree(workdir / "backends", ignore_errors=True)
            LOGGER.warning("tritonserver log kept at %s", self.log_path)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def _launch(self) -> None:
        from serving.embedded_env import TritonDistribution

        dist = TritonDistribution.locate()
        self._workdir = Path(tempfile.mkdtemp(prefix="servebench-triton-"))
        try:
            self._popen(dist)
        except BaseException:
            self._remove_workdir(keep_log=False)
            raise
        atexit.register(self.stop)

    def _popen(self, dist) -> None:
        from serving.embedded_env import build_backend_dir, server_env

        backend_dir = build_backend_dir(dist, self._workdir / "backends")
        self.log_path = Path(self.options.log_file or self._workdir / "tritonserver.log").resolve()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(dist.binary), *self.argv(backend_dir)]
        LOGGER.info("starting %s (log %s)", " ".join(argv), self.log_path)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                argv,
                env=server_env(dist),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: the stubs are stopped with it
                preexec_fn=die_with_parent_hook(),
                close_fds=True,
                cwd=self._workdir,  # the stubs put the cwd on sys.path: keep it neutral
            )

    def _wait_and_probe(self, deadline: float) -> None:
        import tritonclient.http as httpclient

        from serving.readiness import probe_models, wait_until_ready

        names = self.model_names()
        with contextlib.closing(
            httpclient.InferenceServerClient(self.http_url, network_timeout=60)
        ) as client:
            wait_until_ready(client, names, deadline, self._exit_code, self.log_excerpt)
            self.probe_seconds = probe_models(client, names, self.log_excerpt)

    def _exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()


__all__ = ["EmbeddedTriton", "TritonOptions", "free_port", "free_ports"]
