"""The three ways to serve a native repository: embedded, docker (NGC container) and remote.

``open_server(config)`` returns a context manager whose ``__enter__`` blocks until the server is
live, ready, every model READY and one real inference per model succeeded. All three expose
``http_url``, ``grpc_url``, ``metrics_url`` and ``model_names()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import shutil
import subprocess
import time
from pathlib import Path

from models.errors import UserInputError
from serving.errors import ServingError
from serving.ports import check_ports_distinct
from serving.triton import EmbeddedTriton, TritonOptions

log = logging.getLogger(__name__)

ENGINES = ("embedded", "docker", "remote")
NGC_IMAGE = "nvcr.io/nvidia/tritonserver:{version}-py3"


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    repo: Path = Path("model_repo")
    engine: str = "embedded"
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    timeout_s: float = 300.0
    threads: int = 1
    allow_model_control: bool = False
    url: str | None = None  # remote: HTTP endpoint host:port
    grpc_url: str | None = None  # remote: gRPC endpoint host:port
    triton_version: str = "24.10"  # docker: NGC image tag
    gpus: str = "all"  # docker: --gpus value
    served_dir: Path | None = None  # embedded: where the derived repository goes
    log_file: Path | None = None

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise UserInputError(f"unknown --engine {self.engine!r}; expected {ENGINES}")
        if self.engine == "remote" and not self.url:
            raise UserInputError("--engine remote needs --url HOST:PORT of a running Triton")
        if self.engine != "remote" and not Path(self.repo).is_dir():
            raise UserInputError(
                f"model repository {self.repo} does not exist; run 'servebench export' first"
            )
        if self.engine != "remote":
            check_ports_distinct(
                {
                    "http_port": self.http_port,
                    "grpc_port": self.grpc_port,
                    "metrics_port": self.metrics_port,
                }
            )


def open_server(config: ServeConfig):
    config.validate()
    if config.engine == "embedded":
        return embedded_server(config)
    if config.engine == "docker":
        return DockerTriton(config)
    return RemoteTriton(config.url, config.grpc_url or _default_grpc(config.url), config.timeout_s)


def served_dir_for(repo: Path) -> Path:
    """Build output location of the derived repository for ``repo`` (one per native repo)."""
    key = hashlib.sha256(str(Path(repo).resolve()).encode()).hexdigest()[:12]
    return Path(".cache") / "served" / f"{Path(repo).name}-{key}"


def embedded_server(config: ServeConfig) -> EmbeddedTriton:
    from serving.derive import derive_served_repo

    served = derive_served_repo(
        config.repo, config.served_dir or served_dir_for(config.repo), threads=config.threads
    )
    options = TritonOptions(
        host=config.host,
        http_port=config.http_port,
        grpc_port=config.grpc_port,
        metrics_port=config.metrics_port,
        model_control_mode="explicit" if config.allow_model_control else "none",
        startup_timeout_s=config.timeout_s,
        log_file=config.log_file,
        extra_flags={"load-model": "*"} if config.allow_model_control else {},
    )
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the server is reachable from other hosts", config.host)
    return EmbeddedTriton(served, options)


def _default_grpc(url: str) -> str:
    host = url.split("://")[-1].rsplit(":", 1)[0]
    return f"{host}:8001"


class RemoteTriton:
    """A Triton someone else runs; entering checks readiness and probes every model."""

    def __init__(
        self, url: str, grpc_url: str, timeout_s: float = 60.0, models=None, log_tail=lambda: ""
    ):
        self.log_tail = log_tail  # the server's log, shown when readiness fails
        self.http_url = url.split("://")[-1]
        self.grpc_url = grpc_url.split("://")[-1]
        self.metrics_url = f"http://{self.http_url.rsplit(':', 1)[0]}:8002/metrics"
        self.timeout_s = timeout_s
        self._models = models
        self.startup_seconds: float | None = None
        self.probe_seconds: dict[str, float] = {}

    def model_names(self) -> list[str]:
        if self._models is None:
            import tritonclient.http as httpclient

            with contextlib.closing(httpclient.InferenceServerClient(self.http_url)) as client:
                self._models = sorted(m["name"] for m in client.get_model_repository_index())
        return list(self._models)

    def __enter__(self) -> RemoteTriton:
        import tritonclient.http as httpclient

        from serving.readiness import probe_models, wait_until_ready

        began = time.monotonic()
        with contextlib.closing(
            httpclient.InferenceServerClient(self.http_url, network_timeout=60)
        ) as client:
            try:
                names = self.model_names()
            except Exception as exc:  # connection refused, DNS, HTTP errors: all mean "not there"
                raise ServingError(
                    f"no Triton answers at {self.http_url} ({exc}); check --url"
                ) from exc
            wait_until_ready(client, names, began + self.timeout_s, lambda: None, self.log_tail)
            self.probe_seconds = probe_models(client, names, self.log_tail)
        self.startup_seconds = time.monotonic() - began
        return self

    def __exit__(self, *exc_info) -> None:
        return None


class DockerTriton:
    """The NGC Triton container with the native backends, on the native repository (GPU path)."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.http_url = f"{config.host}:{config.http_port}"
        self.grpc_url = f"{config.host}:{config.grpc_port}"
        self.metrics_url = f"http://{config.host}:{config.metrics_port}/metrics"
        self._container: str | None = None
        self._remote: RemoteTriton | None = None

    def command(self) -> list[str]:
        """``docker run`` with each model directory mounted on its own, so a repository whose
        entries are links (``servebench run`` serves such a view) works inside the container."""
        from exporters.repository import list_models

        c = self.config
        mounts = []
        for model_dir in list_models(Path(c.repo)):
            mounts += ["-v", f"{model_dir.resolve()}:/models/{model_dir.name}:ro"]
        cmd = ["docker", "run", "--rm", "-d", "--shm-size=1g"]
        if c.gpus:
            cmd += ["--gpus", c.gpus]
        cmd += [
            "-p", f"{c.host}:{c.http_port}:8000",
            "-p", f"{c.host}:{c.grpc_port}:8001",
            "-p", f"{c.host}:{c.metrics_port}:8002",
            *mounts,
            NGC_IMAGE.format(version=c.triton_version),
            "tritonserver", "--model-repository=/models",
            f"--model-control-mode={'explicit' if c.allow_model_control else 'none'}",
        ]  # fmt: skip
        if c.allow_model_control:
            cmd.append("--load-model=*")
        return cmd

    def model_names(self) -> list[str]:
        from exporters.repository import list_models

        return [p.name for p in list_models(Path(self.config.repo))]

    def __enter__(self) -> DockerTriton:
        from serving.ports import check_ports_free

        _require_docker_engine()
        c = self.config
        ports = {"http_port": c.http_port, "grpc_port": c.grpc_port, "metrics_port": c.metrics_port}
        check_ports_free(c.host, ports)
        out = subprocess.run(self.command(), capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise ServingError(f"docker run failed: {out.stderr.strip()}")
        self._container = out.stdout.strip()
        self._remote = RemoteTriton(
            self.http_url, self.grpc_url, self.config.timeout_s, self.model_names(), self._log_tail
        )
        try:
            self._remote.__enter__()
        except BaseException:
            self.__exit__()
            raise
        self.startup_seconds = self._remote.startup_seconds
        self.probe_seconds = self._remote.probe_seconds
        return self

    def _log_tail(self, lines: int = 40) -> str:
        out = subprocess.run(
            ["docker", "logs", "--tail", str(lines), self._container or ""],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return (out.stdout + out.stderr).strip()

    def __exit__(self, *exc_info) -> None:
        if self._container:
            subprocess.run(["docker", "stop", self._container], capture_output=True, timeout=120)
            self._container = None


def _require_docker_engine() -> None:
    if shutil.which("docker") is None:
        raise UserInputError("--engine docker needs the docker CLI; install Docker or use embedded")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise UserInputError(
            "no Docker engine answers ('docker info' failed: "
            f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'no output'}); "
            "start the Docker daemon, or use --engine embedded (no Docker needed) or "
            "--engine remote --url HOST:PORT"
        )


def stub_memory_mb(server_pid: int | None) -> dict[str, float]:
    """Resident memory (MB) of each Python-backend stub of an embedded server, by model name."""
    import psutil

    if server_pid is None:
        return {}
    usage = {}
    for child in psutil.Process(server_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if cmd and cmd[0].endswith("triton_python_backend_stub"):
                name = Path(cmd[1]).parent.parent.name if len(cmd) > 1 else str(child.pid)
                usage[name] = round(child.memory_info().rss / 2**20, 1)
    return usage
