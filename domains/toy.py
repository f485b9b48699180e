"""``toy``: teacher-student regression with a known noise floor; a whole study runs in seconds.

Data: x ~ N(0, I_8); y = t(x) + noise, where the teacher t is a fixed random two-layer tanh
network (8 -> 32 -> 1, scaled so that Var[t(x)] = 1) and noise ~ N(0, NOISE_STD^2).

The learning curve of a well-fitted student is known in form: validation MSE falls as a power
law in the number of examples m towards the irreducible floor gamma = NOISE_STD^2 = 0.01 (the
Bayes error; no model can do better), starting from the best-guess error Var[y] ~ 1.01 (predict
the mean). The student is an MLP with ``width`` and ``layers`` knobs, so small students are
capacity-limited and large students overfit small subsets, as in the paper.

The pool holds 32,768 training examples (``--pool-size N`` asks for another number) and 4,096
validation ones; ``--data FILE.npz`` (arrays x, y, val_x, val_y) replaces them.

Registered models (`ToyPredictor`, see `domains.serve`) take columns ``x0`` .. ``x7`` and return
the prediction ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from domains.common import TensorTask, generated_pool, train_trial
from domains.protocol import DataError, LogFn, MetricInfo, Scale, TrainSettings, TrialResult, TrialSpec
from domains.serve import Export

IN_DIM = 8
TEACHER_HIDDEN = 32
NOISE_STD = 0.1
POOL_SIZE = 32768
MAX_POOL_SIZE = 1 << 22        # --pool-size cap: 4,194,304 examples of 9 float32s, 150 MB
VAL_SIZE = 4096
DATA_SEED = 1234


class MLP(nn.Module):
    """in -> [Linear(., w) -> tanh] x layers -> Linear(w, 1).

    Parameters: (in*w + w) + (layers - 1) * (w*w + w) + (w + 1).
    """

    def __init__(self, in_dim: int, width: int, layers: int):
        super().__init__()
        dims = [in_dim] + [width] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return self.out(x).squeeze(-1)


def mlp_params(in_dim: int, width: int, layers: int) -> int:
    """Exact parameter count of `MLP` (formula in its docstring)."""
    return (in_dim * width + width) + (layers - 1) * (width * width + width) + (width + 1)


@dataclass
class ToyData:
    unit: str
    x: torch.Tensor      # (POOL_SIZE, IN_DIM)
    y: torch.Tensor      # (POOL_SIZE,)
    val_x: torch.Tensor
    val_y: torch.Tensor

    def chunk_sizes(self) -> np.ndarray:
        return np.ones(len(self.y), dtype=np.int64)

    def best_guess_error(self) -> float:
        return float(self.val_y.var())


def make_toy_data(pool_size: int = POOL_SIZE, val_size: int = VAL_SIZE, seed: int = DATA_SEED) -> ToyData:
    """Generate the pool and validation set deterministically from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(IN_DIM, TEACHER_HIDDEN, generator=g) / IN_DIM**0.5 * 2.0
    w2 = torch.randn(TEACHER_HIDDEN, generator=g) / TEACHER_HIDDEN**0.5

    def teacher(x):
        return torch.tanh(x @ w1) @ w2

    probe = teacher(torch.randn(8192, IN_DIM, generator=g))
    scale = 1.0 / probe.std()
    x = torch.randn(pool_size + val_size, IN_DIM, generator=g)
    y = teacher(x) * scale + NOISE_STD * torch.randn(pool_size + val_size, generator=g)
    return ToyData("examples", x[:pool_size], y[:pool_size], x[pool_size:], y[pool_size:])


