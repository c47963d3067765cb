"""The model zoo: small torch models trained in seconds on datasets scikit-learn ships.

Each entry trains deterministically (fixed seeds, single thread) so its ONNX bytes, and
therefore its model id, are stable for a given torch version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

SEED = 0


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    task: str  # "classification" or "generation"
    dataset: str
    input_shape: tuple[int, ...]  # with the leading batch dimension of 1
    build: Callable[[], "TrainedModel"]


@dataclass
class TrainedModel:
    module: nn.Module
    data: Dataset
    metric_name: str
    metric: float


def _split(x: np.ndarray, y: np.ndarray, name: str) -> Dataset:
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(x))
    cut = int(0.75 * len(x))
    tr, te = order[:cut], order[cut:]
    return Dataset(name, x[tr].astype(np.float32), y[tr], x[te].astype(np.float32), y[te])


def _standardize(x_train: np.ndarray, x: np.ndarray) -> np.ndarray:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    return ((x - mu) / sd).astype(np.float32)


def _wine() -> Dataset:
    from sklearn.datasets import load_wine

    d = load_wine()
    ds = _split(d.data, d.target, "scikit-learn wine (178 samples, 13 features, 3 classes)")
    return Dataset(ds.name, _standardize(ds.x_train, ds.x_train), ds.y_train,
                   _standardize(ds.x_train, ds.x_test), ds.y_test)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    return _split(x, d.target, "scikit-learn digits (1797 8x8 images, 10 classes)")


def _train(module: nn.Module, x: np.ndarray, target: np.ndarray, loss_fn, epochs: int,
           lr: float = 1e-2, batch: int = 64) -> nn.Module:
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(target)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(module(xt[idx]), yt[idx]).backward()
            opt.step()
    return module.eval()


def _accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(-1).numpy() == y).mean())


class MLP(nn.Module):
    """n_in-hidden-n_out with a ReLU: 13-16-3 on wine; 784-56-10 is the MNIST MLP of the public
    ZKML-Benchmark, for cross-reference."""

    def __init__(self, n_in: int, hidden: int, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    """LeNet-style CNN for 8x8 digits: conv-relu-pool, conv-relu, dense."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(4, 8, 3), nn.ReLU(),
        )
        self.head = nn.Linear(8 * 2 * 2, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class TinyTransformer(nn.Module):
    """One transformer block over the 8 rows of a digit, each row a token.

    Token embedding is a linear map of the row's 8 pixels (as in ViT patch embeddings; a
    lookup-table embedding would make the circuit gather on a private index), plus a learned
    position embedding, one attention head, a ReLU MLP, mean pooling and a classifier.
    """

    def __init__(self, seq: int = 8, width: int = 8, dim: int = 16):
        super().__init__()
        self.embed = nn.Linear(width, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq, dim))
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.head = nn.Linear(dim, 10)
        self.scale = dim ** -0.5

    def forward(self, x):  # x: (batch, seq, width)
        h = self.embed(x) + self.pos
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) * self.scale, dim=-1)
        h = h + att @ self.v(h)
        h = h + self.mlp(h)
        return self.head(h.mean(1))


class DigitDecoder(nn.Module):
    """Conditional generator: (4-d latent ‖ one-hot class) -> 8x8 image in [0, 1]."""

    latent = 4

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(self.latent + 10, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z).reshape(-1, 1, 8, 8)


def build_mlp() -> TrainedModel:
    torch.manual_seed(SEED)
    data = _wine()
    m = _train(MLP(13, 16, 3), data.x_train, data.y_train, nn.functional.cross_entropy, 60)
    return TrainedModel(m, data, "accuracy", _accuracy(m, data.x_test, data.y_test))


def build_lenet() -> TrainedModel:
    torch.manual_seed(SEED)
    data = _digits()
    m = _train(LeNet(), data.x_train, data.y_train, nn.functional.cross_entropy, 30)
    return TrainedModel(m, data, "accuracy", _accuracy(m, data.x_test, data.y_test))


def _digits_28() -> Dataset:
    """The 8x8 digits resized to MNIST's 28x28 (bilinear) and flattened: MNIST-shaped inputs
    without a download (MNIST itself is not shipped with any package here)."""
    d = _digits()
    up = nn.functional.interpolate(torch.from_numpy(np.concatenate([d.x_train, d.x_test])),
                                   size=(28, 28), mode="bilinear", align_corners=False)
    flat = up.reshape(len(up), 784).numpy().astype(np.float32)
    n = len(d.x_train)
    return Dataset("scikit-learn digits resized to 28x28 (MNIST-shaped, 784 features)",
                   flat[:n], d.y_train, flat[n:], d.y_test)


def build_mnist_mlp() -> TrainedModel:
    torch.manual_seed(SEED)
    data = _digits_28()
    m = _train(MLP(784, 56, 10), data.x_train, data.y_train, nn.functional.cross_entropy, 20, lr=1e-3)
    return TrainedModel(m, data, "accuracy", _accuracy(m, data.x_test, data.y_test))


def build_transformer() -> TrainedModel:
    torch.manual_seed(SEED)
    d = _digits()
    data = Dataset(d.name + ", rows as tokens", d.x_train[:, 0], d.y_train, d.x_test[:, 0], d.y_test)
    m = _train(TinyTransformer(), data.x_train, data.y_train, nn.functional.cross_entropy, 40,
               lr=5e-3)
    return TrainedModel(m, data, "accuracy", _accuracy(m, data.x_test, data.y_test))


def _decoder_codes(images: np.ndarray, labels: np.ndarray, basis: np.ndarray,
                   mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Latent = whitened top principal components of the image, then the one-hot label."""
    z = ((images.reshape(len(images), -1) - mean) @ basis) / sd
    return np.concatenate([z, np.eye(10)[labels]], axis=1).astype(np.float32)


def build_generator() -> TrainedModel:
    torch.manual_seed(SEED)
    d = _digits()
    flat = d.x_train.reshape(len(d.x_train), -1)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[: DigitDecoder.latent].T
    sd = ((flat - mean) @ basis).std(0)
    x_train = _decoder_codes(d.x_train, d.y_train, basis, mean, sd)
    x_test = _decoder_codes(d.x_test, d.y_test, basis, mean, sd)
    data = Dataset("scikit-learn digits, decoded from (PCA latent, class)",
                   x_train, d.x_train, x_test, d.x_test)
    m = _train(DigitDecoder(), x_train, d.x_train, nn.functional.mse_loss, 80)
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(m(torch.from_numpy(x_test)),
                                           torch.from_numpy(d.x_test)))
    return TrainedModel(m, data, "reconstruction_mse", mse)


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("mlp", "tabular MLP 13-16-3 on wine", "classification", "wine", (1, 13),
                 build_mlp),
        ZooEntry("lenet", "LeNet-style CNN on 8x8 digits", "classification", "digits",
                 (1, 1, 8, 8), build_lenet),
        ZooEntry("transformer", "one attention-head transformer block, digit rows as tokens",
                 "classification", "digits", (1, 8, 8), build_transformer),
        ZooEntry("mnist_mlp", "MNIST-shaped MLP 784-56-10 (the ZKML-Benchmark model)",
                 "classification", "digits 28x28", (1, 784), build_mnist_mlp),
        ZooEntry("generator", "conditional decoder: latent + class -> 8x8 digit image",
                 "generation", "digits", (1, 14), build_generator),
    ]
}
