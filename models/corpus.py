"""A corpus of ONNX files as other people's exporters write them: every common torch layer and
block, exported by torch's two exporters at old and new opsets, with old and current IR.

Nothing here is tuned for proofmint: the layers are torch's own with seeded random weights
(batch norms with non-trivial running statistics), exported the way their users export them,
each into a folder holding ``model.onnx`` (and, from torch's default exporter, its external
``model.onnx.data``) and one ``input.json``: what a new user brings. ``tests/models`` and
``proofmint bench --corpus`` run it.

Flavours:
- ``o7-ir3`` ... ``o18-ir3``: torch's TorchScript exporter at that opset, every initializer
  also listed among the graph inputs (``keep_initializers_as_inputs``) and the file stamped
  IR 3, as torch.onnx wrote them until 2019 and model collections still ship them;
- ``o7`` ... ``o18``: the same exporter at that opset, current IR;
- ``default``: ``torch.onnx.export`` with no options (torch 2.9+: the dynamo exporter, opset
  20, weights in an external data file).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from proofmint.errors import NotFoundError, UsageError

SEED = 0
OPSETS = (7, 9, 13, 18)
FLAVOURS = tuple(f"o{o}{ir}" for o in OPSETS for ir in ("-ir3", "")) + ("default",)


@dataclass(frozen=True)
class Layer:
    name: str
    build: Callable[[], object]  # a torch.nn.Module, weights seeded
    shape: tuple[int, ...]  # the input's, batch of 1
    low: float = -1.0  # inputs are drawn uniformly from [low, high]
    high: float = 1.0
    tokens: int = 0  # > 0: the input is token ids below this (an embedding's)


def _layers() -> dict[str, Layer]:
    import torch
    from torch import nn

    class Fn(nn.Module):
        """A parameter-free block from a function, with an optional layer before it."""

        def __init__(self, fn, before=None):
            super().__init__()
            self.fn, self.before = fn, before

        def forward(self, x):
            return self.fn(self.before(x) if self.before is not None else x)

    def bn(norm, conv):
        block = nn.Sequential(conv, norm)
        g = torch.Generator().manual_seed(SEED + 1)
        norm.running_mean.copy_(torch.randn(norm.num_features, generator=g) * 0.3)
        norm.running_var.copy_(torch.rand(norm.num_features, generator=g) + 0.5)
        norm.weight.data.copy_(torch.rand(norm.num_features, generator=g) + 0.5)
        norm.bias.data.copy_(torch.randn(norm.num_features, generator=g) * 0.2)
        return block

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Embedding(16, 6), nn.Linear(24, 3)

        def forward(self, idx):
            return self.out(self.emb(idx).flatten(1))

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    class Attention(nn.Module):
        """Single-head attention written out, as older code (and older opsets) have it."""

        def __init__(self, causal=""):
            super().__init__()
            self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.causal = causal
            self.register_buffer("tril", torch.tril(torch.ones(4, 4)))

        def forward(self, x):
            att = self.q(x) @ self.k(x).transpose(1, 2) / 8 ** 0.5
            if self.causal == "index":  # a mask set by index: the exporter writes NonZero + ScatterND
                rows, cols = (self.tril == 0).nonzero(as_tuple=True)
                att = att.clone()
                att[:, rows, cols] = -1e4
            elif self.causal == "fill":  # nanoGPT's own: masked_fill with -inf, exported as Where
                att = att.masked_fill(self.tril == 0, float("-inf"))
            return torch.softmax(att, -1) @ self.v(x)

    class TinyGPT(nn.Module):
        """nanoGPT's shape at toy size: token + position embeddings, one pre-norm block with
        causal attention and a GELU MLP, a final norm and the next-token logits."""

        def __init__(self, causal="fill"):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(16, 8), nn.Embedding(4, 8)
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(8), Attention(causal), nn.LayerNorm(8)
            self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
            self.ln_f, self.head = nn.LayerNorm(8), nn.Linear(8, 16, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            x = x + self.attn(self.ln1(x))
            x = x + self.mlp(self.ln2(x))
            return self.head(self.ln_f(x))

    lin = nn.Linear
    layers = [
        Layer("conv1d_grouped", lambda: nn.Sequential(nn.Conv1d(4, 4, 3, padding=1, groups=2), nn.ReLU()), (1, 4, 8)),
        Layer("conv2d_dilated", lambda: nn.Conv2d(2, 3, 3, dilation=2, padding=2), (1, 2, 6, 6)),
        Layer("conv2d_depthwise", lambda: nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.Conv2d(3, 2, 1)),
              (1, 3, 5, 5)),
        Layer("conv3d", lambda: nn.Conv3d(1, 2, (2, 3, 3), padding=(0, 1, 1)), (1, 1, 3, 4, 4)),
        Layer("batchnorm1d", lambda: bn(nn.BatchNorm1d(3), nn.Conv1d(2, 3, 3)), (1, 2, 8)),
        Layer("batchnorm2d", lambda: bn(nn.BatchNorm2d(3), nn.Conv2d(2, 3, 3)), (1, 2, 5, 5)),
        Layer("batchnorm3d", lambda: bn(nn.BatchNorm3d(2), nn.Conv3d(1, 2, 2)), (1, 1, 3, 4, 4)),
        Layer("maxpool2d_padded", lambda: nn.Sequential(nn.Conv2d(2, 2, 3), nn.MaxPool2d(3, 2, padding=1)),
              (1, 2, 7, 7)),
        Layer("avgpool1d", lambda: nn.Sequential(nn.Conv1d(2, 2, 3), nn.AvgPool1d(2)), (1, 2, 8)),
        Layer("adaptive_avgpool2d", lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1),
                                                         nn.Flatten(), lin(3, 2)), (1, 2, 5, 5)),
        Layer("constant_pad", lambda: nn.Sequential(nn.ConstantPad2d(1, 0.5), nn.Conv2d(2, 2, 3)), (1, 2, 4, 4)),
        Layer("reflection_pad", lambda: nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(2, 2, 3)), (1, 2, 4, 4)),
        Layer("linear", lambda: nn.Sequential(lin(8, 6), nn.ReLU(), lin(6, 3)), (1, 8)),
        Layer("embedding", Embed, (1, 4), tokens=16),
        Layer("layernorm", lambda: nn.Sequential(lin(8, 8), nn.LayerNorm(8)), (1, 4, 8)),
        Layer("attention", SelfAttention, (1, 4, 8)),
        Layer("attention_manual", Attention, (1, 4, 8)),
        Layer("gpt_causal", lambda: TinyGPT("index"), (1, 4), tokens=16),
        Layer("gpt_masked_fill", TinyGPT, (1, 4), tokens=16),
        Layer("gelu", lambda: nn.Sequential(lin(8, 8), nn.GELU(), lin(8, 3)), (1, 8)),
        Layer("tanh_sigmoid", lambda: nn.Sequential(lin(6, 6), nn.Tanh(), lin(6, 3), nn.Sigmoid()), (1, 6)),
        Layer("logsoftmax", lambda: nn.Sequential(lin(8, 4), nn.LogSoftmax(-1)), (1, 8)),
        Layer("softmax_axis1", lambda: nn.Softmax(1), (1, 3, 4), -2.0, 2.0),
        Layer("softmax_axis2", lambda: nn.Softmax(2), (1, 3, 4), -2.0, 2.0),
        Layer("reduce_sum_mean", lambda: Fn(lambda x: torch.cat([x.sum(1), x.mean(2)], 1)), (1, 3, 4)),
        Layer("gather", lambda: Fn(lambda x: x[:, torch.tensor([3, 0, 2])], lin(5, 5)), (1, 5)),
        Layer("slice", lambda: Fn(lambda x: x[:, 1:6:2], lin(8, 8)), (1, 8)),
        Layer("concat", lambda: Fn(lambda x: torch.cat([x, torch.relu(x)], 1), lin(4, 4)), (1, 4)),
        Layer("transpose", lambda: Fn(lambda x: x.transpose(1, 2), lin(3, 3)), (1, 4, 3)),
        Layer("reshape", lambda: Fn(lambda x: x.reshape(1, 2, 6), lin(12, 12)), (1, 12)),
    ]
    return {layer.name: layer for layer in layers}


def names() -> list[str]:
    """The corpus's layers (torch is imported only to build them)."""
    return list(_layers())


