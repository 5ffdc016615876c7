"""Port helpers: find free ports (tests, CLI defaults) and refuse taken ones before a launch."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

from serving.errors import PortInUseError


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now on ``host`` (another process may still take it later)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports (all held open together while choosing, so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Raise ``PortInUseError`` naming each taken port and the option that sets it.

    ``ports`` maps an option name (e.g. ``"http_port"``) to its port.
    """
    check_ports_distinct(ports)
    taken = [(option, port) for option, port in ports.items() if not port_is_free(host, port)]
    if taken:
        details = "; ".join(f"{host}:{port} (the {_flag(option)} port)" for option, port in taken)
        raise PortInUseError(
            f"port already in use: {details}. Stop the process using it or choose another port"
        )


def check_ports_distinct(ports: Mapping[str, int]) -> None:
    """Raise ``PortInUseError`` when two endpoints are given the same port, naming their flags."""
    by_port: dict[int, list[str]] = {}
    for option, port in ports.items():
        by_port.setdefault(port, []).append(_flag(option))
    clashes = [
        f"{_join(flags)} are {'both' if len(flags) == 2 else 'all'} {port}"
        for port, flags in by_port.items()
        if len(flags) > 1
    ]
    if clashes:
        raise PortInUseError(f"{'; '.join(clashes)}; give each endpoint its own port")


def _flag(option: str) -> str:
    """``"http_port"`` -> ``"--http-port"``."""
    return "--" + option.replace("_", "-")


def _join(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" and {words[-1]}"
