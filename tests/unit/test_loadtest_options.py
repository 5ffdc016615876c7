"""Load-test options as a user types them: levels, endpoints, and the exit codes for mistakes."""

import pytest

from loadtests.errors import LoadTestInputError
from loadtests.target import grpc_url_for
from models.errors import UserInputError
from servebench.cli_loadtest import parse_concurrency, parse_rates
from tests.helpers import run_cli


def test_parse_concurrency_reads_levels_when_given_a_comma_list():
    assert parse_concurrency("1, 4,8") == (1, 4, 8)


@pytest.mark.parametrize("text", ["abc", "0,1", "-2", "1.5", "", ","])
def test_parse_concurrency_names_the_flag_and_an_example_when_text_is_bad(text):
    with pytest.raises(UserInputError, match=r"--concurrency takes .* e\.g\. 1,4,8; got"):
        parse_concurrency(text)


def test_parse_rates_reads_floats_when_given_a_comma_list():
    assert parse_rates("50,12.5") == (50.0, 12.5)


@pytest.mark.parametrize("text", ["fast", "0", "-5", "inf", "nan", ""])
def test_parse_rates_names_the_flag_and_an_example_when_text_is_bad(text):
    with pytest.raises(UserInputError, match=r"--rate takes .* e\.g\. 50,100; got"):
        parse_rates(text)


@pytest.mark.parametrize(
    "args",
    [
        ("loadtest", "--concurrency", "abc"),
        ("loadtest", "--rate", "fast"),
        ("loadtest", "--batch-size", "0"),
        ("run", "--concurrency", "abc"),
    ],
)
def test_cli_exits_2_without_traceback_when_a_load_option_is_malformed(args):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "error: --" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "grpc_url", "expected"),
    [
        ("http://127.0.0.1:8000", "", "127.0.0.1:8001"),
        ("http://triton.local", "", "triton.local:8001"),
        ("http://127.0.0.1:18000", "127.0.0.1:18001", "127.0.0.1:18001"),
        ("http://127.0.0.1:18000", "grpc://10.0.0.2:9001", "10.0.0.2:9001"),
    ],
)
def test_grpc_url_for_uses_the_flag_or_the_default_port_when_unambiguous(host, grpc_url, expected):
    assert grpc_url_for(host, grpc_url, "grpc") == expected


def test_grpc_url_for_refuses_to_guess_when_http_port_is_not_the_default():
    with pytest.raises(LoadTestInputError, match="--protocol grpc needs --grpc-url"):
        grpc_url_for("http://127.0.0.1:18000", "", "grpc")
    assert grpc_url_for("http://127.0.0.1:18000", "", "http") == ""  # not needed for HTTP


def _record(**overrides) -> dict:
    record = {
        "model": "m", "protocol": "grpc", "requests": 500, "errors": 0,
        "errors_by_kind": {}, "client_inference_count": 500, "server_inference_count": 500,
        "client_cpu_percent": 40.0, "client_saturated": False,
    }  # fmt: skip
    return record | overrides


def test_cross_checks_flag_all_failed_not_client_bound_when_no_request_succeeded():
    from loadtests.record import cross_checks

    failing = _record(requests=0, errors=23693, client_inference_count=0,
                      server_inference_count=0, client_cpu_percent=98.0)  # fmt: skip
    assert cross_checks(failing) == {
        "count_mismatch": False,
        "client_bound": False,
        "all_failed": True,
    }
    busy = _record(client_cpu_percent=95.0)
    assert cross_checks(busy)["client_bound"] and not cross_checks(busy)["all_failed"]
    apart = _record(server_inference_count=520)
    assert cross_checks(apart)["count_mismatch"]


def test_loadtest_conclusion_exits_1_and_names_the_kinds_when_a_scenario_failed(capsys, tmp_path):
    from loadtests.record import LoadTestRun
    from servebench.cli_loadtest import _conclude

    failed = _record(requests=0, errors=7, errors_by_kind={"grpc_UNAVAILABLE": 7}, all_failed=True)
    code = _conclude(LoadTestRun(records=[_record(protocol="http"), failed]), tmp_path)
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: m grpc: all 7 requests failed (grpc_UNAVAILABLE x7)" in out


def test_loadtest_conclusion_exits_130_and_says_nothing_was_written_when_interrupted_early(
    capsys, tmp_path
):
    from loadtests.record import LoadTestRun
    from servebench.cli_loadtest import _conclude

    run = LoadTestRun(stopped_early="interrupted (Ctrl-C) during scenario 1/2", interrupted=True)
    assert _conclude(run, tmp_path) == 130
    out = capsys.readouterr().out
    assert "no scenario finished; nothing was written" in out and "results:" not in out
    assert _conclude(LoadTestRun(records=[_record()]), tmp_path) == 0


def test_counts_apart_allows_requests_the_client_stopped_waiting_for_when_window_ends():
    from loadtests.record import counts_apart

    # open loop at 50/s for 3 s: 3 sends unfinished at the stop, which the server still ran
    short = _record(mode="open", client_inference_count=239, server_inference_count=242,
                    errors=3, errors_by_kind={"unfinished": 3})  # fmt: skip
    assert not counts_apart(short)
    assert counts_apart(short | {"errors_by_kind": {}})  # nobody left waiting: 3 of 239 is > 1%
    closed = _record(mode="closed", concurrency=8, client_inference_count=300,
                     server_inference_count=308)  # fmt: skip
    assert not counts_apart(closed) and counts_apart(closed | {"server_inference_count": 312})
    assert counts_apart(closed | {"server_inference_count": 290})  # the server never runs fewer
