"""The model zoo: small torch models trained in seconds on datasets scikit-learn ships, and a
character-level GPT trained in minutes on the docstrings of Python's standard library.

Each entry trains deterministically (fixed seeds, single thread) so its ONNX bytes, and
therefore its model id, are stable for a given torch version (and, for the GPT, Python version:
its text is the installed standard library's).
"""

from __future__ import annotations

import math
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
    build: Callable[..., "TrainedModel"]  # build(), or build(size) for a size in ``sizes``
    sizes: tuple[str, ...] = ()  # named sizes, the default first (none: one size)
    batch_axis: bool = True  # exported with a symbolic batch axis (the GPT: static, see CharGPT)


@dataclass
class TrainedModel:
    module: nn.Module
    data: Dataset
    metric_name: str
    metric: float
    vocab: list[str] | None = None  # a language model's characters: output index -> character


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


class Upsampler(nn.Module):
    """8x8 image in [0, 1] -> 16x16 image in [0, 1]: a learned upsampler whose input is what the
    zoo ``generator`` outputs, so a token of it can prove it was made from a generator token's
    image (lineage). A stride-2 transposed convolution, a 3x3 refinement, a sigmoid."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(1, 4, 4, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(4, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


def build_upsampler() -> TrainedModel:
    """Trained to reproduce the digits resized to 16x16 (bicubic) from their 8x8 images; its
    metric is the held-out mean squared error."""
    torch.manual_seed(SEED)
    d = _digits()

    def big(x: np.ndarray) -> np.ndarray:
        up = nn.functional.interpolate(torch.from_numpy(x), size=(16, 16), mode="bicubic", align_corners=False)
        return up.clamp(0, 1).numpy().astype(np.float32)

    data = Dataset("scikit-learn digits, 8x8 -> 16x16 (bicubic targets)", d.x_train, big(d.x_train),
                   d.x_test, big(d.x_test))
    return _decoder(Upsampler(), data, 60)


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


def _pca(flat: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, top-``k`` principal directions and their spreads of the rows of ``flat``."""
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[:k].T
    return mean, basis, ((flat - mean) @ basis).std(0)


def _decoder(module: nn.Module, data: Dataset, epochs: int) -> TrainedModel:
    """Train a decoder from codes to images; its metric is the held-out reconstruction error."""
    m = _train(module, data.x_train, data.y_train, nn.functional.mse_loss, epochs)
    with torch.no_grad():
        mse = float(nn.functional.mse_loss(m(torch.from_numpy(data.x_test)),
                                           torch.from_numpy(data.y_test)))
    return TrainedModel(m, data, "reconstruction_mse", mse)


def build_generator() -> TrainedModel:
    torch.manual_seed(SEED)
    d = _digits()
    mean, basis, sd = _pca(d.x_train.reshape(len(d.x_train), -1), DigitDecoder.latent)
    data = Dataset("scikit-learn digits, decoded from (PCA latent, class)",
                   _decoder_codes(d.x_train, d.y_train, basis, mean, sd), d.x_train,
                   _decoder_codes(d.x_test, d.y_test, basis, mean, sd), d.x_test)
    return _decoder(DigitDecoder(), data, 80)


class DigitDecoder28(nn.Module):
    """Conditional generator: (8-d latent ‖ one-hot class) -> 28x28 image in [0, 1], a DCGAN
    generator's shape (EZKL's mnist_gan's) at small size: a dense layer to 16 maps of 7x7, then
    two stride-2 transposed convolutions to 14x14 and 28x28, and a sigmoid. 17 k parameters;
    366,494 rows at ezkl's gen_settings defaults as exported, 176,887 once compile rewrites each
    transposed convolution as one Conv per output phase: one circuit fits this machine."""

    latent = 8

    def __init__(self):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(self.latent + 10, 16 * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.ReLU(),
                                nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1), nn.Sigmoid())

    def forward(self, z):
        return self.up(self.project(z).reshape(-1, 16, 7, 7))


def build_generator28() -> TrainedModel:
    """Latent = whitened top principal components of the image's deviation from its class's
    mean image, so the class alone decides the digit: latent 0 draws the class's typical digit,
    other latents its variations (the 8x8 generator's latent is the whole image's, which
    leaves its class input little to do)."""
    torch.manual_seed(SEED)
    d = _digits_28()
    class_means = np.stack([d.x_train[d.y_train == c].mean(0) for c in range(10)])
    mean, basis, sd = _pca(d.x_train - class_means[d.y_train], DigitDecoder28.latent)

    def codes(x, y):
        return _decoder_codes(x - class_means[y], y, basis, mean, sd)

    data = Dataset("scikit-learn digits resized to 28x28, decoded from (class-deviation PCA "
                   "latent, class)", codes(d.x_train, d.y_train), d.x_train.reshape(-1, 1, 28, 28),
                   codes(d.x_test, d.y_test), d.x_test.reshape(-1, 1, 28, 28))
    return _decoder(DigitDecoder28(), data, 60)


