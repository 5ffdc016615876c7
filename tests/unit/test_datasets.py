import numpy as np
import pytest
from PIL import Image

from models.datasets import Preprocess, load_digits, load_image_folder
from models.errors import DatasetError


def test_load_digits_splits_real_digits_stratified_when_seeded():
    a = load_digits(32, seed=0)
    b = load_digits(32, seed=0)
    assert a.train_images.shape[1:] == (32, 32, 1) and a.train_images.dtype == np.uint8
    assert len(a.train_labels) + len(a.test_labels) == 1797
    assert np.array_equal(a.test_labels, b.test_labels)
    counts = np.bincount(a.test_labels, minlength=10)
    assert counts.min() >= 35  # every class present in the held-out split
    assert a.classes == [str(d) for d in range(10)]


def test_preprocess_produces_layout_and_normalisation_when_applied():
    pre = Preprocess(image_size=4, channels=1, mean=(0.5,), std=(0.5,), layout="NCHW")
    x = pre.apply(np.full((2, 4, 4, 1), 255, np.uint8))
    assert x.shape == (2, 1, 4, 4) and x.dtype == np.float32
    assert np.allclose(x, 1.0)
    assert pre.with_layout("NHWC").apply(np.zeros((1, 4, 4, 1), np.uint8)).shape == (1, 4, 4, 1)


def test_preprocess_rejects_images_when_shape_differs():
    pre = Preprocess(image_size=4, channels=3, mean=(0,) * 3, std=(1,) * 3)
    with pytest.raises(DatasetError, match=r"\(N, 4, 4, 3\)"):
        pre.apply(np.zeros((1, 5, 5, 3), np.uint8))


def make_image_folder(root, classes=("a", "b"), per_class=3, size=12):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def test_load_image_folder_reads_rgb_sorted_classes_when_tree_is_valid(tmp_path):
    ds = load_image_folder(make_image_folder(tmp_path, classes=("zeta", "alpha")), 20)
    assert ds.classes == ["alpha", "zeta"]
    assert ds.train_images.shape == (6, 20, 20, 3)
    assert ds.preprocess.channels == 3 and ds.preprocess.mean[0] == pytest.approx(0.485)


def test_load_image_folder_names_classes_when_splits_differ(tmp_path):
    make_image_folder(tmp_path)
    (tmp_path / "test" / "b").rename(tmp_path / "test" / "c")
    with pytest.raises(DatasetError, match=r"only in train: \['b'\].*only in test: \['c'\]"):
        load_image_folder(tmp_path, 16)
