"""The image domain's own parts: the embedded Fashion-MNIST sample, IDX, ImageFolder and CIFAR user
data, and top-5 error. What every domain does (parameter counts, a training step, a smoke study,
--data errors) is checked in test_domain_contract.py."""

from __future__ import annotations

import gzip
import pickle
import struct
from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image

import domains
from domains.image import evaluate_images
from domains.protocol import DataError


def test_embedded_data_is_balanced_fashion_mnist(domain_data):
    dom, data = domains.get("image"), domain_data("image")
    full = dom.load("images")
    assert full.train_x.shape == (12000, 1, 28, 28) and len(full.val_y) == 2500
    assert np.bincount(full.train_y.numpy()).tolist() == [1200] * 10
    assert data.classes == 10 and data.best_guess_error() == pytest.approx(0.9)
    assert abs(float(full.train_x.mean())) < 1e-3          # normalised with the pool's own statistics


def test_top5_error_rides_along_and_is_below_top1(domain_data):
    data = domain_data("image")
    torch.manual_seed(0)
    model = domains.get("image").build_model({"width": 2, "layers": 1}, data)
    loss, top1, more = evaluate_images(model, data)
    assert set(more) == {"top5_error"} and 0.0 <= more["top5_error"] <= top1 <= 1.0 and loss > 0


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_user_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (300, 12, 12)),
             "train-labels-idx1-ubyte.gz": np.arange(300) % 4,
             "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 12, 12)),
             "t10k-labels-idx1-ubyte.gz": np.arange(40) % 4}
    for name, arr in files.items():
        _write_idx(tmp_path / name, arr)
    data = domains.get("image").load("images", str(tmp_path))
    assert data.train_x.shape == (300, 1, 12, 12) and data.val_x.shape == (40, 1, 12, 12) and data.classes == 4

    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3i", 40, 12, 12)))
    with pytest.raises(DataError, match="truncated"):
        domains.get("image").load("images", str(tmp_path))


def test_user_image_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("val", 2)):
        for cls in ("cat", "dog", "eel"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    data = domains.get("image").load("images", str(tmp_path))
    assert data.train_x.shape == (18, 3, 10, 10) and len(data.val_y) == 6 and data.classes == 3
    model = domains.get("image").build_model({"width": 2, "layers": 1}, data)
    assert model(data.val_x).shape == (6, 3)


def _write_cifar_batch(path, x_nhwc: np.ndarray, y: np.ndarray) -> None:
    rows = x_nhwc.transpose(0, 3, 1, 2).reshape(len(x_nhwc), -1)      # R, G, B planes per row, as CIFAR stores them
    with path.open("wb") as fh:
        pickle.dump({b"data": rows, b"labels": [int(v) for v in y]}, fh)


def test_user_cifar_batches(tmp_path):
    """Real images (embedded Fashion-MNIST, padded to 32x32 and copied to 3 channels) in the
    CIFAR-10 python layout; the reader must give back exactly those pixels in NCHW order."""
    with np.load(resources.files("domains.data").joinpath("fashion_mnist_small.npz").open("rb")) as z:
        x = np.repeat(np.pad(z["train_x"][:250], ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=3)
        y = z["train_y"][:250]
    x[..., 1] //= 2                                                      # channels differ, so their order is checked
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _write_cifar_batch(root / "data_batch_1", x[:100], y[:100])
    _write_cifar_batch(root / "data_batch_2", x[100:200], y[100:200])
    _write_cifar_batch(root / "test_batch", x[200:], y[200:])
    data = domains.get("image").load("images", str(tmp_path))
    assert data.train_x.shape == (200, 3, 32, 32) and len(data.val_y) == 50 and data.classes == 10
    assert data.train_y.tolist() == y[:200].tolist()
    raw = torch.as_tensor(x[:200], dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    mean, std = raw.mean(dim=(0, 2, 3), keepdim=True), raw.std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(data.train_x, (raw - mean) / std, atol=1e-4)

    (root / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a CIFAR python batch"):
        domains.get("image").load("images", str(tmp_path))


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing", "not a directory"),
    (lambda p: p, "missing train-images-idx3-ubyte"),
])
def test_bad_data_is_a_one_line_error(tmp_path, make, needle):
    with pytest.raises(DataError, match=needle) as err:
        domains.get("image").load("images", str(make(tmp_path)))
    assert str(err.value).startswith("--data ") and "\n" not in str(err.value)