def load_toy_npz(path: str) -> ToyData:
    """User data for toy: an .npz with arrays x, y, val_x, val_y (for experiments with own targets)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {path}: no such file")
    try:
        z = np.load(p)
        arrays = {k: torch.as_tensor(z[k], dtype=torch.float32) for k in ("x", "y", "val_x", "val_y")}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"--data {path}: not an .npz with arrays x, y, val_x, val_y ({exc})") from None
    return ToyData("examples", **arrays)


class ToyTask(TensorTask):
    def __init__(self, data: ToyData, chunk_ids):
        super().__init__(data.x, data.y, chunk_ids)
        self.data = data

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(model(x).float(), y)

    def evaluate(self, model: nn.Module, device: str) -> tuple[float, float]:
        return evaluate_toy(model, self.data, device)


@torch.no_grad()
def evaluate_toy(model: nn.Module, data: ToyData, device: str = "cpu") -> tuple[float, float]:
    was_training = model.training
    model.eval()
    mse = F.mse_loss(model(data.val_x.to(device)).float(), data.val_y.to(device)).item()
    model.train(was_training)
    return mse, mse


_SCALES = {
    "smoke": Scale(64, 4, TrainSettings(batch_size=32, max_steps=150, max_rounds=6, min_round_steps=25, patience=2),
                   {"width": 8, "layers": 1}, 1e-2, min_width=4, max_width=32),
    "quick": Scale(64, 8, TrainSettings(batch_size=64, max_steps=1500, max_rounds=40, min_round_steps=50, patience=3),
                   {"width": 16, "layers": 2}, 1e-2, min_width=4, max_width=256),
    "full": Scale(32, 10, TrainSettings(batch_size=128, max_steps=20000, max_rounds=200, min_round_steps=100, patience=5),
                  {"width": 16, "layers": 2}, 5e-3, min_width=4, max_width=1024),
}


class ToyDomain:
    """``toy``: MLP students of a fixed random teacher; validation MSE; floor 0.01."""

    name = "toy"
    units = ("examples",)
    default_data = "synthetic:toy"
    size_knobs = ("width", "layers")
    grow_knob = "width"

    def metric(self, unit: str) -> MetricInfo:
        self._check_unit(unit)
        return MetricInfo("val_mse", "validation mean squared error (floor 0.01 = noise variance)")

    def scale(self, budget: str, unit: str) -> Scale:
        self._check_unit(unit)
        return _SCALES[budget]

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> ToyData:
        self._check_unit(unit)
        n = generated_pool(self.name, pool_size, POOL_SIZE, MAX_POOL_SIZE, data_path)
        return load_toy_npz(data_path) if data_path else make_toy_data(pool_size=n)

    def build_model(self, size: Mapping[str, int], data: ToyData) -> MLP:
        return MLP(data.x.shape[1], int(size["width"]), int(size["layers"]))

    def count_params(self, size: Mapping[str, int], data: ToyData) -> int:
        return mlp_params(data.x.shape[1], int(size["width"]), int(size["layers"]))

    def train_flops(self, n_params: float, units: float) -> float:
        """6 * N * units: a dense net spends ~2N FLOPs per unit forward and ~4N backward (one unit is one example)."""
        return 6.0 * n_params * units

    def train(self, spec: TrialSpec, data: ToyData, chunk_ids, log: LogFn, device: str = "cpu") -> tuple[TrialResult, nn.Module]:
        def build():
            return self.build_model(spec.size, data), ToyTask(data, chunk_ids)

        return train_trial(spec, build, self.count_params(spec.size, data), log, device)

    def evaluate(self, model: nn.Module, data: ToyData, device: str = "cpu") -> tuple[float, float]:
        return evaluate_toy(model, data, device)

    def _check_unit(self, unit: str) -> None:
        if unit not in self.units:
            raise ValueError(f"domain toy has no unit {unit!r}; its unit is 'examples'")


class ToyPredictor:
    """A registered toy student (`domains.serve`): input columns ``x0`` .. ``x{d-1}`` (d = 8 for
    the generated data), one number each; output column ``y``, the student's prediction."""

    params: dict[str, int] = {}

    def __init__(self, model: MLP, in_dim: int):
        self.model = model
        self.inputs = tuple(f"x{i}" for i in range(in_dim))

    @classmethod
    def export(cls, data: ToyData) -> Export:
        row = data.val_x[0].tolist()
        return Export({"in_dim": len(row)}, {f"x{i}": [v] for i, v in enumerate(row)})

    @classmethod
    def load(cls, config, files, state) -> "ToyPredictor":
        d = int(config["settings"]["in_dim"])
        model = MLP(d, int(config["size"]["width"]), int(config["size"]["layers"]))
        model.load_state_dict(state)
        return cls(model, d)

    def predict(self, columns, params) -> dict[str, list]:
        try:
            x = torch.tensor([columns[c] for c in self.inputs], dtype=torch.float32).T   # (rows, d)
        except (TypeError, ValueError):
            raise ValueError(f"columns {', '.join(self.inputs)} must hold numbers") from None
        return {"y": self.model(x).tolist()}
