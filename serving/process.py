"""Child-process hygiene: die with the parent, and kill a whole process group."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal

LOGGER = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent_hook(sig: int = signal.SIGTERM):
    """A ``preexec_fn`` that makes the child receive ``sig`` when the parent dies.

    libc is resolved here, in the parent: ``find_library`` may spawn processes, which must not
    happen between fork and exec. Note: the signal fires when the *thread* that forked exits.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return hook


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in group ``pgid`` (no error when the group is gone)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        LOGGER.debug("killed process group %d", pgid)
    except ProcessLookupError:
        pass
