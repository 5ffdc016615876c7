"""Export inputs a user can get wrong: a --repo that is a file, a --checkpoint that is a file."""

from __future__ import annotations

import pytest

from exporters.errors import ExportInputError
from exporters.export import ExportConfig, export_checkpoint
from exporters.repository import check_repo, check_target
from models.checkpoint import read_checkpoint
from models.errors import CheckpointError


def test_check_repo_says_it_is_a_file_when_repo_is_an_existing_file(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    with pytest.raises(ExportInputError) as caught:
        check_repo(readme)
    assert str(caught.value) == (
        f"--repo {readme} is a file; expected a model repository folder (it is created if missing)"
    )
    with pytest.raises(ExportInputError, match="is a file"):
        check_target(readme, "seedcnn_torch_onnx", force=True)
    assert readme.read_text() == "# notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_check_repo_names_the_file_when_repo_lies_under_a_file(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("x")
    with pytest.raises(ExportInputError, match=rf"lies under {readme}, which is a file"):
        check_repo(readme / "repo" / "deeper")


def test_check_repo_accepts_when_repo_is_missing_or_a_folder(tmp_path):
    check_repo(tmp_path / "not" / "yet")
    check_repo(tmp_path)
    assert list(tmp_path.iterdir()) == []  # checking creates nothing


def test_export_checkpoint_refuses_before_reading_when_repo_is_a_file(tmp_path):
    repo = tmp_path / "repo.txt"
    repo.write_text("")
    config = ExportConfig(checkpoint=tmp_path / "no_such_run", repo=repo)
    with pytest.raises(ExportInputError, match="is a file"):
        export_checkpoint(config)


def test_read_checkpoint_names_its_folder_when_given_the_model_file(tmp_path):
    run_dir = tmp_path / "seedcnn_torch"
    run_dir.mkdir()
    model_file = run_dir / "model.pt"
    model_file.write_bytes(b"weights")
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(model_file)
    message = str(caught.value)
    assert f"checkpoint {model_file} is a file" in message
    assert f"pass its folder {run_dir}" in message
    assert "does not exist" not in message
