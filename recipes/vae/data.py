"""Images for the VAE recipe: Fashion-MNIST (Debian package) and scikit-learn's 8x8 digits.

Images are flattened grey levels in ``[0, 1]`` ``(rows, pixels)``. Training batches are
binarized dynamically (a fresh Bernoulli draw of every pixel each time an image is read);
validation and test images are binarized once with a fixed seed, so every model is scored on
the same binary images.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from seqflow.train import RowDataset

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_TYPES = {0x08: (torch.uint8, 1)}


@dataclass
class Images:
    """Grey levels in ``[0, 1]``: ``train``/``val``/``test`` ``(rows, height * width)``."""

    name: str
    train: Tensor
    val: Tensor
    test: Tensor
    height: int
    width: int


def read_idx(path: Path) -> Tensor:
    """An IDX file (optionally gzip-compressed) as a tensor of its declared shape (uint8 only).

    Layout: two zero bytes, a type byte (0x08: unsigned byte), the number of dimensions, one
    big-endian int32 per dimension, then the values.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read an IDX file ({err})") from None
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}i", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    expected = 1
    for d in dims:
        expected *= d
    if len(body) != expected:
        raise ValueError(f"{path}: header declares shape {dims} ({expected} values) but the "
                         f"file holds {len(body)}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST_ROOT, val_size: int = 5000) -> Images:
    """Fashion-MNIST 28x28: the last ``val_size`` training images are the validation split."""
    root = Path(root)
    missing = [root / name for pair in FASHION_MNIST_FILES.values() for name in pair[:1]
               if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]} not found: Fashion-MNIST comes from the Debian package "
            "dataset-fashion-mnist (as root: apt-get update && apt-get install -y "
            f"dataset-fashion-mnist), or set data.root to a folder with the four idx.gz files")
    train = read_idx(root / FASHION_MNIST_FILES["train"][0])
    test = read_idx(root / FASHION_MNIST_FILES["test"][0])
    for split, images in (("train", train), ("test", test)):
        if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
            raise ValueError(f"{root / FASHION_MNIST_FILES[split][0]}: expected images "
                             f"(N, 28, 28), got {tuple(images.shape)}")
    if not 0 < val_size < len(train):
        raise ValueError(f"data.val_size must be in (0, {len(train)}), got {val_size}")
    train = train.reshape(len(train), -1).float() / 255
    test = test.reshape(len(test), -1).float() / 255
    return Images("fashion_mnist", train[:-val_size], train[-val_size:], test, 28, 28)


def load_digits(seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.15) -> Images:
    """scikit-learn's 1,797 8x8 digits (grey levels 0..16 scaled to [0, 1]), split by a
    seeded permutation."""
    from sklearn.datasets import load_digits as sklearn_digits

    pixels = torch.as_tensor(sklearn_digits().data, dtype=torch.float32) / 16
    perm = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = int(len(pixels) * val_fraction), int(len(pixels) * test_fraction)
    rows = pixels[perm]
    return Images("digits", rows[n_val + n_test:], rows[:n_val], rows[n_val:n_val + n_test],
                  8, 8)


def load_images(name: str, root: str | None, val_size: int, seed: int = 0) -> Images:
    if name == "fashion_mnist":
        return load_fashion_mnist(Path(root) if root else FASHION_MNIST_ROOT, val_size)
    if name == "digits":
        return load_digits(seed)
    raise ValueError(f"data.name: {name!r} is not one of fashion_mnist, digits")


def binarize_once(grey: Tensor, seed: int) -> Tensor:
    """A fixed Bernoulli draw of every pixel (the same for every model and run)."""
    return torch.bernoulli(grey, generator=torch.Generator().manual_seed(seed))


class DynamicBinarization(Dataset):
    """Grey images whose items are fresh Bernoulli draws ``{"x", "context": None, "index"}``.

    Draws use torch's global generator, which the engine saves in every checkpoint, so a
    resumed run reads the same binary images as an uninterrupted one.
    """

    def __init__(self, grey: Tensor):
        self.grey = grey

    def __len__(self) -> int:
        return len(self.grey)

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.bernoulli(self.grey[i]), "context": None, "index": int(i)}

    def __getitems__(self, indices: Sequence[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"x": torch.bernoulli(self.grey[index]), "context": None, "index": index}


def splits(images: Images, seed: int = 1234) -> dict[str, Dataset]:
    """Engine splits: dynamically binarized train, once-binarized val and test."""
    return {"train": DynamicBinarization(images.train),
            "val": RowDataset(binarize_once(images.val, seed)),
            "test": RowDataset(binarize_once(images.test, seed + 1))}
