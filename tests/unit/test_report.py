import json

from loadtests.report import ReportData, write_report
from loadtests.verdict import decide


def _record(model, protocol, c, p50, p99, thr, **extra):
    return {
        "model": model, "protocol": protocol, "mode": "closed", "concurrency": c, "rate": None,
        "p50_ms": p50, "p90_ms": p50, "p95_ms": p99, "p99_ms": p99, "max_ms": p99,
        "throughput_infer_per_s": thr, "requests": 100, "errors": 0,
        "server_queue_us": 50.0, "server_compute_infer_us": 900.0, **extra,
    }  # fmt: skip


RECORDS = [
    _record("seedcnn_torch_onnx", "http", 1, 2.0, 3.0, 480.0),
    _record("seedcnn_tf_savedmodel", "http", 1, 3.0, 5.0, 320.0),
    _record("seedcnn_torch_onnx", "grpc", 4, 5.0, 40.0, 900.0),
    _record("seedcnn_tf_savedmodel", "grpc", 4, 6.0, 9.0, 700.0, client_cpu_percent=95.0),
    _record("seedcnn_tf_savedmodel", "http", 4, 7.0, 9.5, 650.0),
]


def test_verdict_names_winner_and_margin_when_records_differ():
    verdict = decide(RECORDS, p99_budget_ms=10.0, cpu_only=True)
    assert "seedcnn_torch_onnx over http, p50 2.00 ms" in verdict.lowest_latency
    assert "1.50x" in verdict.lowest_latency
    # the faster gRPC scenario breaks the 10 ms p99 budget, so the budget winner is savedmodel
    assert "seedcnn_tf_savedmodel over grpc at concurrency 4, 700.0" in verdict.highest_throughput
    assert "best path of each framework" in verdict.framework_claim
    assert "PyTorch ahead by 1.50x" in verdict.framework_claim
    assert any("client-bound" in c for c in verdict.caveats)
    assert any("CPU-only" in c for c in verdict.caveats)


def test_write_report_embeds_plots_when_results_present(tmp_path):
    data = ReportData(manifest={"engine": "embedded", "gpu": None}, results=RECORDS,
                      p99_budget_ms=10.0)  # fmt: skip
    paths = write_report(data, tmp_path)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "Verdict" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text()) == RECORDS
    assert paths["csv"].read_text().splitlines()[0].startswith("model,protocol,mode")


def test_write_report_still_writes_when_nothing_finished(tmp_path):
    paths = write_report(ReportData(manifest={}, notes=["interrupted"]), tmp_path)
    assert "No load-test scenario finished." in paths["md"].read_text()
    assert "interrupted" in paths["html"].read_text()


def test_verdict_leaves_out_and_names_a_scenario_when_every_request_failed():
    nan = float("nan")
    failed = _record("seedcnn_tf_onnx", "grpc", 1, nan, nan, 0.0, requests=0, errors=40,
                     errors_by_kind={"grpc_UNAVAILABLE": 40}, client_cpu_percent=98.0)  # fmt: skip
    verdict = decide([*RECORDS, failed], p99_budget_ms=None, cpu_only=False)
    assert "seedcnn_tf_onnx" not in verdict.lowest_latency + verdict.highest_throughput
    notes = [c for c in verdict.caveats if c.startswith("seedcnn_tf_onnx over grpc")]
    assert notes == [
        "seedcnn_tf_onnx over grpc (closed, c=1, rate=None): every request failed "
        "(grpc_UNAVAILABLE x40); no figures from it."
    ]


def test_verdict_never_names_a_path_whose_served_answers_differ_when_it_is_fastest():
    untrusted = {("seedcnn_torch_onnx", "http"): "served answers differ from the source model"}
    verdict = decide(RECORDS, p99_budget_ms=None, cpu_only=False, untrusted=untrusted)
    assert "seedcnn_tf_savedmodel over http, p50 3.00 ms" in verdict.lowest_latency
    assert "seedcnn_torch_onnx over http" not in verdict.lowest_latency
    assert any(
        c.startswith("seedcnn_torch_onnx over http left out of the verdict: served answers differ")
        for c in verdict.caveats
    )


def test_write_report_leaves_a_mismatched_served_path_out_of_the_verdict(tmp_path):
    served = [
        {"model": "seedcnn_torch_onnx", "protocol": "http", "passed": False, "error": "",
         "max_abs_diff": 0.5, "atol": 1e-4, "status": "failed"},
        {"model": "seedcnn_tf_savedmodel", "protocol": "http", "passed": True, "error": "",
         "max_abs_diff": 1e-6, "atol": 1e-4, "status": "passed"},
    ]  # fmt: skip
    data = ReportData(manifest={"gpu": None}, results=RECORDS, served=served)
    md = write_report(data, tmp_path)["md"].read_text()
    assert "Lowest latency at concurrency 1: seedcnn_tf_savedmodel over http" in md
    assert "max abs diff 0.5 > atol 0.0001" in md
