"""The ``servebench`` command line: parse arguments into a config, call one library function.

Only this module calls ``sys.exit``. User errors (``UserInputError``) exit with code 2 and a
message that says what to do; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

from models.errors import ServebenchError, UserInputError

log = logging.getLogger("servebench")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a registered CNN in PyTorch or Keras")
    p.add_argument("--framework", choices=["torch", "tf"], required=True)
    p.add_argument("--arch", default="seedcnn", help="seedcnn | resnet18 (default seedcnn)")
    p.add_argument("--data", default="digits", help="'digits' (embedded) or an ImageFolder root")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=None, help="default 32 digits, 224 folders")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/ARCH_FW)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=None, help="cap the training samples")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    p.set_defaults(handler=_cmd_train)


def _cmd_train(args) -> int:
    from models.training import TrainConfig, train

    out = args.out or Path("runs") / f"{args.arch}_{args.framework}"
    result = train(
        TrainConfig(
            framework=args.framework,
            arch=args.arch,
            data=args.data,
            epochs=args.epochs,
            image_size=args.image_size,
            out=out,
            seed=args.seed,
            force=args.force,
            max_train=args.max_train,
        )
    )
    print(
        f"trained {result.arch} ({result.framework}): test_accuracy={result.test_accuracy:.4f} "
        f"train_seconds={result.train_seconds:.1f} num_train={result.num_train} "
        f"num_test={result.num_test} -> {result.run_dir}"
    )
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a trained model along every path, prove parity")
    p.add_argument("--checkpoint", type=Path, required=True, help="run directory from 'train'")
    p.add_argument("--repo", type=Path, default=Path("model_repo"))
    p.add_argument("--formats", default="all", help="all | torchscript,onnx,savedmodel")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--no-dynamic-batching", action="store_true")
    p.add_argument("--trt", choices=["fp16", "fp32"], default=None, help="TensorRT for ONNX/GPU")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--triton-version", default="24.10")
    p.add_argument("--atol", type=float, default=None, help="parity tolerance (default 1e-4)")
    p.add_argument("--keep-failed", action="store_true", help="write failing artifacts, flagged")
    p.add_argument("--force", action="store_true", help="replace existing model directories")
    p.set_defaults(handler=_cmd_export)


def _cmd_export(args) -> int:
    from exporters.export import ExportConfig, export_checkpoint
    from exporters.triton_config import ServingOptions
    from servebench.tables import print_export_table

    results = export_checkpoint(
        ExportConfig(
            checkpoint=args.checkpoint,
            repo=args.repo,
            formats=_csv(args.formats),
            serving=ServingOptions(
                max_batch_size=args.max_batch_size,
                device=args.device,
                instances=args.instances,
                dynamic_batching=not args.no_dynamic_batching,
                trt=args.trt,
            ),
            opset=args.opset,
            triton_version=args.triton_version,
            atol=args.atol,
            force=args.force,
            keep_failed=args.keep_failed,
        )
    )
    print_export_table(results)
    return 0 if all(r.ok for r in results) else 1


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve a model repository on Triton until Ctrl-C")
    p.add_argument("--repo", type=Path, default=Path("model_repo"))
    p.add_argument("--engine", choices=["embedded", "docker", "remote"], default="embedded")
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes it)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to become ready")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per model instance")
    p.add_argument("--allow-model-control", action="store_true", help="allow remote load/unload")
    p.add_argument("--url", default=None, help="remote: HTTP host:port of a running Triton")
    p.add_argument("--grpc-url", default=None, help="remote: gRPC host:port")
    p.add_argument("--triton-version", default="24.10", help="docker: NGC image yy.mm")
    p.add_argument("--gpus", default="all", help="docker: value of --gpus ('' for none)")
    p.add_argument("--dry-run", action="store_true", help="docker: print the command only")
    p.add_argument("--log-file", type=Path, default=None)
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args) -> int:
    import shlex

    from serving.engines import DockerTriton, ServeConfig
    from serving.foreground import serve_forever

    config = ServeConfig(
        repo=args.repo,
        engine=args.engine,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        timeout_s=args.timeout,
        threads=args.threads,
        allow_model_control=args.allow_model_control,
        url=args.url,
        grpc_url=args.grpc_url,
        triton_version=args.triton_version,
        gpus=args.gpus,
        log_file=args.log_file,
    )
    if args.dry_run:
        config.validate()
        print(shlex.join(DockerTriton(config).command()))
        return 0
    try:
        serve_forever(config, lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM is how a foreground server is meant to end
        print("stopped", flush=True)
    return 0


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="the main job: train, export, serve, load-test, report")
    p.add_argument("--data", default="digits", help="'digits' or an ImageFolder root")
    p.add_argument("--archs", default="seedcnn", help="comma-separated: seedcnn,resnet18")
    p.add_argument("--frameworks", default="torch,tf", help="comma-separated: torch,tf")
    p.add_argument("--formats", default="all", help="all | torchscript,onnx,savedmodel")
    p.add_argument("--protocols", default="http,grpc")
    p.add_argument("--concurrency", default="1,4,8", help="closed-loop levels")
    p.add_argument("--duration", default="10s", help="measurement window per scenario")
    p.add_argument("--warmup", default="2s")
    p.add_argument("--p99-budget-ms", type=float, default=None)
    p.add_argument("--engine", choices=["embedded", "docker", "remote"], default="embedded")
    p.add_argument("--url", default=None, help="remote engine: HTTP host:port")
    p.add_argument("--grpc-url", default=None, help="remote engine: gRPC host:port")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per model instance")
    p.add_argument("--repo", type=Path, default=Path(".cache/run/model_repo"), help="exports")
    p.add_argument("--workdir", type=Path, default=Path(".cache/run/runs"), help="training runs")
    p.add_argument("--out", type=Path, default=None, help="report dir (default reports/<time>)")
    p.add_argument("--fresh", action="store_true", help="retrain and re-export everything")
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args) -> int:
    from servebench.cli_loadtest import parse_concurrency, parse_duration
    from servebench.pipeline import RunConfig, run

    outcome = run(
        RunConfig(
            data=args.data,
            archs=_csv(args.archs),
            frameworks=_csv(args.frameworks),
            formats=_csv(args.formats),
            protocols=_csv(args.protocols),
            concurrency=parse_concurrency(args.concurrency),
            duration_s=parse_duration(args.duration),
            warmup_s=parse_duration(args.warmup),
            p99_budget_ms=args.p99_budget_ms,
            engine=args.engine,
            url=args.url,
            grpc_url=args.grpc_url,
            epochs=args.epochs,
            image_size=args.image_size,
            max_batch_size=args.max_batch_size,
            threads=args.threads,
            repo=args.repo,
            workdir=args.workdir,
            out=args.out,
            fresh=args.fresh,
        )
    )
    print(f"report: {outcome.report.get('html')} (and report.md, results.csv/json, manifest.json)")
    print("stage seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in outcome.timings.items()))
    verdict = outcome.report.get("md")
    if verdict:
        text = verdict.read_text().split("## Run")[0].replace("# servebench report", "").strip()
        print(text)
    if outcome.interrupted:
        print(outcome.interrupted)
        return 130
    for problem in outcome.problems:
        print(f"failed: {problem}")
    return 1 if outcome.problems else 0


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("servebench")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from servebench.cli_clients import add_client_commands
    from servebench.cli_loadtest import add_loadtest_command

    parser = argparse.ArgumentParser(
        prog="servebench",
        description="Train, export, serve on Triton and load-test a CNN along every export path.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True,
        help="train | export | serve | infer | check-served | loadtest | run "
        "('servebench COMMAND --help' for its options)",
    )  # fmt: skip
    _add_train(sub)
    _add_export(sub)
    _add_serve(sub)
    add_client_commands(sub)
    add_loadtest_command(sub)
    _add_run(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    for noisy in ("onnx_ir", "tf2onnx", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # torch's exporter warns that torchvision's ops are absent (none of ours needs them); the
    # exporter checks the artifact's opset and IR itself.
    # torch sets its loggers' levels from TORCH_LOGS when imported ("-onnx": errors only).
    os.environ.setdefault("TORCH_LOGS", "-onnx")
    logging.getLogger("onnxscript").setLevel(logging.ERROR)
    # raised inside torch's own exporter, nothing a servebench user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def main(argv: list[str] | None = None) -> None:
    # a process started in the background inherits SIGINT ignored; Ctrl-C / kill -INT must work
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # bare 'servebench': show the commands
        parser.print_help(sys.stderr)
        sys.exit(2)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        code = args.handler(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except ServebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
