"""Server ports a user can get wrong: two endpoints on one port, a port already taken."""

from __future__ import annotations

import socket

import pytest

from serving.engines import ServeConfig
from serving.errors import PortInUseError
from serving.ports import check_ports_distinct, check_ports_free, free_ports
from tests.helpers import run_cli


def test_check_ports_distinct_names_both_flags_when_http_and_grpc_share_a_port():
    ports = {"http_port": 18020, "grpc_port": 18020, "metrics_port": 18022}
    with pytest.raises(PortInUseError) as caught:
        check_ports_distinct(ports)
    assert str(caught.value) == (
        "--http-port and --grpc-port are both 18020; give each endpoint its own port"
    )


def test_check_ports_distinct_names_all_three_flags_when_every_port_is_the_same():
    with pytest.raises(
        PortInUseError, match=r"^--http-port, --grpc-port and --metrics-port are all"
    ):
        check_ports_distinct({"http_port": 5, "grpc_port": 5, "metrics_port": 5})


def test_check_ports_free_reports_the_clash_before_probing_when_ports_repeat():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match="are both"):
            check_ports_free("127.0.0.1", {"http_port": port, "grpc_port": port})
        with pytest.raises(PortInUseError, match=rf"127.0.0.1:{port} \(the --grpc-port port\)"):
            check_ports_free("127.0.0.1", {"http_port": port + 1, "grpc_port": port})


def test_serve_config_validate_refuses_when_two_endpoints_share_a_port(tmp_path):
    config = ServeConfig(repo=tmp_path, http_port=18030, grpc_port=18031, metrics_port=18030)
    with pytest.raises(PortInUseError, match="--http-port and --metrics-port are both 18030"):
        config.validate()
    ServeConfig(repo=tmp_path, engine="remote", url="h:1", http_port=1, grpc_port=1).validate()


def test_serve_cli_exits_2_without_a_dict_when_http_and_grpc_ports_are_equal(tmp_path):
    (port,) = free_ports(1)
    result = run_cli(
        "serve", "--repo", str(tmp_path), "--http-port", str(port), "--grpc-port", str(port),
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: --http-port and --grpc-port are both {port}; give each endpoint its own port"
    )
    assert list(tmp_path.iterdir()) == []  # refused before deriving anything
