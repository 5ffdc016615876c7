"""Write one model directory of a Triton repository, atomically.

Files land in a temporary sibling directory (artifact first, ``config.pbtxt`` last) which is then
renamed into place, so a crash never leaves a half-written model directory. An existing model
directory is kept unless ``force``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from exporters.errors import ExportInputError

SIDECAR = "servebench.json"
LABELS = "labels.txt"
CONFIG = "config.pbtxt"


def check_repo(repo: Path) -> None:
    """Refuse a repository path that is (or lies under) a file, before anything is written."""
    repo = Path(repo)
    existing = next((p for p in (repo, *repo.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return
    if existing == repo:
        raise ExportInputError(
            f"--repo {repo} is a file; expected a model repository folder (it is created if "
            "missing)"
        )
    raise ExportInputError(
        f"--repo {repo} lies under {existing}, which is a file; expected a model repository "
        "folder (it is created if missing): pass a path whose parents are folders"
    )


def check_target(repo: Path, name: str, force: bool) -> Path:
    check_repo(repo)
    target = repo / name
    if target.exists() and not force:
        raise ExportInputError(f"{target} exists; pass --force to replace it")
    return target


def staging_dir(repo: Path, name: str) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))


def finish_model_dir(
    staging: Path, target: Path, pbtxt: str, classes, sidecar: dict, force: bool
) -> None:
    """Labels and sidecar, then config.pbtxt last, then rename ``staging`` to ``target``."""
    (staging / LABELS).write_text("".join(f"{c}\n" for c in classes))
    (staging / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    (staging / CONFIG).write_text(pbtxt)
    if target.exists():
        if not force:
            raise ExportInputError(f"{target} exists; pass --force to replace it")
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def read_sidecar(model_dir: Path) -> dict:
    return json.loads((model_dir / SIDECAR).read_text())


def list_models(repo: Path) -> list[Path]:
    """Model directories (those with a config.pbtxt) of a repository, sorted by name."""
    if not repo.is_dir():
        raise ExportInputError(f"model repository {repo} does not exist; run 'servebench export'")
    return sorted(p for p in repo.iterdir() if p.is_dir() and (p / CONFIG).is_file())
