"""The main job, ``servebench run``: train -> export (+parity) -> serve -> check-served ->
load test -> report, from one config.

Train and export are cached by content (``servebench.stages``); ``fresh`` redoes them. The load
generator runs as a child process (Locust patches gevent into whatever imports it) while the
server runs here. Ctrl-C at any stage stops the server, keeps finished results and still writes
the report of what finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exporters.errors import ExportError
from servebench.progress import StageProgress

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: str = "digits"
    archs: tuple[str, ...] = ("seedcnn",)
    frameworks: tuple[str, ...] = ("torch", "tf")
    formats: tuple[str, ...] = ("all",)
    protocols: tuple[str, ...] = ("http", "grpc")
    concurrency: tuple[int, ...] = (1, 4, 8)
    duration_s: float = 10.0
    warmup_s: float = 2.0
    p99_budget_ms: float | None = None
    engine: str = "embedded"
    url: str | None = None  # remote engine
    grpc_url: str | None = None
    epochs: int = 3
    image_size: int | None = None
    max_batch_size: int = 64
    threads: int = 1
    repo: Path = Path(".cache/run/model_repo")  # apart from the stage commands' runs/, model_repo/
    workdir: Path = Path(".cache/run/runs")
    out: Path | None = None
    fresh: bool = False


@dataclasses.dataclass
class RunOutcome:
    out: Path
    report: dict[str, Path] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    interrupted: str = ""
    failed: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)  # paths that failed a check

    @property
    def ok(self) -> bool:
        return not (self.interrupted or self.failed or self.problems)


def run(config: RunConfig) -> RunOutcome:
    from loadtests.report import ReportData, write_report

    if config.engine == "remote":  # before minutes of training: is anybody there?
        _check_remote(config)
    out = Path(config.out or Path("reports") / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    outcome = RunOutcome(out=out)
    data = ReportData(manifest={}, p99_budget_ms=config.p99_budget_ms)
    progress = StageProgress(["train", "export", "serve", "check-served", "load test", "report"])
    model_dirs: list[Path] = []
    server_facts: dict[str, str] = {}
    try:
        with progress.stage("train", outcome.timings):
            data.training = _train(config)
        with progress.stage("export", outcome.timings):
            data.exports, model_dirs = _export(config)
        _serve_check_load(config, model_dirs, data, progress, outcome, server_facts)
    except KeyboardInterrupt:
        outcome.interrupted = f"interrupted (Ctrl-C) during {progress.current}"
    except Exception as exc:  # the report of what finished is still written, then re-raised
        outcome.failed = f"{progress.current} failed: {exc}"
        raise
    finally:
        outcome.problems = _problems(data)
        data.notes += [n for n in (outcome.interrupted, outcome.failed) if n]
        data.manifest = _manifest(config, model_dirs, server_facts.get("triton"))
        with progress.stage("report", outcome.timings):
            outcome.report = write_report(data, out)
        data.manifest["stage_seconds"] = outcome.timings
        (out / "manifest.json").write_text(json.dumps(data.manifest, indent=2, default=str) + "\n")
    return outcome


def _train(config: RunConfig) -> list[dict]:
    from models.training import TrainConfig
    from servebench.stages import cached_train

    return [
        cached_train(
            TrainConfig(
                framework=framework,
                arch=arch,
                data=config.data,
                epochs=config.epochs,
                image_size=config.image_size,
                out=config.workdir / f"{arch}_{framework}",
            ),
            config.fresh,
        )
        for arch in config.archs
        for framework in config.frameworks
    ]


def _export(config: RunConfig) -> tuple[list[dict], list[Path]]:
    from exporters.export import ExportConfig
    from exporters.spec import FRAMEWORK_FORMATS
    from exporters.triton_config import ServingOptions
    from servebench.stages import cached_export

    results = []
    for arch in config.archs:
        for framework in config.frameworks:
            wanted = FRAMEWORK_FORMATS[framework]
            if config.formats != ("all",):
                wanted = tuple(f for f in config.formats if f in wanted)
            if not wanted:
                continue
            results += cached_export(
                ExportConfig(
                    checkpoint=config.workdir / f"{arch}_{framework}",
                    repo=config.repo,
                    formats=wanted,
                    serving=ServingOptions(max_batch_size=config.max_batch_size),
                ),
                config.fresh,
            )
    failed = [r.name for r in results if not r.ok]
    if failed:
        log.warning("not served (export failed): %s", ", ".join(failed))
    return [r.to_dict() for r in results], [r.model_dir for r in results if r.ok]


def _serve_check_load(config, model_dirs, data, progress, outcome, server_facts) -> None:
    from serving.check_served import check_served
    from serving.engines import ServeConfig, open_server
    from serving.triton import free_ports

    if not model_dirs:
        raise ExportError(
            "no model passed export, so nothing can be served; the export table in the report "
            "shows each path's parity figures (servebench export --keep-failed to inspect them)"
        )
    with tempfile.TemporaryDirectory(prefix="servebench-view-") as view:
        repo_view = _repo_view(model_dirs, Path(view))
        http, grpc, metrics = free_ports(3)
        serve_config = ServeConfig(
            repo=repo_view, engine=config.engine, http_port=http, grpc_port=grpc,
            metrics_port=metrics, threads=config.threads, url=config.url,
            grpc_url=config.grpc_url, served_dir=Path(".cache") / "served" / "run",
        )  # fmt: skip
        with progress.stage("serve", outcome.timings):
            server = open_server(serve_config).__enter__()
        try:
            from servebench.manifest import triton_version

            server_facts.update(triton=triton_version(server.http_url))
            names = [d.name for d in model_dirs]
            with progress.stage("check-served", outcome.timings):
                checks = check_served(
                    server.http_url, server.grpc_url, repo_view, names, protocols=config.protocols
                )
                data.served = [c.to_dict() for c in checks]
            if config.engine == "remote" and not all(c.passed for c in checks):
                log.warning(
                    "served answers differ: the remote Triton must serve the exports this run "
                    "wrote to %s (copy or mount them there), not other exports of the same names",
                    config.repo,
                )
            load_dir = outcome.out / "load"
            try:
                with progress.stage("load test", outcome.timings):
                    _load(config, server, names, load_dir, progress)
            finally:  # after Ctrl-C too: the report shows every scenario that finished
                results_file = load_dir / "results.json"
                data.results = json.loads(results_file.read_text()) if results_file.exists() else []
        finally:
            server.__exit__(None, None, None)


def _repo_view(model_dirs: list[Path], view: Path) -> Path:
    """Only this run's models: a folder of links to their model directories."""
    for model_dir in model_dirs:
        (view / model_dir.name).symlink_to(model_dir.resolve(), target_is_directory=True)
    return view


