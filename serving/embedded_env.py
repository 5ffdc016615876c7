"""Where the embedded ``tritonserver`` lives and what it needs to run (facts in DESIGN.md).

The ``nvidia-pytriton`` wheel ships the binary, ``libtriton_python.so`` and one Python-backend
stub per Python minor version; the backend directory is assembled (symlinks) for the running
interpreter, and the environment makes the stub load *this* interpreter's libpython and packages.
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ServingError

LOGGER = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT_ENV = "SERVEBENCH_REPO_ROOT"


@dataclass(frozen=True)
class TritonDistribution:
    """Files of the ``nvidia-pytriton`` wheel that the embedded server uses."""

    binary: Path
    libs: Path  # nvidia_pytriton.libs (auditwheel-vendored shared libraries)
    python_backend: Path  # libtriton_python.so + triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for the running Python minor version

    @classmethod
    def locate(cls) -> TritonDistribution:
        try:
            import pytriton
        except ImportError as error:
            raise ServingError(
                "the embedded server needs the nvidia-pytriton wheel (Linux); run `make setup`"
            ) from error
        root = Path(pytriton.__file__).resolve().parent
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        dist = cls(
            binary=root / "tritonserver" / "bin" / "tritonserver",
            libs=root.parent / "nvidia_pytriton.libs",
            python_backend=root / "tritonserver" / "backends" / "python",
            stub=root
            / "tritonserver"
            / "python_backend_stubs"
            / version
            / "triton_python_backend_stub",
        )
        missing = [
            str(p)
            for p in (dist.binary, dist.libs, dist.python_backend, dist.stub)
            if not p.exists()
        ]
        if missing:
            raise ServingError(
                f"nvidia-pytriton install is incomplete for Python {version}; missing: {', '.join(missing)}"
            )
        return dist


def build_backend_dir(dist: TritonDistribution, target: Path) -> Path:
    """Assemble ``target/python/`` (backend lib, utils, matching stub) and return ``target``."""
    python_dir = target / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": dist.python_backend / "libtriton_python.so",
        "triton_python_backend_utils.py": dist.python_backend / "triton_python_backend_utils.py",
        "triton_python_backend_stub": dist.stub,
    }
    for name, source in links.items():
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return target


def server_env(dist: TritonDistribution, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: LIBDIR first on LD_LIBRARY_PATH, this env's bin first on PATH.

    PYTHONPATH (site-packages + repo root) is set for tools and for Triton builds that honour it;
    the 2.51 stub does not, so PATH and ``SERVEBENCH_REPO_ROOT`` are what actually take effect.
    """
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or str(Path(sys.base_prefix) / "lib")
    env["LD_LIBRARY_PATH"] = _join(libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", ""))
    site_packages = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env["PYTHONPATH"] = _join(
        *dict.fromkeys(site_packages), str(REPO_ROOT), env.get("PYTHONPATH", "")
    )
    # the stub's embedded interpreter ignores PYTHONPATH and finds its prefix by looking up
    # `python3` on PATH: put this interpreter's bin first so it lands in the same environment
    env["PATH"] = _join(str(Path(sys.executable).parent), env.get("PATH", ""))
    env[REPO_ROOT_ENV] = str(REPO_ROOT)  # the shim adds it to sys.path
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    LOGGER.debug(
        "tritonserver env LD_LIBRARY_PATH=%s PYTHONPATH=%s",
        env["LD_LIBRARY_PATH"],
        env["PYTHONPATH"],
    )
    return env


def _join(*parts: str) -> str:
    return os.pathsep.join(p for p in parts if p)