GPT_CONTEXT = 64  # characters in a prompt: nanoGPT's block_size
GPT_WARMUP = 100  # steps of linear learning-rate warm-up


@dataclass(frozen=True)
class GPTSize:
    d_model: int
    layers: int
    heads: int
    steps: int  # AdamW steps, each on ``batch`` random windows of the training text
    batch: int
    lr: float  # the peak: linear warm-up, then cosine decay (nanoGPT's schedule)


# Rows at ezkl's gen_settings defaults (public input and output, fixed params, batch 1) of the
# graph after proofmint's rewrite of the -inf mask, 4 blocks of 4 heads, untrained weights:
#   d_model  params   one circuit  attention half  MLP half   head (ln_f + lm_head)
#   32        56,000  10,130,294   1,816,768         776,128  16,722
#   48       120,864  11,709,238   1,930,368       1,088,384  22,289
#   64       210,304  14,421,909   2,185,408       1,542,080  30,066
# Trained, the default (48) is 12,355,510 rows; an attention half 2,010,240 (1,977,984 with
# hashed ends, as a segment has), an MLP half 1,169,792, a whole block 3,132,418. Rows are
# mostly structural (4 heads x 64 x 64 softmax entries per block: the attention core alone is
# 1.6 M), so d_model moves them little. At 48 one circuit needs 2^24 rows (a ~64 GiB key, far
# beyond this 24 GB machine) while each residual half of a block, where a segment can end,
# stays under 2^21 rows (an 8 GiB key); at 64 the attention half passes 2^21.
# "quick" is the same shape at toy width, for tests. "small": 4 blocks of 2 heads at width 16,
# 5,340,390 rows (a ~16 GiB key: over this machine's budget); its attention halves stay at
# 764,992 rows even with the 1/sqrt(d) moved onto q (rewrite.scale_first), so its 8 segments
# need logrows 20. "tiny", 1 head, is proven here: under --max-key 11.8G, 9 segments (the
# embedding alone, then 8 halves of 409,536-480,256 rows, logrows 19) whose chain keeps the
# logits within 0.30 % at scale 11; each half's key is 9.6-10.6 GB (Freivalds' columns for the
# products of computed tensors and an exp table of 360 k rows), 81.8 GB in all, more than the
# free disk, so each proof makes its key first (keys on demand); one inference in 49 minutes
# at a 22.1 GB peak (bench/results/segmented-cpu-2core/gpt-tiny.md). At 48
# the 8 segments are logrows 21, and a key setup at logrows 21-22 did not finish within 35 minutes.
GPT_SIZES = {
    "default": GPTSize(d_model=48, layers=4, heads=4, steps=2000, batch=32, lr=3e-3),
    "quick": GPTSize(d_model=16, layers=2, heads=4, steps=600, batch=32, lr=1e-2),
    "small": GPTSize(d_model=16, layers=4, heads=2, steps=1500, batch=32, lr=1e-2),
    "tiny": GPTSize(d_model=16, layers=4, heads=1, steps=1500, batch=32, lr=1e-2),
}


def stdlib_text() -> str:
    """Every docstring (module, class, function) of the standard library's top-level
    pure-Python modules, in module-name order, as printable ASCII and newlines: about 1 MB of
    English about code that ships with every Python (PSF License). Read from the stdlib folder
    with ast: nothing is imported, and no module of the same name elsewhere can stand in."""
    import ast
    import sys
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for name in sorted(sys.stdlib_module_names):
        for path in (root / f"{name}.py", root / name / "__init__.py"):
            if path.is_file():  # else built in or compiled: no source here
                docs += [doc for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                         if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                              ast.AsyncFunctionDef))
                         and (doc := ast.get_docstring(node))]
    text = "\n\n".join(docs).replace("\t", "    ")
    return "".join(ch for ch in text if ch == "\n" or " " <= ch <= "~")