def _load(config: RunConfig, server, models: list[str], load_dir: Path, progress) -> None:
    """Run ``servebench loadtest`` as a child; it writes ``load_dir/results.json`` per scenario."""
    argv = [
        sys.executable, "-m", "servebench", "loadtest",
        "--url", f"http://{server.http_url}", "--grpc-url", server.grpc_url,
        "--models", ",".join(models), "--protocols", ",".join(config.protocols),
        "--concurrency", ",".join(map(str, config.concurrency)),
        "--duration", f"{config.duration_s}s", "--warmup", f"{config.warmup_s}s",
        "--out", str(load_dir),
    ]  # fmt: skip
    total = len(models) * len(config.protocols) * len(config.concurrency)
    per_scenario = config.duration_s + config.warmup_s + 1.0
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    try:
        done = 0
        for line in proc.stdout:
            if line.startswith("["):
                done += 1
                progress.note(f"{line.strip()}  (~{(total - done) * per_scenario:.0f} s left)")
            elif "error" in line.lower() or line.startswith(("stopped early", "failed:")):
                progress.note(line.rstrip())
    finally:  # on Ctrl-C too: the child got the same signal and writes what finished
        _wait_child(proc)


def _check_remote(config: RunConfig) -> None:
    """Raise ``UserInputError`` (exit 2) when the remote Triton does not answer."""
    from models.errors import UserInputError
    from serving.check_served import check_reachable

    if not config.url:
        raise UserInputError("--engine remote needs --url HOST:PORT of a running Triton")
    urls = {"http": config.url}
    if "grpc" in config.protocols and config.grpc_url:
        urls["grpc"] = config.grpc_url
    check_reachable(urls)


def _problems(data) -> list[str]:
    """What failed a check: exports that did not pass parity, served answers that differ."""
    failed_exports = [
        f"{e['name']}: export {e['status']}" for e in data.exports if e.get("status") != "passed"
    ]
    mismatches = [
        f"{s['model']} over {s['protocol']}: served check {s['status']}"
        for s in data.served
        if not s.get("passed")
    ]
    return failed_exports + mismatches


def _wait_child(proc: subprocess.Popen) -> None:
    """The child got the same Ctrl-C; give it time to write its results, then make sure."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _manifest(config: RunConfig, model_dirs: list[Path], triton: str | None) -> dict:
    from servebench.manifest import build_manifest

    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()
    }
    settings["seed"] = 0
    return build_manifest(settings, model_dirs, config.engine, triton)
