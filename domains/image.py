"""``image``: image classification with small ResNets, top-1 error (Hestness et al. 2017, section 4.3).

Data (unit: images):

- default: a class-balanced Fashion-MNIST sample shipped with the package
  (``domains/data/fashion_mnist_small.npz``: 12,000 training and 2,500 validation images, 28x28
  grey, 10 classes; MIT licence; rebuilt by ``domains/data/build_fashion_mnist.py``);
- ``--data DIR`` holding the four standard IDX files (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``): the full Fashion-MNIST or MNIST, for example
  /usr/share/datasets/fashion-mnist from Debian's ``dataset-fashion-mnist``;
- ``--data DIR`` with ``train/`` and ``val/`` in torchvision's ImageFolder layout
  (``train/<class>/*.png``), all images one size;
- ``--data DIR`` in the CIFAR-10 (or CIFAR-100) python layout: ``data_batch_1`` ... and
  ``test_batch`` (CIFAR-100: ``train`` and ``test``), in DIR or in DIR/cifar-10-batches-py.

Model family: a ResNet for small images built from torchvision's ``BasicBlock``: a 3x3 stem
convolution to ``width`` channels, three stages of ``layers`` blocks (the depth knob; named like
the other domains' so the search's layer offsets apply) with ``width``, 2*width and
4*width channels (stride 1, 2, 2), global average pooling and a linear classifier. Fitted metric:
top-1 validation error; the loss is cross-entropy. Best guess: 1 - 1/classes (a constant guess).

Registered models (`ImagePredictor`, see `domains.serve`) take a column ``image`` of uint8
arrays at the training size and return ``label`` and ``probabilities``.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from domains.common import TensorTask, no_pool, train_trial
from domains.protocol import DataError, LogFn, MetricInfo, Scale, TrainSettings, TrialResult, TrialSpec
from domains.serve import Export

EMBEDDED = "fashion_mnist_small.npz"
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "val_x": "t10k-images-idx3-ubyte", "val_y": "t10k-labels-idx1-ubyte"}
EVAL_BATCH = 1000


class SmallResNet(nn.Module):
    """stem conv3x3(in, w) + BN + ReLU; stages of ``depth`` BasicBlocks at w, 2w, 4w channels
    (strides 1, 2, 2); average pool; Linear(4w, classes).

    Parameters (convolutions carry no bias; BatchNorm has 2 per channel):
        stem 9*in*w + 2w
        block(i -> o) 9*i*o + 9*o*o + 4*o, plus a 1x1 shortcut i*o + 2*o when i != o or stride 2
        head 4w*classes + classes
    """

    def __init__(self, in_channels: int, width: int, depth: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks, inp = [], width
        for i, out in enumerate((width, 2 * width, 4 * width)):
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                down = (nn.Sequential(conv1x1(inp, out, stride), nn.BatchNorm2d(out))
                        if stride != 1 or inp != out else None)
                blocks.append(BasicBlock(inp, out, stride, down))
                inp = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(inp, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet_params(in_channels: int, width: int, depth: int, classes: int) -> int:
    """Exact parameter count of `SmallResNet` (formula in its docstring)."""
    n = 9 * in_channels * width + 2 * width
    inp = width
    for i, out in enumerate((width, 2 * width, 4 * width)):
        for j in range(depth):
            stride = 2 if (i > 0 and j == 0) else 1
            n += 9 * inp * out + 9 * out * out + 4 * out
            if stride != 1 or inp != out:
                n += inp * out + 2 * out
            inp = out
    return n + inp * classes + classes


@dataclass
class ImageData:
    """Images as normalised float tensors (N, C, H, W) and integer labels; ``mean`` and ``std``
    per channel (of the [0, 1] pixels of the training pool) are what `normalise` used."""

    unit: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: int
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def chunk_sizes(self) -> np.ndarray:
        return np.ones(len(self.train_y), dtype=np.int64)

    def best_guess_error(self) -> float:
        return 1.0 - 1.0 / self.classes

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])


def _read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not): 2 zero bytes, type 0x08 (uint8), ndim, big-endian int32 dims, data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"--data: {path} is not a uint8 IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"--data: {path} is truncated ({body.size} bytes of data for shape {tuple(dims)})")
    return body.reshape(dims).copy()   # frombuffer is read-only; torch wants writable arrays


def read_idx_dir(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, labels), (validation images, labels)) from the four standard IDX files."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = [p for p in (root / stem, root / f"{stem}.gz") if p.is_file()]
        if not found:
            raise DataError(f"--data {root}: missing {stem}[.gz] (expects the four MNIST-style IDX files, "
                            "train/ and val/ image folders, or CIFAR python batches)")
        arrays[key] = _read_idx(found[0])
    for split in ("train", "val"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise DataError(f"--data {root}: {split} images and labels differ in number")
    return (arrays["train_x"], arrays["train_y"]), (arrays["val_x"], arrays["val_y"])


def _read_image_folder(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """train/ and val/ in torchvision's ImageFolder layout, decoded to uint8 arrays (N, H, W, C)."""
    from torchvision.datasets import ImageFolder

    out = []
    classes = None
    for split in ("train", "val"):
        try:
            ds = ImageFolder(str(root / split), transform=lambda im: np.asarray(im))
        except (FileNotFoundError, OSError) as exc:
            raise DataError(f"--data {root}: no {split}/ ImageFolder ({exc})") from None
        if classes is not None and ds.classes != classes:
            raise DataError(f"--data {root}: train/ and val/ have different classes")
        classes = ds.classes
        try:
            images = [ds[i][0] for i in range(len(ds))]
            x = np.stack(images)
        except ValueError:
            raise DataError(f"--data {root}/{split}: images differ in size; resize them to one size first") from None
        except OSError as exc:
            raise DataError(f"--data {root}/{split}: unreadable image ({exc})") from None
        out.append((x, np.asarray(ds.targets)))
    return out[0], out[1]