def stdlib_chars() -> tuple[Dataset, list[str]]:
    """The GPT's data and vocabulary (index -> character). As nanoGPT splits its text, the last
    10 % is held out; the test set is its consecutive 64-character windows, each with the
    character that follows it; the training arrays are the training text's character ids and,
    position for position, the next character's."""
    import sys

    text = stdlib_text()
    vocab = sorted(set(text))
    lookup = np.zeros(128, dtype=np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    cut = int(0.9 * len(ids))
    train, test = ids[:cut], ids[cut:]
    starts = np.arange(0, len(test) - GPT_CONTEXT, GPT_CONTEXT)
    name = (f"Python {sys.version.split()[0]} standard-library docstrings ({len(text):,} "
            f"characters, {len(vocab)} symbols; last 10 % held out)")
    return Dataset(name, train[:-1].astype(np.uint8), train[1:].astype(np.uint8),
                   test[starts[:, None] + np.arange(GPT_CONTEXT)], test[starts + GPT_CONTEXT]), vocab


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention as nanoGPT writes it: one projection to q, k, v, heads by view and
    transpose, a causal mask by masked_fill(-inf) from a registered tril buffer, softmax."""

    def __init__(self, size: GPTSize):
        super().__init__()
        self.c_attn = nn.Linear(size.d_model, 3 * size.d_model)
        self.c_proj = nn.Linear(size.d_model, size.d_model)
        self.n_head, self.n_embd = size.heads, size.d_model
        self.register_buffer("bias", torch.tril(torch.ones(GPT_CONTEXT, GPT_CONTEXT))
                             .view(1, 1, GPT_CONTEXT, GPT_CONTEXT))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPTMLP(nn.Module):
    """nanoGPT's MLP: 4x as wide, GELU."""

    def __init__(self, size: GPTSize):
        super().__init__()
        self.c_fc = nn.Linear(size.d_model, 4 * size.d_model)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * size.d_model, size.d_model)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GPTBlock(nn.Module):
    """Pre-LayerNorm residual block: attention, then the MLP."""

    def __init__(self, size: GPTSize):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(size.d_model), CausalSelfAttention(size)
        self.ln_2, self.mlp = nn.LayerNorm(size.d_model), GPTMLP(size)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CharGPT(nn.Module):
    """nanoGPT (its model.py) over characters: token + position embeddings, pre-LayerNorm
    blocks, a final LayerNorm and a linear head tied to the token embedding, nanoGPT's
    initialisation. ``forward`` gives the logits of the character after the last position only
    (nanoGPT's generation path; the final norm is per position, so it is taken there alone):
    one proof, one next-character distribution. ``logits`` gives every position's, to train.

    Exported with batch 1 fixed: nanoGPT's view(B, T, ...) leaves every later tensor with an
    anonymous batch dimension (torch names it unk__N), which ezkl cannot fix in a segment cut
    there (its ``variables`` name only the graph input's axis)."""

    def __init__(self, vocab: int, size: GPTSize):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, size.d_model), nn.Embedding(GPT_CONTEXT, size.d_model)
        self.h = nn.ModuleList(GPTBlock(size) for _ in range(size.layers))
        self.ln_f = nn.LayerNorm(size.d_model)
        self.lm_head = nn.Linear(size.d_model, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:  # residual projections scaled down with depth, as nanoGPT does
                depth = math.sqrt(2 * size.layers) if name.endswith("c_proj.weight") else 1.0
                nn.init.normal_(p, 0.0, 0.02 / depth)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def _blocks(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return x

    def logits(self, idx):
        return self.lm_head(self.ln_f(self._blocks(idx)))

    def forward(self, idx):
        return self.lm_head(self.ln_f(self._blocks(idx)[:, -1, :]))


def _train_gpt(module: CharGPT, x: np.ndarray, y: np.ndarray, size: GPTSize) -> CharGPT:
    """nanoGPT's loop: random windows of the text, the next-character loss at every position,
    AdamW with linear warm-up, then cosine decay."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
    window = torch.arange(GPT_CONTEXT)
    opt = torch.optim.AdamW(module.parameters(), lr=size.lr)
    for step in range(size.steps):
        for group in opt.param_groups:
            group["lr"] = (size.lr * min(1.0, (step + 1) / GPT_WARMUP)
                           * 0.5 * (1 + math.cos(math.pi * step / size.steps)))
        at = torch.randint(len(xt) - GPT_CONTEXT, (size.batch, 1), generator=gen) + window
        opt.zero_grad()
        nn.functional.cross_entropy(module.logits(xt[at]).flatten(0, 1), yt[at].flatten()).backward()
        opt.step()
    return module.eval()


def build_gpt(size: str = "default") -> TrainedModel:
    """The character-level GPT (``size`` from GPT_SIZES). Metric: how often its most likely
    next character is the held-out text's: 52 % for the default (3 minutes on one core), 26 %
    for "quick" (20 s); always guessing the commonest character, a space, scores 17 %."""
    torch.manual_seed(SEED)
    data, vocab = stdlib_chars()
    shape = GPT_SIZES[size]
    m = _train_gpt(CharGPT(len(vocab), shape), data.x_train, data.y_train, shape)
    return TrainedModel(m, data, "next_char_accuracy", _accuracy(m, data.x_test, data.y_test), vocab)


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
        ZooEntry("upsampler", "learned 2x upsampler: the generator's 8x8 image -> 16x16 (a lineage child)",
                 "generation", "digits", (1, 1, 8, 8), build_upsampler),
        ZooEntry("generator28", "conditional transposed-conv decoder: latent + class -> 28x28 digit image",
                 "generation", "digits 28x28", (1, 18), build_generator28),
        ZooEntry("gpt", "character-level nanoGPT (4 blocks, 64-char context): next-character logits",
                 "classification", "python stdlib docstrings", (1, GPT_CONTEXT), build_gpt,
                 sizes=tuple(GPT_SIZES), batch_axis=False),
    ]
}
