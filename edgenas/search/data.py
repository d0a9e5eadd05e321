"""Datasets for search and retraining, held in memory as uint8 tensors.

- ``fashion-mnist`` (default): Debian's ``dataset-fashion-mnist`` (real data, installs offline),
  read from ``/usr/share/datasets/fashion-mnist`` or ``--data fashion-mnist:DIR``;
- ``cifar10:DIR``: the python-pickle batches (``data_batch_1..5``, ``test_batch``);
- ``folder:DIR``: ImageFolder layout ``DIR/{train,test}/<class>/<image>`` (``test`` optional);
- ``synthetic``: random images, for smoke tests only (never reported as a result).

Three disjoint splits: ``weights`` (supernet / child weight steps, retraining), ``arch``
(architecture steps, rewards, candidate ranking, choosing among retrained candidates) and
``test`` (reported once, never used for a decision).
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgenas.errors import InputError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


@dataclass
class Split:
    x: torch.Tensor  # uint8 N x C x H x W
    y: torch.Tensor  # int64 N

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataSplits:
    name: str
    weights: Split
    arch: Split
    test: Split
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    synthetic: bool = False

    def describe(self) -> dict:
        return {"dataset": self.name, "weights": len(self.weights), "arch": len(self.arch), "test": len(self.test),
                "classes": self.classes, "image": list(self.weights.x.shape[1:]), "synthetic": self.synthetic}


class Batches:
    """Shuffled mini-batches of one split, converted to the space's input (size, channels, normalised)."""

    def __init__(self, split: Split, data: DataSplits, batch_size: int, input_shape, seed: int, augment=False):
        self.split, self.data, self.batch_size = split, data, batch_size
        self.input_shape, self.augment = tuple(input_shape), augment
        self.gen = torch.Generator().manual_seed(seed)
        self._order, self._pos = None, 0

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self._order, "pos": self._pos}

    def load_state_dict(self, s: dict) -> None:
        self.gen.set_state(s["gen"])
        self._order, self._pos = s["order"], s["pos"]

    def next(self):
        n = len(self.split)
        if self._order is None or self._pos + self.batch_size > n:
            self._order, self._pos = torch.randperm(n, generator=self.gen), 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return prepare(self.split.x[idx], self.data, self.input_shape, self.augment, self.gen), self.split.y[idx]

    def epoch(self, batch_size: int | None = None):
        """Every example once, in order (evaluation)."""
        bs = batch_size or self.batch_size
        for i in range(0, len(self.split), bs):
            yield prepare(self.split.x[i:i + bs], self.data, self.input_shape), self.split.y[i:i + bs]


def prepare(x_u8: torch.Tensor, data: DataSplits, input_shape, augment: bool = False, gen=None) -> torch.Tensor:
    """uint8 images -> float input of the space's (C, H, W): resize, match channels, normalise."""
    x = x_u8.float().div_(255.0)
    c, h, w = input_shape
    if augment:  # random crop with 2-px padding and horizontal flip: cheap, standard
        pad = 2
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        i, j = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
        x = x[:, :, i:i + x_u8.shape[2], j:j + x_u8.shape[3]]
        if bool(torch.rand(1, generator=gen) < 0.5):
            x = x.flip(3)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c != 1 else x.mean(dim=1, keepdim=True)
    if x.shape[2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.contiguous()


# ---- loaders ---------------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root: Path = FMNIST_DIR):
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise InputError(f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}); install it with "
                         f"'apt-get install dataset-fashion-mnist' or give --data fashion-mnist:DIR")
    xtr, ytr, xte, yte = (_read_idx(root / n) for n in names)
    return xtr[:, None], ytr, xte[:, None], yte, 10, (FMNIST_MEAN,), (FMNIST_STD,)


# What a CIFAR-10 batch pickle may name: numpy's array/scalar rebuilders and nothing else. Dicts, lists,
# bytes, str and numbers need no global at all. Anything else (os.system, builtins.eval, ...) is refused
# before it can run.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
MAX_PICKLE_BYTES = 1 << 30


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file never needs")


def load_plain_pickle(path: Path):
    """Unpickle a data file that may hold only numpy arrays, dicts, lists, bytes, strings and numbers."""
    path = Path(path)
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise InputError(f"{path} is larger than {MAX_PICKLE_BYTES >> 20} MiB; not a CIFAR-10 batch")
    try:
        with open(path, "rb") as f:
            return _PlainUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - a malformed pickle raises almost anything; none of it ran code
        raise InputError(f"{path} is not a plain data pickle ({e}); refused without running it") from None