CIFAR_DIRS = ("", "cifar-10-batches-py", "cifar-100-python")


def _read_cifar(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """The CIFAR python layout (pickled dicts with ``data`` (N, 3072) uint8, rows of R, G, B planes,
    and ``labels`` or CIFAR-100's ``fine_labels``), or None when ``root`` does not hold it.

    Read here rather than with torchvision's ``CIFAR10``, which refuses any copy whose files'
    md5 sums differ from the official ones (a subset or a re-packed set). The batches are
    pickles: only point --data at files you trust.
    """
    for sub in CIFAR_DIRS:
        d = root / sub
        if (d / "data_batch_1").is_file():
            train_files, val_files = sorted(d.glob("data_batch_*")), [d / "test_batch"]
            break
        if (d / "train").is_file() and (d / "test").is_file():
            train_files, val_files = [d / "train"], [d / "test"]
            break
    else:
        return None

    def load(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            try:
                with f.open("rb") as fh:
                    batch = pickle.load(fh, encoding="bytes")
                x = np.asarray(batch[b"data"], dtype=np.uint8)
                y = batch.get(b"labels", batch.get(b"fine_labels"))
                x = x.reshape(len(x), 3, 32, 32).transpose(0, 2, 3, 1)   # NHWC, as the other readers give
            except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"--data {f}: not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
            if y is None or len(y) != len(x):
                raise DataError(f"--data {f}: CIFAR batch without one label per image")
            xs.append(x)
            ys.append(np.asarray(y, dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    if not val_files[0].is_file():
        raise DataError(f"--data {root}: CIFAR layout without its test batch ({val_files[0].name})")
    return load(train_files), load(val_files)


def nchw(x: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) as float (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(x, dtype=torch.float32) / 255.0
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean) / std per channel of NCHW images; mean and std are sequences of C floats."""
    return (x - torch.as_tensor(mean).view(1, -1, 1, 1)) / torch.as_tensor(std).view(1, -1, 1, 1)


def _to_data(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             max_val: int | None) -> ImageData:
    """Scale to [0, 1], normalise with the training pool's per-channel mean and std, NCHW."""
    (tx, ty), (vx, vy) = train, val
    if max_val is not None:
        vx, vy = vx[:max_val], vy[:max_val]
    if len(ty) == 0 or len(vy) == 0:
        raise DataError("image data: the training or validation set is empty")
    x_train, x_val = nchw(tx), nchw(vx)
    mean = tuple(x_train.mean(dim=(0, 2, 3)).tolist())
    std = tuple(x_train.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
    classes = int(max(ty.max(), vy.max())) + 1
    return ImageData("images", normalise(x_train, mean, std), torch.as_tensor(ty, dtype=torch.int64),
                     normalise(x_val, mean, std), torch.as_tensor(vy, dtype=torch.int64), classes, mean, std)


def load_images(data_path: str | None = None, max_val: int | None = None) -> ImageData:
    if data_path is None:
        with resources.files("domains.data").joinpath(EMBEDDED).open("rb") as f:
            z = np.load(f)
            return _to_data((z["train_x"], z["train_y"]), (z["val_x"], z["val_y"]), max_val)
    root = Path(data_path)
    if not root.is_dir():
        raise DataError(f"--data {data_path}: not a directory (expects IDX files, train/ and val/ image folders, or CIFAR batches)")
    if (root / "train").is_dir():
        return _to_data(*_read_image_folder(root), max_val)
    cifar = _read_cifar(root)
    if cifar is not None:
        return _to_data(*cifar, max_val)
    return _to_data(*read_idx_dir(root), max_val)


class ImageTask(TensorTask):
    def __init__(self, data: ImageData, chunk_ids):
        super().__init__(data.train_x, data.train_y, chunk_ids)
        self.data = data

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x).float(), y)

    def evaluate(self, model: nn.Module, device: str) -> tuple[float, float, dict[str, float]]:
        return evaluate_images(model, self.data, device)


@torch.no_grad()
def evaluate_images(model: nn.Module, data: ImageData, device: str = "cpu") -> tuple[float, float, dict[str, float]]:
    """(mean cross-entropy, top-1 error, {"top5_error": ...}) on the validation images, in eval
    mode (BatchNorm's running statistics). Top-5 error counts an image wrong when its label is
    not among the 5 highest logits (with fewer than 6 classes it is 0 by construction)."""
    was_training = model.training
    model.eval()
    loss, wrong1, wrong5 = 0.0, 0, 0
    k = min(5, data.classes)
    for s in range(0, len(data.val_y), EVAL_BATCH):
        x, y = data.val_x[s:s + EVAL_BATCH].to(device), data.val_y[s:s + EVAL_BATCH].to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        wrong1 += int((logits.argmax(1) != y).sum())
        wrong5 += int((logits.topk(k, dim=1).indices != y[:, None]).all(dim=1).sum())
    model.train(was_training)
    n = len(data.val_y)
    return loss / n, wrong1 / n, {"top5_error": wrong5 / n}


_SCALES = {
    "smoke": Scale(64, 3, TrainSettings(batch_size=32, max_steps=40, max_rounds=3, min_round_steps=10, patience=2),
                   {"width": 4, "layers": 1}, 3e-3, min_width=2, max_width=8, max_val_units=500),
    # quick: 32 -> 4,096 images; up to 800 steps (6 epochs of the largest subset) and width 16 keep
    # the study near 10 minutes on 2 cores (300 steps flattened the curve from 2,048 images on).
    "quick": Scale(32, 8, TrainSettings(batch_size=32, max_steps=800, max_rounds=20, min_round_steps=40, patience=2),
                   {"width": 8, "layers": 1}, 3e-3, min_width=4, max_width=16, max_val_units=2000),
    "full": Scale(64, 10, TrainSettings(batch_size=128, max_steps=20000, max_rounds=100, min_round_steps=100, patience=4),
                  {"width": 16, "layers": 2}, 2e-3, min_width=8, max_width=256, max_val_units=None),
}


class ImageDomain:
    """``image``: small ResNets on Fashion-MNIST (or the user's images); top-1 error."""

    name = "image"
    units = ("images",)
    default_data = EMBEDDED
    size_knobs = ("width", "layers")   # layers: residual blocks per stage (the depth knob)
    grow_knob = "width"

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        return MetricInfo("top1_error", "top-1 validation error (fraction of images misclassified)")

    def scale(self, budget: str, unit: str) -> Scale:
        self._check_unit(unit)
        return _SCALES[budget]

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> ImageData:
        self._check_unit(unit)
        no_pool(self.name, pool_size)
        return load_images(data_path, max_val_units)

    def build_model(self, size: Mapping[str, int], data: ImageData) -> SmallResNet:
        return SmallResNet(data.in_channels, int(size["width"]), int(size["layers"]), data.classes)

    def count_params(self, size: Mapping[str, int], data: ImageData) -> int:
        return resnet_params(data.in_channels, int(size["width"]), int(size["layers"]), data.classes)

    def train_flops(self, n_params: float, units: float) -> float:
        """6 * N * units, the dense-network estimate; it undercounts a convolutional net, whose
        weights are reused at every pixel position (use the measured wall time for planning)."""
        return 6.0 * n_params * units

    def train(self, spec: TrialSpec, data: ImageData, chunk_ids, log: LogFn,
              device: str = "cpu") -> tuple[TrialResult, nn.Module]:
        def build():
            return self.build_model(spec.size, data), ImageTask(data, chunk_ids)

        return train_trial(spec, build, self.count_params(spec.size, data), log, device)

    def evaluate(self, model: nn.Module, data: ImageData, device: str = "cpu") -> tuple[float, float]:
        return evaluate_images(model, data, device)[:2]

    def _check_unit(self, unit: str) -> None:
        if unit not in self.units:
            raise ValueError(f"domain image has no unit {unit!r}; its unit is 'images'")


class ImagePredictor:
    """A registered image classifier (`domains.serve`): input column ``image``, each an array of
    integers 0-255 of the training size, H x W for grey images (H x W x 1 is taken too) or
    H x W x C; output columns ``label`` (the most probable class: an integer, as the data's
    labels) and ``probabilities`` (softmax over the classes, indexed by label). Pixels are scaled
    and normalised as in training (`nchw`, `normalise`)."""

    inputs = ("image",)
    params: dict[str, int] = {}

    def __init__(self, model: SmallResNet, settings: dict):
        self.model, self.s = model, settings
        h, w, c = settings["height_px"], settings["width_px"], settings["channels"]
        self.shapes = {(h, w, c)} | ({(h, w)} if c == 1 else set())

    @classmethod
    def export(cls, data: ImageData) -> Export:
        _, c, h, w = data.val_x.shape
        # The example: the first validation image, back in pixels (the data keep normalised floats).
        x = data.val_x[0] * torch.as_tensor(data.std).view(-1, 1, 1) + torch.as_tensor(data.mean).view(-1, 1, 1)
        pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        pixels = pixels[:, :, 0] if c == 1 else pixels
        settings = {"height_px": h, "width_px": w, "channels": c, "classes": data.classes,
                    "mean": list(data.mean), "std": list(data.std)}
        return Export(settings, {"image": [pixels.tolist()]})

    @classmethod
    def load(cls, config, files, state) -> "ImagePredictor":
        s = config["settings"]
        model = SmallResNet(s["channels"], int(config["size"]["width"]), int(config["size"]["layers"]), s["classes"])
        model.load_state_dict(state)
        return cls(model, s)

    def predict(self, columns, params) -> dict[str, list]:
        images = []
        for row, value in enumerate(columns["image"]):
            a = np.asarray(value)
            if a.shape not in self.shapes:
                takes = " or ".join(map(str, sorted(self.shapes)))
                raise ValueError(f"row {row}: image of shape {a.shape}; this model takes {takes}")
            integral = a.dtype.kind in "ui" or (a.dtype.kind == "f" and bool(np.all(a == np.round(a))))
            if not integral or a.min() < 0 or a.max() > 255:
                raise ValueError(f"row {row}: pixels must be integers 0-255")
            images.append(a.astype(np.uint8).reshape(self.s["height_px"], self.s["width_px"], -1))
        labels, probabilities = [], []
        for start in range(0, len(images), EVAL_BATCH):
            x = normalise(nchw(np.stack(images[start:start + EVAL_BATCH])), self.s["mean"], self.s["std"])
            p = torch.softmax(self.model(x).float(), dim=1)
            labels += p.argmax(1).tolist()
            probabilities += p.tolist()
        return {"label": labels, "probabilities": probabilities}
