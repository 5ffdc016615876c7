"""The client commands of the CLI: ``infer`` (classify images or held-out samples on a running
Triton) and ``check-served`` (served outputs against the source models).

``add_client_commands(subparsers)`` registers both; each handler takes the parsed ``args``,
calls one library function of ``serving`` and returns the exit code.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import UserInputError


def add_client_commands(sub) -> None:
    _add_infer(sub)
    _add_check_served(sub)


def _add_infer(sub) -> None:
    p = sub.add_parser("infer", help="classify images (or held-out samples) on a running Triton")
    p.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="image files")
    p.add_argument("--url", default="127.0.0.1:8000", help="server address (default :8000)")
    p.add_argument("--protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--model", required=True, help="served model name, e.g. seedcnn_torch_onnx")
    p.add_argument(
        "--repo", type=Path, default=None, help="model repository (default: the recipe and "
        "labels in the served config; the repository also knows the held-out samples)"
    )  # fmt: skip
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--samples", type=int, default=None, help="send N held-out samples instead")
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="run directory for --samples (default: "
        "the one recorded in the repository)"
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.set_defaults(handler=cmd_infer)


def cmd_infer(args) -> int:
    from serving.clients import (
        SAMPLES_NEED_CHECKPOINT,
        TritonClient,
        check_images_exist,
        predict_images,
        predict_samples,
    )

    if bool(args.images) == (args.samples is not None):
        raise UserInputError("give IMAGE files or --samples N (one of the two)")
    if args.samples is not None and args.repo is None and args.checkpoint is None:
        raise UserInputError(SAMPLES_NEED_CHECKPOINT)
    if args.top_k < 1:
        raise UserInputError(f"--top-k must be at least 1, got {args.top_k}")
    check_images_exist(args.images)
    with TritonClient(args.url, args.protocol, timeout_s=args.timeout) as client:
        served = client.model_spec(args.model, repo=args.repo)
        if args.samples is not None:
            predictions = predict_samples(client, served, args.samples, args.checkpoint, args.top_k)
        else:
            predictions = predict_images(client, served, args.images, args.top_k)
    _print_predictions(args.model, predictions)
    return 0


def _add_check_served(sub) -> None:
    p = sub.add_parser(
        "check-served", help="served outputs (HTTP and gRPC) against the source models"
    )
    p.add_argument("--url", default="127.0.0.1:8000", help="HTTP address (default :8000)")
    p.add_argument("--grpc-url", default="127.0.0.1:8001", help="gRPC address (default :8001)")
    p.add_argument("--repo", type=Path, default=Path("model_repo"))
    p.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    p.add_argument("--protocols", default="http,grpc", help="comma-separated: http,grpc")
    p.add_argument("--atol", type=float, default=None, help="default: each model's export atol")
    p.add_argument(
        "--checkpoint", action="append", default=[], metavar="MODEL=RUN_DIR",
        help="training run of a model whose servebench.json records none (repeatable)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.set_defaults(handler=cmd_check_served)


def cmd_check_served(args) -> int:
    from serving.check_served import check_served

    results = check_served(
        args.url,
        args.grpc_url,
        args.repo,
        models=_csv(args.models),
        atol=args.atol,
        protocols=_csv(args.protocols),
        checkpoints=_pairs(args.checkpoint),
        timeout_s=args.timeout,
    )
    _print_checks(results)
    mismatched = [r for r in results if not r.error and not r.passed]
    if mismatched:
        print(
            "hint: outputs differ beyond the export tolerance. If a model was re-exported or "
            "retrained after the server started, the server still runs the old artifact: "
            "restart 'servebench serve'."
        )
    return 0 if results and all(r.passed for r in results) else 1


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _pairs(values: list[str]) -> dict[str, Path]:
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UserInputError(f"--checkpoint expects MODEL=RUN_DIR, got {value!r}")
        pairs[name] = Path(path)
    return pairs


def _console():
    from rich.console import Console

    return Console(width=140)


def _print_predictions(model: str, predictions) -> None:
    from rich.table import Table
    from rich.text import Text

    with_truth = any(p.true_label is not None for p in predictions)
    table = Table(title=f"{model}: top-{len(predictions[0].top)}")
    for col in ("input", *(["true", "ok"] if with_truth else []), "predictions (probability)"):
        table.add_column(col)
    for p in predictions:
        top = ", ".join(f"{label} ({prob:.3f})" for label, prob in p.top)
        truth = [p.true_label, "yes" if p.label == p.true_label else "no"] if with_truth else []
        table.add_row(*(Text(str(cell)) for cell in (p.source, *truth, top)))
    console = _console()
    console.print(table)
    if with_truth:
        correct = sum(p.label == p.true_label for p in predictions)
        console.print(f"accuracy: {correct}/{len(predictions)}", highlight=False)


def _print_checks(results) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="served vs source model")
    for col in ("model", "protocol", "samples", "max abs diff", "atol", "top-1 agree", "status"):
        table.add_column(col)
    for r in results:
        colour = "green" if r.passed else "red"
        table.add_row(
            r.model,
            r.protocol,
            str(r.samples),
            f"{r.max_abs_diff:.2e}",
            f"{r.atol:g}",
            f"{r.top1_agreement:.4f}",
            f"[{colour}]{r.status}[/{colour}]",
        )
    console = _console()
    console.print(table)
    for r in results:
        if r.error:
            console.print(
                f"[red]{r.model} ({r.protocol})[/red]: {escape(r.error)}", highlight=False
            )
