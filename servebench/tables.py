"""Terminal tables for the CLI (rich)."""

from __future__ import annotations


def _console():
    from rich.console import Console

    return Console(width=140)


def print_export_table(results) -> None:
    from rich.table import Table

    table = Table(title="export + parity")
    for col in ("model", "status", "export s", "size MB", "max abs diff", "top-1 agree", "batches"):
        table.add_column(col)
    for r in results:
        p = r.parity
        table.add_row(
            r.name,
            r.status,
            f"{r.export_seconds:.2f}",
            f"{r.artifact_bytes / 1e6:.1f}",
            f"{p.max_abs_diff:.2e}" if p else "-",
            f"{p.top1_agreement:.4f}" if p else "-",
            ",".join(map(str, p.batch_sizes)) if p else "-",
        )
    console = _console()
    console.print(table)
    for r in results:
        if r.error:
            console.print(f"[red]{r.name}[/red]: {r.error}", markup=True, highlight=False)