@dataclass(frozen=True)
class Exported:
    layer: str
    flavour: str
    folder: Path
    ir_version: int
    opset: int
    external_data: bool


@contextlib.contextmanager
def _quiet():
    """File descriptors 1 and 2 to /dev/null: torch's C++ side prints its whole IR graph when it
    refuses an op, and its exporters their progress."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def export(layer: str, flavour: str, out: str | Path) -> Exported:
    """Export ``layer`` in ``flavour`` into folder ``out`` (``model.onnx`` + ``input.json``).
    Raises UsageError when torch can't export that layer at that opset: torch's limit, not a
    file a user could bring."""
    import onnx
    import torch
    from onnx.external_data_helper import uses_external_data

    layers = _layers()
    if layer not in layers:
        raise NotFoundError(f"no corpus layer '{layer}' — choose one of: {', '.join(layers)}")
    if flavour not in FLAVOURS:
        raise NotFoundError(f"no corpus flavour '{flavour}' — choose one of: {', '.join(FLAVOURS)}")
    entry = layers[layer]
    torch.manual_seed(SEED)
    module = entry.build().eval()
    rng = np.random.default_rng(SEED + 2)
    if entry.tokens:
        x = torch.from_numpy(rng.integers(0, entry.tokens, entry.shape))
    else:
        x = torch.from_numpy(rng.uniform(entry.low, entry.high, entry.shape).astype(np.float32))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        try:
            if flavour == "default":
                torch.onnx.export(module, (x,), str(path), verbose=False)
            else:
                opset, ir3 = int(flavour[1:].split("-")[0]), flavour.endswith("-ir3")
                torch.onnx.export(module, (x,), str(path), opset_version=opset, dynamo=False,
                                  keep_initializers_as_inputs=ir3)
                if ir3:
                    proto = onnx.load(path)
                    proto.ir_version = 3
                    onnx.save(proto, path)
        except Exception as exc:  # torch's own refusal (an op with no symbolic at this opset)
            raise UsageError(f"torch can't export {layer} as {flavour}: "
                             f"{str(exc).strip().splitlines()[0][:200]}") from None
    (out / "input.json").write_text(json.dumps({"input_data": [x.numpy().astype(float).ravel().round(6).tolist()]}))
    proto = onnx.load(path, load_external_data=False)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return Exported(layer, flavour, out, proto.ir_version, opset,
                    any(uses_external_data(t) for t in proto.graph.initializer))


def draws(layer: str, n: int, seed: int = SEED + 3) -> np.ndarray:
    """``n`` inputs from the layer's input range: what a user brings after the one input.json."""
    entry = _layers()[layer]
    rng = np.random.default_rng(seed)
    size = int(np.prod(entry.shape))
    if entry.tokens:
        return rng.integers(0, entry.tokens, (n, size)).astype(float)
    return rng.uniform(entry.low, entry.high, (n, size))
