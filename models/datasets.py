"""Image datasets as uint8 arrays, and the preprocessing recipe that travels with a model.

Two sources:

* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (shipped inside the package),
  upscaled to ``image_size`` and split train/test by a fixed stratified seed.
* an ImageFolder tree: ``ROOT/train/<class>/*.{jpg,png}`` and ``ROOT/test/<class>/*``.

Images are kept as ``uint8`` NHWC arrays; :class:`Preprocess` turns them into the float tensor a
model takes (scale to [0, 1], normalise by mean/std, NCHW for PyTorch or NHWC for Keras).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from models.errors import DatasetError

log = logging.getLogger(__name__)

DIGITS = "digits"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_TEST_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How raw uint8 pixels become a model input. Saved beside every checkpoint and artifact."""

    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str = "NCHW"  # the layout of the *model input*: NCHW (PyTorch) or NHWC (Keras)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 NHWC images -> float32 model input in this recipe's layout."""
        if images.ndim != 4 or images.shape[1:] != (
            self.image_size,
            self.image_size,
            self.channels,
        ):
            raise DatasetError(
                f"expected uint8 images of shape (N, {self.image_size}, {self.image_size}, "
                f"{self.channels}); found {images.shape}"
            )
        x = images.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def with_layout(self, layout: str) -> Preprocess:
        return dataclasses.replace(self, layout=layout)

    def to_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        return cls(
            image_size=int(data["image_size"]),
            channels=int(data["channels"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            layout=str(data.get("layout", "NCHW")),
        )


@dataclasses.dataclass
class Dataset:
    """A train/test split of uint8 NHWC images with integer labels and class names."""

    name: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    preprocess: Preprocess

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_dataset(source: str, image_size: int | None = None, seed: int = 0) -> Dataset:
    """``digits`` or the path of an ImageFolder root."""
    if source == DIGITS:
        return load_digits(image_size or 32, seed=seed)
    return load_image_folder(Path(source), image_size or 224)


def default_image_size(source: str) -> int:
    return 32 if source == DIGITS else 224


def load_digits(image_size: int = 32, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits (16 grey levels, 8x8), upscaled to ``image_size``."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    _check_image_size(image_size)
    bunch = sk_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    images = _resize_all(pixels, image_size)[..., None]  # (N, S, S, 1)
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=seed
    )
    return Dataset(
        name=DIGITS,
        classes=[str(d) for d in range(10)],
        train_images=images[idx_train],
        train_labels=labels[idx_train],
        test_images=images[idx_test],
        test_labels=labels[idx_test],
        preprocess=Preprocess(image_size=image_size, channels=1, mean=(0.5,), std=(0.5,)),
    )


def _resize_all(pixels: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if pixels.shape[1:] == (size, size):
        return pixels
    return np.stack(
        [np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)) for p in pixels]
    )


def load_image_folder(root: Path, image_size: int = 224) -> Dataset:
    """``root/train/<class>/*`` and ``root/test/<class>/*``, RGB, ImageNet mean/std."""
    _check_image_size(image_size)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist; expected 'digits' or an ImageFolder root "
            "holding train/<class>/*.jpg and test/<class>/*.jpg"
        )
    splits = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DatasetError(
                f"{split_dir} is missing; an ImageFolder root needs both train/ and test/ "
                "folders, each with one sub-folder per class"
            )
        splits[split] = _scan_split(split_dir)
    train_classes, test_classes = set(splits["train"]), set(splits["test"])
    if train_classes != test_classes:
        only_train = sorted(train_classes - test_classes)
        only_test = sorted(test_classes - train_classes)
        raise DatasetError(
            f"train and test class folders differ under {root}: only in train: "
            f"{only_train or 'none'}; only in test: {only_test or 'none'}; "
            "give both splits the same class folders"
        )
    classes = sorted(train_classes)
    arrays = {split: _read_split(splits[split], classes, image_size) for split in ("train", "test")}
    log.info(
        "image folder %s: %d classes, %d train, %d test images",
        root,
        len(classes),
        len(arrays["train"][1]),
        len(arrays["test"][1]),
    )
    return Dataset(
        name=str(root),
        classes=classes,
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        preprocess=Preprocess(
            image_size=image_size, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD
        ),
    )


def _scan_split(split_dir: Path) -> dict[str, list[Path]]:
    found = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = sorted(
            f for f in class_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            found[class_dir.name] = files
    if not found:
        raise DatasetError(
            f"no images found under {split_dir}; expected {split_dir}/<class>/*.jpg or *.png "
            f"(suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return found


def _read_split(
    by_class: dict[str, list[Path]], classes: list[str], image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in by_class[name]:
            images.append(read_image(path, image_size, channels=3))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64)


def read_image(path: Path, image_size: int, channels: int = 3) -> np.ndarray:
    """One image file -> uint8 (S, S, C). Names the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            img = img.resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DatasetError(f"image {path} does not exist") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(
            f"cannot read image {path}: {exc}; remove it or replace it with a valid JPEG/PNG"
        ) from exc
    return array if channels == 3 else array[..., None]


def _check_image_size(image_size: int) -> None:
    if image_size < 8:
        raise DatasetError(f"--image-size must be at least 8 pixels; found {image_size}")