def load_cifar10(root: Path):
    def batch(name):
        p = root / name
        if not p.exists():
            raise InputError(f"CIFAR-10 batch {p} not found; expected the python version "
                             f"(data_batch_1..5, test_batch) in {root}")
        d = load_plain_pickle(p)
        data, labels = (d.get(b"data"), d.get(b"labels")) if isinstance(d, dict) else (None, None)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
                or not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
            raise InputError(f"CIFAR-10 batch {p} does not hold b'data' (N x 3072 uint8) and N b'labels'; "
                             f"expected the python version of CIFAR-10")
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
            raise InputError(f"CIFAR-10 batch {p} has labels outside 0..9")
        return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte, 10,
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def load_folder(root: Path):
    from PIL import Image

    def read(split_dir: Path, classes):
        xs, ys = [], []
        for ci, cls in enumerate(classes):
            for p in sorted((split_dir / cls).iterdir()):
                if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                    continue
                img = np.asarray(Image.open(p).convert("RGB").resize((32, 32)), dtype=np.uint8)
                xs.append(img.transpose(2, 0, 1))
                ys.append(ci)
        return np.stack(xs), np.array(ys)

    train_dir = root / "train" if (root / "train").is_dir() else root
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and d.name != "test")
    if len(classes) < 2:
        raise InputError(f"{train_dir} needs one sub-directory per class (ImageFolder layout), found {classes}")
    xtr, ytr = read(train_dir, classes)
    if (root / "test").is_dir():
        xte, yte = read(root / "test", classes)
    else:  # no test split given: hold out 20%
        perm = np.random.default_rng(0).permutation(len(ytr))
        cut = len(ytr) // 5
        xte, yte, xtr, ytr = xtr[perm[:cut]], ytr[perm[:cut]], xtr[perm[cut:]], ytr[perm[cut:]]
    mean = tuple(float(v) for v in (xtr / 255.0).mean(axis=(0, 2, 3)))
    std = tuple(float(v) for v in (xtr / 255.0).std(axis=(0, 2, 3)))
    return xtr, ytr, xte, yte, len(classes), mean, std


def load_synthetic(shape=(1, 28, 28), classes=10, n=2000):
    """Random images whose class shifts the mean (learnable): smoke tests only."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = (rng.normal(0, 40, (n, *shape)) + 100 + 10 * y[:, None, None, None]).clip(0, 255).astype(np.uint8)
    return x[: n * 4 // 5], y[: n * 4 // 5], x[n * 4 // 5:], y[n * 4 // 5:], classes, (0.5,) * shape[0], (0.2,) * shape[0]


def load_data(spec: str = "fashion-mnist", weights_size: int | None = None, arch_size: int | None = None,
              test_size: int | None = None, seed: int = 0) -> DataSplits:
    """``spec``: fashion-mnist[:DIR] | cifar10:DIR | folder:DIR | synthetic. Sizes subsample (None = all)."""
    kind, _, arg = spec.partition(":")
    if kind == "fashion-mnist":
        raw = load_fashion_mnist(Path(arg) if arg else FMNIST_DIR)
    elif kind == "cifar10":
        if not arg:
            raise InputError("cifar10 needs a path: --data cifar10:/path/to/cifar-10-batches-py")
        raw = load_cifar10(Path(arg))
    elif kind == "folder":
        if not arg or not Path(arg).is_dir():
            raise InputError(f"folder data needs an existing directory: --data folder:DIR (got {arg!r})")
        raw = load_folder(Path(arg))
    elif kind == "synthetic":
        raw = load_synthetic()
    else:
        raise InputError(f"unknown data {spec!r}; use fashion-mnist[:DIR], cifar10:DIR, folder:DIR or synthetic")
    xtr, ytr, xte, yte, classes, mean, std = raw
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ytr))
    n_arch = arch_size if arch_size is not None else len(ytr) // 6
    n_arch = min(n_arch, len(ytr) // 2)
    arch_idx = perm[:n_arch]
    w_idx = perm[n_arch:]
    if weights_size is not None:
        w_idx = w_idx[:weights_size]
    te_idx = rng.permutation(len(yte))[:test_size] if test_size is not None else np.arange(len(yte))

    def split(x, y, idx):
        return Split(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(np.asarray(y[idx], dtype=np.int64)))

    return DataSplits(kind, split(xtr, ytr, w_idx), split(xtr, ytr, arch_idx), split(xte, yte, te_idx), classes,
                      tuple(mean), tuple(std), synthetic=kind == "synthetic")


# Images per forward call when evaluating without gradients: fewer, larger calls than a training
# batch. On the proxyless/small networks 512 took 0.6-0.9x the time of 256 (2-vCPU VM, loaded) and
# 1000 no less than 512.
EVAL_BATCH = 512


def accuracy(model, batches: Batches, limit: int | None = None, device="cpu", batch: int = 256) -> float:
    """Top-1 accuracy on (the first ``limit`` examples of) a split, in eval mode, ``batch`` images a call."""
    was = model.training
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches.epoch(batch):
            out = model(x.to(device))
            correct += int((out.argmax(1).cpu() == y).sum())
            total += len(y)
            if limit and total >= limit:
                break
    model.train(was)
    return correct / max(total, 1)
