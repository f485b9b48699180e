"""The image domain: embedded Fashion-MNIST sample, IDX and ImageFolder user data, exact parameter
counts of the small ResNets, one training step, and a smoke study into a real MLflow store."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

import domains
from conftest import run_cli, sqlite_uri
from domains.protocol import DataError, TrialSpec
from scal import keys
from scal.tracking import result_from_run
from search.subsets import SubsetPlan


@pytest.fixture(scope="module")
def image():
    dom = domains.get("image")
    return dom, dom.load("images", max_val_units=200)


def test_embedded_data_is_balanced_fashion_mnist(image):
    dom, data = image
    full = dom.load("images")
    assert full.train_x.shape == (12000, 1, 28, 28) and len(full.val_y) == 2500
    assert np.bincount(full.train_y.numpy()).tolist() == [1200] * 10
    assert data.classes == 10 and data.best_guess_error() == pytest.approx(0.9)
    assert abs(float(full.train_x.mean())) < 1e-3          # normalised with the pool's own statistics


@pytest.mark.parametrize("width,layers", [(2, 1), (4, 2), (8, 1), (6, 3)])
def test_parameter_count_is_exact(image, width, layers):
    dom, data = image
    size = {"width": width, "layers": layers}
    model = dom.build_model(size, data)
    assert dom.count_params(size, data) == sum(p.numel() for p in model.parameters())


def test_one_training_step_at_the_smallest_size(image):
    dom, data = image
    scale = dom.scale("smoke", "images")
    plan = SubsetPlan(data.chunk_sizes(), scale.min_subset, scale.n_subsets)
    spec = TrialSpec("image", "images", scale.min_subset, {"width": scale.min_width, "layers": 1}, scale.lr, 0, "smoke",
                     replace(scale.train, max_steps=1, max_rounds=1, min_round_steps=1))
    logged = []
    result, model = dom.train(spec, data, plan.indices(scale.min_subset), lambda m, s: logged.append(dict(m)))
    assert result.ok and result.steps == 1 and 0.0 <= result.min_val_error <= 1.0
    # top-5 error rides along each round and at the best round; it can only be below top-1
    assert len(logged) == 1 and 0.0 <= logged[0]["val_top5_error"] <= result.min_val_error
    assert result.extra == {"val_top5_error": logged[0]["val_top5_error"]}
    assert result.n_params == sum(p.numel() for p in model.parameters())


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


def test_user_cifar_batches(tmp_path, image):
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
    proc = run_cli(["study", "--domain", "image", "--budget", "smoke", "--data", str(make(tmp_path)),
                    "--tracking-uri", sqlite_uri(tmp_path)], cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: --data") and needle in lines[0], proc.stderr


@pytest.mark.integration
def test_smoke_study_into_mlflow(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_cli(["study", "--domain", "image", "--budget", "smoke", "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [s["size"] for s in summary["subsets"]] == [64, 128, 256]
    client = MlflowClient(uri, uri)
    runs = client.search_runs([summary["experiment_id"]], f"tags.`{keys.PARENT}` = '{summary['parent_run_id']}'",
                              max_results=1000)
    trained = [r for r in runs if keys.REUSED_FROM not in r.data.tags]
    assert len(trained) == summary["n_trials"] > 0 and len(runs) - len(trained) == summary["n_reused"]
    for r in trained:
        # top-1 error is not the loss: a trial's value is the minimum of its error over rounds,
        # at the step where it fell (ties: the lower loss), and the top-5 error of that round
        errors = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_error")}
        losses = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_loss")}
        best_step = min(errors, key=lambda s: (errors[s], losses[s]))
        assert r.data.metrics[keys.M_MIN_VAL_ERROR] == pytest.approx(min(errors.values()))
        assert r.data.metrics[keys.M_BEST_STEP] == best_step
        assert r.data.metrics[keys.M_MIN_VAL_LOSS] == pytest.approx(min(losses.values()))
        top5 = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_top5_error")}
        assert r.data.metrics[keys.best_extra("val_top5_error")] == pytest.approx(top5[best_step])
    for r in runs:
        assert r.data.params[keys.P_DOMAIN] == "image" and "size.layers" in r.data.params
        assert 0.0 <= r.data.metrics[keys.M_MIN_VAL_ERROR] <= 1.0
        top5 = r.data.metrics[keys.best_extra("val_top5_error")]
        assert 0.0 <= top5 <= r.data.metrics[keys.M_MIN_VAL_ERROR]
        assert len(client.get_metric_history(r.info.run_id, "val_top5_error")) == r.data.metrics[keys.M_ROUNDS]
        assert result_from_run(None, r).extra == {"val_top5_error": top5}     # what a resumed study reuses
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and "beta_g" in parent.data.metrics
    assert len(client.search_model_versions(f"name = '{summary['registered_model']}'")) == 3
