"""Every export path on tiny trained models, in the real runtimes (no server needed)."""

import json
import shutil

import numpy as np
import pytest

from exporters.export import ExportConfig, Source, export_checkpoint, export_model
from exporters.runtimes import load_runner
from exporters.triton_config import parse_pbtxt
from tests.helpers import run_cli

pytestmark = pytest.mark.integration

SIDECAR_PARITY = {"max_abs_diff", "max_rel_diff", "top1_agreement", "passed", "batch_sizes"}


@pytest.fixture(scope="module")
def exported(tiny_runs, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    results = {}
    for run_dir in tiny_runs.values():
        for r in export_checkpoint(ExportConfig(checkpoint=run_dir, repo=repo, **max_batch())):
            results[r.name] = r
    return repo, results


def max_batch():
    from exporters.triton_config import ServingOptions

    return {"serving": ServingOptions(max_batch_size=8)}


def test_export_every_path_passes_parity_when_both_archs_exported(exported):
    repo, results = exported
    assert sorted(results) == sorted(
        f"{a}_{f}"
        for a in ("seedcnn", "resnet18")
        for f in ("torch_torchscript", "torch_onnx", "tf_savedmodel", "tf_onnx")
    )
    for name, r in results.items():
        assert r.status == "passed", (name, r.error)
        assert r.parity.max_abs_diff <= 1e-4 and r.parity.top1_agreement == 1.0
        assert r.parity.batch_sizes == [1, 3, 8]
        model_dir = repo / name
        config = parse_pbtxt((model_dir / "config.pbtxt").read_text())
        assert config.name == name and config.max_batch_size == 8
        sidecar = json.loads((model_dir / "servebench.json").read_text())
        assert sidecar["parity"].keys() >= SIDECAR_PARITY
        assert sidecar["provenance"]["checkpoint_sha256"]
        assert len((model_dir / "labels.txt").read_text().split()) == 10
        assert [i.name for i in config.input] == [t["name"] for t in sidecar["spec"]["inputs"]]


def test_export_onnx_is_one_self_contained_file_when_from_torch(exported):
    repo, _ = exported
    files = sorted(p.name for p in (repo / "seedcnn_torch_onnx" / "1").iterdir())
    assert files == ["model.onnx"]


def test_export_platforms_are_native_when_written(exported):
    repo, _ = exported
    platforms = {
        p.name.split("_", 1)[1]: parse_pbtxt((p / "config.pbtxt").read_text()).platform
        for p in repo.iterdir()
        if p.name.startswith("seedcnn")
    }
    assert platforms == {
        "torch_torchscript": "pytorch_libtorch",
        "torch_onnx": "onnxruntime_onnx",
        "tf_savedmodel": "tensorflow_savedmodel",
        "tf_onnx": "onnxruntime_onnx",
    }


class _BatchFrozen:
    """seedcnn whose flatten turns the batch dimension into a Python int (frozen by a trace)."""

    @staticmethod
    def build():
        import torch

        from models.torch_archs import SeedCNN

        class Frozen(SeedCNN):
            def forward(self, x):
                feats = self.features(x)
                flat = feats.reshape(int(feats.shape[0]), -1)
                return self.classifier[1:](flat)

        torch.manual_seed(0)
        return Frozen(10, 1, 16).eval()


def _source(model, samples):
    from models.datasets import Preprocess

    return Source(
        model=model,
        framework="torch",
        arch="seedcnn",
        classes=tuple("0123456789"),
        preprocess=Preprocess(16, 1, (0.5,), (0.5,), "NCHW"),
        samples=samples,
    )


def test_export_rejects_batch_frozen_trace_when_parity_runs_other_batches(tmp_path):
    samples = np.random.default_rng(0).standard_normal((40, 1, 16, 16)).astype(np.float32)
    repo = tmp_path / "repo"
    (result,) = export_model(
        _source(_BatchFrozen.build(), samples), ("torchscript",), ExportConfig(None, repo=repo)
    )
    assert result.status == "failed"
    assert "batch 1" in result.error
    assert not (repo / "seedcnn_torch_torchscript").exists()
    assert list(repo.iterdir()) == []  # no half-written or staging directory left behind


def test_export_at_batch_1_serves_batch_8_when_run_in_runtime(tiny_runs, tmp_path):
    repo = tmp_path / "repo"
    results = export_checkpoint(
        ExportConfig(checkpoint=tiny_runs["seedcnn", "torch"], repo=repo, export_batch=1)
    )
    assert all(r.ok for r in results)
    x = np.random.default_rng(1).standard_normal((8, 1, 16, 16)).astype(np.float32)
    outs = {}
    for fmt, (i, o), fname in (
        ("onnx", ("input", "logits"), "model.onnx"),
        ("torchscript", ("INPUT__0", "OUTPUT__0"), "model.pt"),
    ):
        path = repo / f"seedcnn_torch_{fmt}" / "1" / fname
        outs[fmt] = load_runner(fmt, path, [i], [o])({i: x})[o]
        assert outs[fmt].shape == (8, 10)
    assert np.abs(outs["onnx"] - outs["torchscript"]).max() < 1e-4


def test_export_exits_2_and_keeps_repo_when_model_dir_exists(tiny_runs, tmp_path):
    repo = tmp_path / "repo"
    mine = repo / "seedcnn_torch_onnx"
    mine.mkdir(parents=True)
    (mine / "note.txt").write_text("keep me")
    result = run_cli(
        "export",
        "--checkpoint",
        str(tiny_runs["seedcnn", "torch"]),
        "--repo",
        str(repo),
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--force" in result.stderr
    assert sorted(p.name for p in repo.iterdir()) == ["seedcnn_torch_onnx"]
    assert (mine / "note.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "formats,expected",
    [("pickle", "unknown format 'pickle'"), ("savedmodel", "cannot be exported to savedmodel")],
)
def test_export_exits_2_when_format_is_wrong(tiny_runs, tmp_path, formats, expected):
    repo = tmp_path / "repo"
    result = run_cli(
        "export",
        "--checkpoint",
        str(tiny_runs["seedcnn", "torch"]),
        "--repo",
        str(repo),
        "--formats",
        formats,
        timeout=120,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert not repo.exists() or not any(repo.iterdir())


def test_export_exits_2_when_checkpoint_corrupt(tiny_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs["seedcnn", "torch"], run_dir)
    (run_dir / "model.pt").write_bytes(b"\x00garbage")
    repo = tmp_path / "repo"
    result = run_cli("export", "--checkpoint", str(run_dir), "--repo", str(repo), timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "model.pt" in result.stderr and "damaged" in result.stderr
    assert not repo.exists() or not any(repo.iterdir())


def test_export_exits_2_when_checkpoint_dir_missing(tmp_path):
    result = run_cli("export", "--checkpoint", str(tmp_path / "nope"), timeout=60)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_export_exits_2_and_writes_nothing_when_repo_is_a_file(tiny_runs, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# mine\n")
    result = run_cli(
        "export", "--checkpoint", str(tiny_runs["seedcnn", "torch"]), "--repo", str(readme),
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"error: --repo {readme} is a file; expected a model repository folder (it is created "
        "if missing)"
    )
    assert readme.read_text() == "# mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_export_exits_2_naming_the_folder_when_checkpoint_is_the_model_file(tiny_runs, tmp_path):
    run_dir = tiny_runs["seedcnn", "torch"]
    repo = tmp_path / "repo"
    result = run_cli(
        "export", "--checkpoint", str(run_dir / "model.pt"), "--repo", str(repo), timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{run_dir / 'model.pt'} is a file" in result.stderr
    assert f"pass its folder {run_dir}" in result.stderr
    assert "does not exist" not in result.stderr and "Traceback" not in result.stderr
    assert not repo.exists()


@pytest.mark.parametrize(
    "flags,expected",
    [
        (("--opset", "22"), "--opset 22 is newer than Triton 24.10 reads (<= 21); pass --opset 21"),
        (("--triton-version", "19.01"), "unknown --triton-version '19.01'; known releases:"),
        (("--opset", "5"), "--opset 5 is older than servebench exports to; expected 13 to 21"),
    ],
)
def test_export_exits_2_before_writing_when_target_release_cannot_read_it(
    tiny_runs, tmp_path, flags, expected
):
    repo = tmp_path / "repo"
    result = run_cli(
        "export", "--checkpoint", str(tiny_runs["seedcnn", "torch"]), "--repo", str(repo), *flags,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert not repo.exists() or not any(repo.iterdir())  # not even the TorchScript path
