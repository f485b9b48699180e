"""Build ``fashion_mnist_small.npz``, the image domain's embedded default data.

Reads the four standard Fashion-MNIST IDX files (as Debian's ``dataset-fashion-mnist`` installs
them under /usr/share/datasets/fashion-mnist/, or as downloaded by users), and keeps a
class-balanced, seeded sample: 1,200 training images per class from the training set and 250
validation images per class from the test set (12,000 + 2,500 images, 28x28, uint8).

    apt-get install dataset-fashion-mnist
    python domains/data/build_fashion_mnist.py [--src /usr/share/datasets/fashion-mnist]

Fashion-MNIST: Copyright (c) 2017 Zalando SE, MIT licence (https://github.com/zalandoresearch/fashion-mnist).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 1200
VAL_PER_CLASS = 250
SEED = 2017
OUT = Path(__file__).with_name("fashion_mnist_small.npz")


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random examples of every class, in one random order."""
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                          for c in np.unique(labels)])
    return rng.permutation(idx)


def main() -> None:
    from domains.image import read_idx_dir   # the same reader `--data DIR` uses

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()
    (tx, ty), (vx, vy) = read_idx_dir(args.src)
    rng = np.random.default_rng(SEED)
    ti, vi = balanced(ty, TRAIN_PER_CLASS, rng), balanced(vy, VAL_PER_CLASS, rng)
    np.savez_compressed(OUT, train_x=tx[ti], train_y=ty[ti], val_x=vx[vi], val_y=vy[vi])
    print(f"wrote {OUT}: {len(ti)} training and {len(vi)} validation images, {OUT.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
