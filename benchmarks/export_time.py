"""Export time and artifact size per path for seedcnn on digits (target: all four < 60 s total).

Trains seedcnn for one epoch in each framework (training time is not counted), then exports every
path with parity and prints seconds and MB per path, measured in this run.

    .venv/bin/python benchmarks/export_time.py [--image-size 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--budget-s", type=float, default=60.0)
    args = parser.parse_args()

    from exporters.export import ExportConfig, export_checkpoint
    from models.training import TrainConfig, train

    rows, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for framework in ("torch", "tf"):
            run_dir = Path(tmp) / framework
            train(
                TrainConfig(framework, "seedcnn", epochs=1, image_size=args.image_size, out=run_dir)
            )
            start = time.perf_counter()
            results = export_checkpoint(ExportConfig(checkpoint=run_dir, repo=Path(tmp) / "repo"))
            wall = time.perf_counter() - start
            for r in results:
                rows.append((r.name, r.export_seconds, r.artifact_bytes / 1e6, r.status))
            total += wall
            print(f"{framework}: export + parity wall {wall:.1f} s", flush=True)
    print(f"\n{'path':28s} {'export s':>9s} {'MB':>7s}  status")
    for name, seconds, mb, status in rows:
        print(f"{name:28s} {seconds:9.2f} {mb:7.1f}  {status}")
    export_only = sum(r[1] for r in rows)
    print(
        f"\nexport seconds (4 paths): {export_only:.1f} s; with parity checks: {total:.1f} s; "
        f"budget {args.budget_s:.0f} s -> {'OK' if total < args.budget_s else 'OVER'}"
    )
    return 0 if total < args.budget_s and all(r[3] == "passed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
