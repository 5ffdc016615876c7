import json

import pytest
from PIL import Image

from tests.helpers import run_cli
from tests.unit.test_datasets import make_image_folder

METRIC_KEYS = {"framework", "arch", "test_accuracy", "train_seconds", "num_train", "num_test"}


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_train_seedcnn_reaches_95_percent_when_trained_3_epochs_on_digits(framework, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--framework", framework, "--epochs", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics.keys() >= METRIC_KEYS
    assert metrics["test_accuracy"] >= 0.95, metrics
    assert metrics["num_train"] + metrics["num_test"] == 1797
    model_file = out / ("model.pt" if framework == "torch" else "model.keras")
    assert model_file.is_file() and (out / "checkpoint.json").is_file()


def test_tiny_runs_load_back_and_reproduce_their_accuracy(tiny_runs):
    import numpy as np

    from models.checkpoint import load_model, read_checkpoint
    from models.datasets import load_dataset

    for (arch, framework), run_dir in tiny_runs.items():
        info = read_checkpoint(run_dir)
        assert (info.arch, info.framework) == (arch, framework)
        model = load_model(info)
        ds = load_dataset(info.data, info.preprocess.image_size, seed=info.seed)
        x = info.preprocess.apply(ds.test_images[:64])
        if framework == "torch":
            import torch

            with torch.no_grad():
                logits = model(torch.from_numpy(x)).numpy()
        else:
            logits = np.asarray(model(x, training=False))
        accuracy = float(np.mean(logits.argmax(1) == ds.test_labels[:64]))
        recorded = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
        assert abs(accuracy - recorded) < 0.2  # same model, a 64-sample subset of the split


def test_train_on_image_folder_reports_accuracy_when_tree_is_pngs(tmp_path):
    from models.datasets import load_digits

    digits = load_digits(16)
    root = tmp_path / "data"
    for split, images, labels in (
        ("train", digits.train_images[:200], digits.train_labels[:200]),
        ("test", digits.test_images[:60], digits.test_labels[:60]),
    ):
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            d = root / split / f"digit{label}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0]).save(d / f"{i}.png")
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "--framework",
        "torch",
        "--data",
        str(root),
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_train"] == 200 and metrics["num_test"] == 60
    assert metrics["test_accuracy"] > 0.3  # 10 classes; far above chance after 2 epochs
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["classes"][0] == "digit0" and meta["preprocess"]["channels"] == 3


def test_train_refuses_to_overwrite_when_out_not_empty(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("train", "--framework", "torch", "--out", str(out), timeout=60)
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing", "does not exist"),
        ("empty", "no images found"),
        ("mismatch", "only in train: ['b']"),
        ("unreadable", "cannot read image"),
    ],
)
def test_train_exits_2_with_message_when_dataset_is_bad(case, expected, tmp_path):
    root = tmp_path / "data"
    if case == "empty":
        (root / "train" / "a").mkdir(parents=True)
        (root / "test" / "a").mkdir(parents=True)
    elif case == "mismatch":
        make_image_folder(root)
        for f in (root / "test" / "b").iterdir():
            f.unlink()
        (root / "test" / "b").rmdir()
    elif case == "unreadable":
        make_image_folder(root)
        (root / "train" / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    result = run_cli(
        "train",
        "--framework",
        "torch",
        "--data",
        str(root),
        "--image-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr
    if case == "unreadable":
        assert "broken.jpg" in result.stderr
    assert not (tmp_path / "run").exists()
