"""The ONNX rewrite pass: everyday layers ezkl refuses or mis-circuits, rewritten before ezkl
sees the graph into ops it proves faithfully.

What bare ezkl 23.0.5 does with them (PyTorch exports, opset 18 unless said):

| construct | ezkl alone | rewrite |
|---|---|---|
| Conv with dilation > 1 | "non unit dilations not supported" | a dense kernel with zeros between the taps |
| Pad reflect / edge | "pad mode or pad type" | Slice + Concat of the border rows |
| Pad with a non-zero constant c | same | Pad(x - c, 0) + c |
| MaxPool with padding | pads with zeros, not -inf: a valid proof of a wrong answer on negative inputs | edge Pad, then an unpadded MaxPool |
| PRelu with a slope per channel | fails at old opsets | relu(x) - slope * relu(-x) |
| Pow, constant integer exponent | fails when the exponent is a tensor | x * x * ... |
| Tile | halo2 synthesis error | Concat of copies |
| ScatterND, constant indices and values (a causal mask set by index) | panics: "index out of bounds" | Where over a constant mask |
| GatherND, constant indices (torch's default exporter's ``x[:, [3, 0, 2]]``) | "Failed analyse for node ... GatherNd" | Reshape + Gather |
| a mask of -inf or -1e4 into a Softmax (a GPT's causal mask) | -inf has no fixed-point value; -1e4 makes exp's table 10,000 units wide (20 GB for a 4-token GPT) | the mask at -(max|x| + 16) over the samples |
| ConvTranspose with stride s > 1 (a DCGAN generator) | proven over the input with zeros inserted: s^2 x the products; some strides unreadable | s^2 Convs, one per output phase, interleaved by Reshape + Concat |
| MatMul(a, b) * constant (attention's 1/sqrt(d)) | proven, but rescales every product (T x T scores) | the constant moved onto the smaller operand (T x d) |
| Conv / ConvTranspose / pools without `strides` (ONNX's default: ones) | "a node is missing required params: stride" | the same node, `strides` written out |
| opset outside 9-18 | tract is tested with 9-18 | ``onnx.version_converter`` to 18 (Gelu, opset 20, as Erf or Tanh first) |
| opset below 11 where a rewrite applies | the rewrites' Slice and Pad forms need 10 / 11 | converted to 18 first |
| NonZero, Shape, Range over constants (a GPT's causal mask) | folded by tract | folded (onnx-graphsurgeon) |
| weights in an external data file | | embedded in the one file ezkl reads |
| IR 3 files (initializers listed as inputs) | read | written back at the IR the opset needs (>= 4) |

Each rewrite is checked where it is applied: the rewritten graph and the original must agree
in float on the calibration samples within ``RTOL`` (relative), or compile refuses naming
the op. The graph is edited with onnx-graphsurgeon, not by hand on the protobuf.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from proofmint.errors import InvalidModelError
from proofmint.models.onnx_model import MAX_OPSET, UNSUPPORTED_OPS, OnnxModel, extract, save_checked, with_shapes

from . import split

MIN_OPSET = 9
EMIT_OPSET = 11  # the rewrites write Slice (opset 10) and Pad (11) with tensor inputs
RTOL = 1e-5
MAX_POW = 8  # x**n as n - 1 multiplications up to here
CHECK_SAMPLES = 16


@dataclass(frozen=True)
class Applied:
    op: str  # the ONNX op type rewritten
    node: str  # its node name
    into: str  # what it became
    span: tuple[str, str] | None = None  # the tensors its subgraph runs from and to
    # a constant chosen from the calibration samples (a mask's fill), by the tensor it makes:
    # recorded so the graph can be rebuilt without them (verify-asset, derived_vk)
    chosen: dict[str, float] | None = None
    groups: int | None = None  # a layer split into channel groups for segments (:mod:`.split`)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("span")
        for k in ("chosen", "groups"):
            if d[k] is None:
                d.pop(k)
        return d


def recorded(rewrites: list[dict] | None) -> set[tuple[str, str]] | None:
    """The (op, node) rewrites a compile's report lists (None: no report, every rewrite)."""
    if not isinstance(rewrites, list):
        return None
    return {(str(r.get("op")), str(r.get("node"))) for r in rewrites if isinstance(r, dict)}


def replay(model: OnnxModel, dest: Path, rewrites: list[dict] | None) -> OnnxModel:
    """The graph a compile whose report lists ``rewrites`` built from ``model``, without its
    samples: the layers it split into channel groups, the constants it chose, and only the
    rewrites it applied (verify-asset)."""
    splits = split.splits_of(rewrites)
    if splits:
        model = split.apply(model, dest.with_name(f"{dest.stem}-split.onnx"), splits)
    graph = rewrite(model, dest, np.empty((0, 0)), chosen_constants(rewrites or []), recorded(rewrites))[0]
    return split.sequence(graph, dest) if splits else graph


def grouped(model: OnnxModel, dest: Path, samples: np.ndarray, pair: split.Pair,
            groups: int) -> tuple[OnnxModel, list[Applied]]:
    """``model`` with ``pair``'s first layer split into ``groups`` channel groups, then
    rewritten like any graph: what ezkl compiles, and what the report records (the split
    first: a replay splits, then rewrites)."""
    pre = split.apply(model, dest.with_name(f"{dest.stem}-split.onnx"), [(pair.node, groups)])
    applied = [Applied(pair.op, pair.node, pair.into(groups), groups=groups)]
    _check_equivalent(model, pre, samples, applied)
    graph, more = rewrite(pre, dest, samples)
    return split.sequence(graph, dest), applied + more


def _key(node) -> tuple[str, str]:
    return node.op, node.name or "(unnamed)"


def chosen_constants(rewrites: list[dict]) -> dict[str, float]:
    """The constants a compile chose from its samples, from its report's ``rewrites`` (a
    published report: anything else in it is not a constant, and rebuilds no graph)."""
    chosen = [r.get("chosen") for r in rewrites if isinstance(r, dict)] if isinstance(rewrites, list) else []
    return {str(k): float(v) for c in chosen if isinstance(c, dict) for k, v in c.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class _Editor:
    """One graph being rewritten, with helpers that make fresh, named tensors."""

    def __init__(self, graph, data: bytes = b"", feeds: list[dict] | None = None,
                 chosen: dict[str, float] | None = None):
        import onnx_graphsurgeon as gs

        self.gs = gs
        self.graph = graph
        self.count = 0
        self.applied: list[Applied] = []
        self.chosen = chosen or {}  # constants an earlier compile chose: used, not re-derived
        self._data, self._feeds, self._ranges = data, feeds or [], None

    def magnitude(self, tensor: str) -> float | None:
        """The largest |value| ``tensor`` takes on the samples, in float (None: not known)."""
        if self._ranges is None:
            from proofmint.models.onnx_model import tensor_extremes

            names, ext = tensor_extremes(self._data, self._feeds) if self._feeds else ([], None)
            self._ranges = {n: float(np.abs(ext[:, i]).max()) for i, n in enumerate(names)}
        return self._ranges.get(tensor)

    def name(self, base: str) -> str:
        self.count += 1
        return f"pm_{base}_{self.count}"

    def const(self, base: str, values) -> object:
        return self.gs.Constant(self.name(base), np.asarray(values))

    def node(self, op: str, inputs: list, attrs: dict | None = None, dtype=None, shape=None):
        out = self.gs.Variable(self.name(op.lower()), dtype=dtype, shape=shape)
        self.graph.nodes.append(self.gs.Node(op, self.name(op), attrs or {}, inputs, [out]))
        return out

    def replace(self, node, new_output) -> None:
        """Route ``node``'s consumers to ``new_output`` and drop the node."""
        old = node.outputs[0]
        for consumer in list(old.outputs):
            for i, t in enumerate(consumer.inputs):
                if t is old:
                    consumer.inputs[i] = new_output
        graph_outs = self.graph.outputs
        if old in graph_outs:  # keep the graph output's name: an Identity carries it
            i = graph_outs.index(old)
            node.outputs.clear()
            ident = self.gs.Node("Identity", self.name("Identity"), {}, [new_output], [old])
            self.graph.nodes.append(ident)
            graph_outs[i] = old
        else:
            node.outputs.clear()
        node.inputs.clear()

    def done(self, node, into: str, x=None, y=None, chosen: dict[str, float] | None = None) -> None:
        """Record a rewrite; ``x`` -> ``y`` spans the ops it put in the graph (none for a
        changed attribute), whose rows the compile measures."""
        span = (x.name, y.name) if x is not None and y is not None else None
        self.applied.append(Applied(node.op, node.name or "(unnamed)", into, span, chosen))


def _dims(tensor) -> list[int]:
    shape = tensor.shape
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        raise InvalidModelError(f"the shape of '{tensor.name}' is not static, so its padding can't "
                                "be rewritten — export the model with static shapes")
    return list(shape)


def _slice(ed: _Editor, x, axis: int, start: int, dtype, shape):
    return ed.node("Slice", [x, ed.const("starts", [start]), ed.const("ends", [start + 1]),
                             ed.const("axes", [axis])], dtype=dtype, shape=shape)


def _pad_by_copies(ed: _Editor, x, pads: list[tuple[int, int]], mode: str):
    """Edge or reflect padding as Slice + Concat, one axis at a time."""
    dims = _dims(x)
    for axis, (before, after) in enumerate(pads):
        if before == 0 and after == 0:
            continue
        n = dims[axis]
        if mode == "reflect":
            if before >= n or after >= n:
                raise InvalidModelError(f"reflect padding of {max(before, after)} on an axis of size {n} "
                                        f"('{x.name}') is not defined")
            head, tail = list(range(before, 0, -1)), list(range(n - 2, n - 2 - after, -1))
        else:  # edge
            head, tail = [0] * before, [n - 1] * after
        one = [d if i != axis else 1 for i, d in enumerate(dims)]
        parts = ([_slice(ed, x, axis, j, x.dtype, one) for j in head] + [x]
                 + [_slice(ed, x, axis, j, x.dtype, one) for j in tail])
        dims = [d if i != axis else n + before + after for i, d in enumerate(dims)]
        x = ed.node("Concat", parts, {"axis": axis}, dtype=x.dtype, shape=list(dims))
    return x


def _pads_of(node, rank: int) -> list[tuple[int, int]]:
    """(before, after) per axis from a Pad node (pads as attribute or input, optional axes)."""
    if "pads" in node.attrs:
        flat = list(node.attrs["pads"])
        axes = list(range(rank))
    else:
        flat = _value(node.inputs[1])
        if flat is None:
            raise InvalidModelError(f"Pad node '{node.name}' has computed pads — ezkl needs constant ones")
        flat = [int(v) for v in flat.ravel()]
        axes = list(range(rank))
        if len(node.inputs) > 3 and node.inputs[3] is not None and getattr(node.inputs[3], "name", ""):
            given = _value(node.inputs[3])
            axes = [int(a) % rank for a in given.ravel()]
    k = len(axes)
    out = [(0, 0)] * rank
    for i, a in enumerate(axes):
        out[a] = (flat[i], flat[i + k])
    if any(b < 0 or e < 0 for b, e in out):
        raise InvalidModelError(f"Pad node '{node.name}' has negative pads (a crop) — use Slice")
    return out


def _value(tensor) -> np.ndarray | None:
    """A tensor's constant value, else None; not through an Identity, as rewrites always read
    them (folding has removed it anyway): reports made before replay to the same graph."""
    return split.constant(tensor, identity=False)


def _pad_value(node) -> float:
    if "value" in node.attrs:
        return float(node.attrs["value"])
    if len(node.inputs) > 2 and getattr(node.inputs[2], "name", ""):
        v = _value(node.inputs[2])
        return 0.0 if v is None or v.size == 0 else float(v.ravel()[0])
    return 0.0


def pad(ed: _Editor, node) -> None:
    """Reflect/edge Pad -> Slice + Concat; constant c != 0 -> Pad(x - c, 0) + c (a Pad with a
    zero constant is what ezkl supports)."""
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    x = node.inputs[0]
    value = _pad_value(node) if mode == "constant" else 0.0
    if mode == "constant" and value == 0.0:
        return
    pads = _pads_of(node, len(_dims(x)))
    if mode == "constant":
        c = ed.const("pad_value", np.array(value, dtype=np.float32))
        shifted = ed.node("Sub", [x, c], dtype=x.dtype, shape=x.shape)
        flat = [b for b, _ in pads] + [e for _, e in pads]
        padded = ed.node("Pad", [shifted, ed.const("pads", np.array(flat, dtype=np.int64))],
                         {"mode": "constant"}, dtype=x.dtype)
        y = ed.node("Add", [padded, c], dtype=x.dtype)
        into = f"Pad(x - {value:g}, 0) + {value:g}"
    elif mode in ("reflect", "edge"):
        y = _pad_by_copies(ed, x, pads, mode)
        into = f"{mode} padding as Slice + Concat"
    else:
        raise InvalidModelError(f"Pad node '{node.name}' has mode '{mode}', which neither ezkl nor "
                                "proofmint's rewrite supports — use constant, reflect or edge")
    ed.replace(node, y)
    ed.done(node, into, x, y)


def maxpool(ed: _Editor, node) -> None:
    """MaxPool with padding -> edge Pad, then MaxPool without. ezkl pads with zeros, not -inf;
    an edge copy is never larger than a real value in the same window (a window that covers
    a padded cell also covers the border cell it copies, since padding <= kernel / 2)."""
    pads = list(node.attrs.get("pads", []))
    if not any(pads):
        return
    if node.attrs.get("ceil_mode", 0) or any(d != 1 for d in node.attrs.get("dilations", [])) \
            or len(node.outputs) > 1:
        raise InvalidModelError(f"MaxPool node '{node.name}' uses ceil_mode, dilation or indices with "
                                "padding, which proofmint can't rewrite faithfully — pad explicitly")
    x = node.inputs[0]
    spatial = len(pads) // 2
    rank = len(_dims(x))
    per_axis = [(0, 0)] * (rank - spatial) + list(zip(pads[:spatial], pads[spatial:]))
    padded = _pad_by_copies(ed, x, per_axis, "edge")
    attrs = {k: v for k, v in node.attrs.items() if k != "pads"}
    y = ed.node("MaxPool", [padded], attrs, dtype=x.dtype)
    ed.replace(node, y)
    ed.done(node, "edge Pad + unpadded MaxPool", x, y)


def conv(ed: _Editor, node) -> None:
    """Dilated Conv -> Conv with the kernel's taps spread out and zeros between them (the
    same sums over the same inputs; padding and stride unchanged)."""
    dil = list(node.attrs.get("dilations", []))
    if not any(d != 1 for d in dil):
        return
    w = _value(node.inputs[1])
    if w is None:
        raise InvalidModelError(f"Conv node '{node.name}' has dilation {dil} and computed weights — "
                                "ezkl needs constant weights to spread the kernel")
    spread = np.zeros(w.shape[:2] + tuple((k - 1) * d + 1 for k, d in zip(w.shape[2:], dil)), w.dtype)
    spread[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dil)] = w
    node.inputs[1] = ed.const("dilated_kernel", spread)
    node.attrs["dilations"] = [1] * len(dil)
    if "kernel_shape" in node.attrs:
        node.attrs["kernel_shape"] = list(spread.shape[2:])
    ed.done(node, f"Conv with a {'x'.join(map(str, spread.shape[2:]))} zero-inserted kernel",
            node.inputs[0], node.outputs[0])


def conv_transpose(ed: _Editor, node) -> None:
    """A 2-D ConvTranspose with stride s > 1 -> s x s ordinary Convs, one per output phase
    (the outputs at rows = r mod s, cols = c mod s), interleaved by Concat and Reshape. ezkl
    lays a transposed convolution out over the input with s - 1 zeros between values, so each
    output sums its whole kernel where at most one tap in s x s meets a value: the phases take
    s^2 fewer products (a layer of EZKL's mnist_gan's shape, 64 -> 128 channels, 5x5, 7x7 ->
    14x14: 21,054,016 rows at ezkl's defaults, 6,001,280 as phases; the zoo generator28's first:
    261,032 -> 109,764). Bare ezkl can't read some (stride 3, kernel 6: "Cannot reshape").
    Left as it is where a phase would have no tap (kernel < stride), the phases differ in size
    (an output not a multiple of s), or the layer is grouped, dilated or sized by output_shape."""
    x, w = node.inputs[0], _value(node.inputs[1])
    strides = [int(v) for v in node.attrs.get("strides", [])]
    if (w is None or w.ndim != 4 or len(strides) != 2 or max(strides) < 2 or node.attrs.get("group", 1) != 1
            or any(d != 1 for d in node.attrs.get("dilations", [1, 1])) or "output_shape" in node.attrs
            or node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET")
            or x.shape is None or len(x.shape) != 4 or not all(isinstance(d, int) for d in x.shape[1:])):
        return
    k = w.shape[2:]
    pads = [int(v) for v in node.attrs.get("pads", [0, 0, 0, 0])]
    extra = [int(v) for v in node.attrs.get("output_padding", [0, 0])]
    size = [s * (n - 1) + e + kk - pb - pe for s, n, e, kk, pb, pe
            in zip(strides, x.shape[2:], extra, k, pads[:2], pads[2:])]
    if any(kk < s or n % s for kk, s, n in zip(k, strides, size)):
        return
    out = [n // s for n, s in zip(size, strides)]
    bias = node.inputs[2:3]
    phases = {}
    for r in range(strides[0]):
        for c in range(strides[1]):
            taps, conv_pads, crop, length = [], [], [], []
            for axis, phase in ((0, r), (1, c)):
                s, first = strides[axis], (phase + pads[axis]) % strides[axis]
                count = len(range(first, k[axis], s))
                # output s*p + phase reads input p + shift - t through tap first + s*t
                shift = (phase + pads[axis] - first) // s
                before = count - 1 - shift
                after = out[axis] - x.shape[2 + axis] - before + count - 1
                taps.append(list(range(first, k[axis], s))[::-1])
                conv_pads.append((max(before, 0), max(after, 0)))
                crop.append(max(-before, 0))
                length.append(x.shape[2 + axis] + sum(conv_pads[-1]) - count + 1)  # the Conv's output
            kernel = w[:, :, taps[0]][:, :, :, taps[1]].transpose(1, 0, 2, 3)
            y = ed.node("Conv", [x, ed.const("phase_kernel", np.ascontiguousarray(kernel)), *bias],
                        {"kernel_shape": list(kernel.shape[2:]), "strides": [1, 1],
                         "pads": [conv_pads[0][0], conv_pads[1][0], conv_pads[0][1], conv_pads[1][1]]},
                        dtype=x.dtype)
            if any(crop) or length != out:
                y = ed.node("Slice", [y, ed.const("starts", np.array(crop, np.int64)),
                                      ed.const("ends", np.array([a + b for a, b in zip(crop, out)], np.int64)),
                                      ed.const("axes", np.array([2, 3], np.int64))], dtype=x.dtype)
            phases[r, c] = y
    channels = kernel.shape[0]
    rows = []
    for r in range(strides[0]):
        cols = [ed.node("Reshape", [phases[r, c], ed.const("shape", np.array([-1, channels, *out, 1], np.int64))],
                        dtype=x.dtype) for c in range(strides[1])]  # Reshape, not Unsqueeze: opset 11 has no axes input
        row = ed.node("Concat", cols, {"axis": 4}, dtype=x.dtype)  # columns interleaved, then a row axis
        rows.append(ed.node("Reshape", [row, ed.const("shape", np.array([-1, channels, out[0], 1, size[1]], np.int64))],
                            dtype=x.dtype))
    y = ed.node("Concat", rows, {"axis": 3}, dtype=x.dtype)
    y = ed.node("Reshape", [y, ed.const("shape", np.array([-1, channels, *size], np.int64))], dtype=x.dtype,
                shape=node.outputs[0].shape)
    ed.replace(node, y)
    ed.done(node, f"{strides[0] * strides[1]} Convs, one per output phase, interleaved", x, y)


def prelu(ed: _Editor, node) -> None:
    """PRelu with a slope per channel -> relu(x) - slope * relu(-x)."""
    slope = node.inputs[1]
    value = _value(slope)
    if value is not None and value.size == 1:
        return
    x = node.inputs[0]
    pos = ed.node("Relu", [x], dtype=x.dtype, shape=x.shape)
    neg = ed.node("Relu", [ed.node("Neg", [x], dtype=x.dtype, shape=x.shape)], dtype=x.dtype, shape=x.shape)
    y = ed.node("Sub", [pos, ed.node("Mul", [neg, slope], dtype=x.dtype, shape=x.shape)],
                dtype=x.dtype, shape=x.shape)
    ed.replace(node, y)
    ed.done(node, "relu(x) - slope * relu(-x)", x, y)


def power(ed: _Editor, node) -> None:
    """Pow with a constant integer exponent 1..MAX_POW -> a chain of Mul; a computed exponent
    is refused (ezkl needs a constant one)."""
    e = _value(node.inputs[1])
    if e is None:
        raise InvalidModelError(f"Pow node '{node.name}' raises to a computed exponent, which a circuit "
                                "can't do — make the exponent a constant, or write x * x")
    flat = np.unique(e.ravel())
    if flat.size != 1:
        raise InvalidModelError(f"Pow node '{node.name}' has {flat.size} different exponents — use one "
                                "constant exponent")
    n = float(flat[0])
    x = node.inputs[0]
    if n == round(n) and 1 <= n <= MAX_POW:
        y = x
        for _ in range(int(n) - 1):
            y = ed.node("Mul", [y, x], dtype=x.dtype, shape=x.shape)
        if y is x:
            y = ed.node("Identity", [x], dtype=x.dtype, shape=x.shape)
        ed.replace(node, y)
        ed.done(node, f"x**{int(n)} as {int(n) - 1} Mul", x, y)
    elif e.ndim > 0:  # ezkl takes a scalar constant exponent, not a shaped one
        node.inputs[1] = ed.const("exponent", np.array(n, dtype=e.dtype))
        ed.done(node, f"Pow with a scalar exponent {n:g}", x, node.outputs[0])


def tile(ed: _Editor, node) -> None:
    """Tile with constant repeats -> Concat of copies along each repeated axis."""
    reps = _value(node.inputs[1])
    if reps is None:
        raise InvalidModelError(f"Tile node '{node.name}' has computed repeats — ezkl needs constant ones")
    x = node.inputs[0]
    dims = _dims(x)
    y = x
    for axis, r in enumerate(int(v) for v in reps.ravel()):
        if r > 1:
            dims[axis] *= r
            y = ed.node("Concat", [y] * r, {"axis": axis}, dtype=x.dtype, shape=list(dims))
    if y is x:
        y = ed.node("Identity", [x], dtype=x.dtype, shape=x.shape)
    ed.replace(node, y)
    ed.done(node, "Concat of copies", x, y)


def default_strides(ed: _Editor, node) -> None:
    """A Conv, ConvTranspose or pool that leaves ``strides`` to ONNX's default (1 on every
    spatial axis) -> the same node with those ones written out: tract requires the attribute."""
    if "strides" in node.attrs:
        return
    kernel = node.attrs.get("kernel_shape")
    w = _value(node.inputs[1]) if kernel is None and len(node.inputs) > 1 else None
    rank = len(kernel) if kernel is not None else (w.ndim - 2 if w is not None else None)
    if rank is None:
        raise InvalidModelError(f"{node.op} node '{node.name}' has no strides, no kernel_shape and computed "
                                "weights — write its strides out (ezkl needs them)")
    node.attrs["strides"] = [1] * rank
    ed.done(node, f"{node.op} with its default strides written out")


def scatter_nd(ed: _Editor, node) -> None:
    """ScatterND with constant indices and updates (a causal mask written by index, as
    ``att[:, rows, cols] = -inf`` exports) -> Where(constant mask, constant values, data):
    ezkl 23.0.5 panics on the ScatterND ("index out of bounds")."""
    data, indices, updates = node.inputs[:3]
    idx, upd = _value(indices), _value(updates)
    if node.attrs.get("reduction", "none") not in ("none", b"none"):
        raise InvalidModelError(f"ScatterND node '{node.name}' reduces into its data, which proofmint "
                                "can't rewrite — write it as Where/Add over a mask")
    if idx is None or upd is None:
        raise InvalidModelError(f"ScatterND node '{node.name}' scatters computed indices or values, "
                                "which ezkl can't prove — write it as Where over a constant mask")
    shape = _dims(data)
    mask, values = np.zeros(shape, bool), np.zeros(shape, upd.dtype)
    k = idx.shape[-1]
    for i, where in enumerate(idx.reshape(-1, k)):
        pos = tuple(int(v) for v in where)
        mask[pos] = True
        values[pos] = upd.reshape(-1, *shape[k:])[i]
    y = ed.node("Where", [ed.const("scatter_mask", mask), ed.const("scatter_values", values), data],
                dtype=data.dtype, shape=shape)
    ed.replace(node, y)
    ed.done(node, "Where over a constant mask", data, y)


def gather_nd(ed: _Editor, node) -> None:
    """GatherND with constant indices (torch's default exporter writes ``x[:, [3, 0, 2]]`` so)
    -> Reshape to one leading axis + Gather of the flattened index: tract fails to analyse the
    GatherND ("Failed analyse for node ... GatherNd")."""
    data, indices = node.inputs[:2]
    idx = _value(indices)
    if idx is None:
        return  # computed indices: ezkl's own words stand
    if node.attrs.get("batch_dims", 0):
        raise InvalidModelError(f"GatherND node '{node.name}' has batch_dims {node.attrs['batch_dims']}, "
                                "which proofmint can't rewrite — index with Gather instead")
    dims = _dims(data)
    k = idx.shape[-1]
    lead = int(np.prod(dims[:k]))
    flat = ed.node("Reshape", [data, ed.const("gather_shape", np.array([lead, *dims[k:]], np.int64))],
                   dtype=data.dtype, shape=[lead, *dims[k:]])
    linear = np.ravel_multi_index(tuple(np.moveaxis(idx.astype(np.int64), -1, 0)), dims[:k])
    y = ed.node("Gather", [flat, ed.const("gather_index", linear.astype(np.int64))], {"axis": 0},
                dtype=data.dtype, shape=[*idx.shape[:-1], *dims[k:]])
    ed.replace(node, y)
    ed.done(node, "Reshape + Gather of the flattened index", data, y)


MASK_FILL = -1e3  # a constant this negative, into a Softmax, stands for -inf: "masked out"
MASK_MARGIN = 16.0  # exp(-16) ~ 1e-7: a masked entry's share of a softmax, below any scale's unit


def _to_softmax(node, depth: int = 0) -> list | None:
    """The nodes between ``node`` and a Softmax it feeds (elementwise arithmetic and reshapes,
    at most 3), or None when it feeds none."""
    for consumer in node.outputs[0].outputs:
        if consumer.op == "Softmax":
            return []
        if (consumer.op in ("Add", "Sub", "Mul", "Div", "Reshape", "Transpose", "Identity", "Cast")
                and depth < 3 and consumer.outputs):
            rest = _to_softmax(consumer, depth + 1)
            if rest is not None:
                return [consumer, *rest]
    return None


def _gap_scale(node, path: list) -> tuple[float, float] | None:
    """How the ops between mask ``node`` and its softmax move the gap between a masked and a
    kept entry: (the least factor they scale it by, the most a constant they add can close it),
    or None where a computed value joins in or the order could flip (nothing bounds it then)."""
    factor, closed, cur = 1.0, 0.0, node.outputs[0]
    for n in path:
        if n.op in ("Add", "Sub", "Mul", "Div"):
            mine = [i for i, t in enumerate(n.inputs) if t is cur]
            if len(n.inputs) != 2 or len(mine) != 1 or (n.op in ("Sub", "Div") and mine[0] == 1):
                return None
            c = _value(n.inputs[1 - mine[0]])
            if c is None or c.size == 0:
                return None
            c = c.astype(np.float64)
            if n.op in ("Mul", "Div"):
                if np.any(c <= 0):
                    return None
                c = c if n.op == "Mul" else 1 / c
                factor, closed = factor * float(c.min()), closed * float(c.max())
            else:
                closed += float(c.max() - c.min())
        cur = n.outputs[0]
    return factor, closed


def mask_fill(ed: _Editor, node) -> None:
    """Where(mask, -inf or a huge negative constant, x) into a Softmax (a causal mask) -> the
    same Where with the constant at -(max|x| + 16), max over the calibration samples: every row
    keeps an unmasked score of at least -max|x|, so the softmax gives a masked entry exp(-16)
    or less of it, as good as zero. -inf has no fixed-point value; -1e4 makes ezkl's exp table
    span 10,000 units at every scale (a 4-token GPT took 20 GB calibrating). ezkl's softmax
    subtracts the row's max before its exp, so the table spans the fill's distance below the
    largest score: max|x| + 16 + max|x|, not the 3 max|x| + 16 a fill of -(2 max|x| + 16) made.
    Where constant arithmetic sits between the mask and the softmax (a scale applied after the
    mask), the margin is divided by the smallest factor and widened by what a constant tensor
    added there can close, so the gap at the softmax is still 16."""
    for k, other in ((1, node.inputs[2]), (2, node.inputs[1])):
        v = _value(node.inputs[k])
        if v is not None and v.size and np.any(v <= MASK_FILL) and (path := _to_softmax(node)) is not None:
            break
    else:
        return
    key = node.outputs[0].name
    if key in ed.chosen:
        fill, how = ed.chosen[key], "as its compile chose"
    else:
        bound = ed.magnitude(other.name)
        if bound is None:
            return
        moved = _gap_scale(node, path)
        if moved is None:  # a computed value between mask and softmax: the float check judges this
            fill, how = -(2 * bound + MASK_MARGIN), f"2 x the largest |value| seen + {MASK_MARGIN:g}"
        else:  # a gap of 16 at the softmax, through the scales and constants between
            factor, closed = moved
            fill = -(bound + (MASK_MARGIN + closed) / factor)
            how = (f"the largest |value| seen + {MASK_MARGIN:g}" if (factor, closed) == (1.0, 0.0) else
                   f"the largest |value| seen + ({MASK_MARGIN:g} + {closed:.3g}) / {factor:.3g}, "
                   "through the ops before the softmax")
    node.inputs[k] = ed.const("mask_fill", np.where(v <= MASK_FILL, fill, v).astype(v.dtype))
    ed.done(node, f"masked with {fill:.3g} ({how}) instead of {float(v.min()):g}",
            node.outputs[0], node.outputs[0], {key: fill})


def scale_first(ed: _Editor, node) -> None:
    """MatMul(a, b) * c, c a scalar constant -> MatMul(a * c, b): c folded into a constant
    operand (no rows at all), else moved onto the smaller one: attention's scores times 1/sqrt(d)
    rescale T x T values where q holds T x d. Every multiply by a constant costs ezkl a
    rescale of each value it touches; moving it saved 168,448 of a GPT block's 944,192 rows
    (64 tokens, 2 heads of 8). The product keeps the Mul's output name, so what the samples
    show of it (a causal mask's fill, below) is read under the same name."""
    values = [_value(t) for t in node.inputs]
    k = next((i for i in (0, 1) if values[i] is not None and values[i].size == 1), None)
    if k is None:
        return
    c, t = values[k], node.inputs[1 - k]
    if len(t.inputs) != 1 or t.inputs[0].op != "MatMul" or len(t.outputs) != 1 or t in ed.graph.outputs:
        return
    mm = t.inputs[0]
    sizes = [_size(o) for o in (*mm.inputs, t)]
    if None in sizes or c.ndim > len(t.shape):  # a constant of higher rank broadcasts the product up
        return
    weights = [_value(o) for o in mm.inputs]
    i = next((j for j, v in enumerate(weights) if v is not None), None)
    if i is None:
        i = int(np.argmin(sizes[:2]))
        if sizes[i] >= sizes[2]:
            return
    operand, out, value = mm.inputs[i], node.outputs[0], weights[i]
    if value is not None:
        mm.inputs[i] = ed.const("scaled", (value * c.reshape(())).astype(value.dtype))
    else:
        mm.inputs[i] = ed.node("Mul", [operand, node.inputs[k]], dtype=operand.dtype, shape=operand.shape)
    node.outputs.clear()
    node.inputs.clear()
    mm.outputs[0] = out
    ed.done(node, f"x {float(c.reshape(())):.4g} " + (
        "folded into the MatMul's weights" if value is not None else
        f"moved before the MatMul, onto {sizes[i]:,} values instead of {sizes[2]:,}"))


def _size(tensor) -> int | None:
    """How many values a tensor of static shape holds (None: its shape isn't static)."""
    shape = tensor.shape
    return math.prod(shape) if shape is not None and all(isinstance(d, int) for d in shape) else None


SPATIAL_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool")
REWRITES = {"Pad": pad, "MaxPool": maxpool, "Conv": conv, "PRelu": prelu, "Pow": power, "Tile": tile,
            "ScatterND": scatter_nd, "GatherND": gather_nd, "Mul": scale_first, "ConvTranspose": conv_transpose}
AFTER = {"Where": mask_fill}  # on what the rewrites above leave (a ScatterND becomes a Where)


def rewrite(model: OnnxModel, dest: Path, samples: np.ndarray, chosen: dict[str, float] | None = None,
            only: set[tuple[str, str]] | None = None) -> tuple[OnnxModel, list[Applied]]:
    """The graph ezkl should compile for ``model``, and what was rewritten (empty: ``model``
    itself). Refuses, naming the op, if a rewrite changes the float outputs. ``chosen``: the
    constants an earlier compile chose from its samples (:func:`chosen_constants`), to build
    the same graph without them; ``only``: the (op, node) rewrites it applied
    (:func:`recorded`), so a package compiled before a rewrite existed rebuilds its own graph."""
    import onnx
    import onnx_graphsurgeon as gs

    proto = onnx.load_model_from_string(model.data)
    applied: list[Applied] = []
    if not MIN_OPSET <= model.opset <= MAX_OPSET:
        proto, how = _to_opset(proto, model)
        applied.append(Applied("opset", f"{model.opset}", f"opset {MAX_OPSET} ({how})"))
    feeds = [dict(zip(model.input_names, model.split(x))) for x in samples[:CHECK_SAMPLES]]
    graph, ed = _edit(proto, feeds, chosen, only)
    if MIN_OPSET <= model.opset < EMIT_OPSET and any(a.span for a in ed.applied):
        # the rewrites write Slice and Pad in their tensor-input forms: the graph goes to 18 first
        proto, how = _to_opset(proto, model)
        applied.append(Applied("opset", f"{model.opset}", f"opset {MAX_OPSET} ({how}) for the rewrites' ops"))
        graph, ed = _edit(proto, feeds, chosen, only)
    applied += ed.applied
    if model.external_data:
        applied.append(Applied("external data", model.path.name, "weights embedded in one file"))
    if model.relabelled:
        applied.append(Applied("opset label", model.path.name, model.relabelled))
    if not applied:
        return model, []
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.opset_import[0].version = max(out.opset_import[0].version, MIN_OPSET)
    graph_model = save_checked(out, dest, f"rewriting {', '.join(sorted({a.op for a in applied}))}")
    _check_equivalent(model, graph_model, samples, applied)
    return graph_model, applied


def _edit(proto, feeds: list[dict], chosen: dict[str, float] | None = None,
          only: set[tuple[str, str]] | None = None):
    """``proto`` as a graph with the rewrites applied, and the editor that applied them;
    ``feeds`` (the calibration samples) size what depends on the values, unless ``chosen``
    already gives it."""
    import onnx_graphsurgeon as gs

    proto = with_shapes(proto)  # shapes are needed only by some rewrites, which say so
    graph = gs.import_onnx(proto)
    before = [(n.op, n.name) for n in graph.nodes if n.op in UNSUPPORTED_OPS]
    try:  # computed constants (pads built from Shape/Concat by an exporter) become constants
        graph.fold_constants(error_ok=True).cleanup()
    except Exception:
        pass  # nothing folded: the rewrites that need a constant say so
    ed = _Editor(graph, proto.SerializeToString(), feeds, chosen)
    left = {(n.op, n.name) for n in graph.nodes}
    for op, name in before:  # a causal mask's NonZero over constants: folded, so ezkl never sees it
        if (op, name) not in left:
            ed.applied.append(Applied(op, name or "(unnamed)", "folded into a constant"))
    for node in list(graph.nodes):
        if (node.domain or "") not in ("", "ai.onnx") or (only is not None and _key(node) not in only):
            continue
        if node.op in SPATIAL_OPS:
            default_strides(ed, node)
        if node.op in REWRITES:
            REWRITES[node.op](ed, node)
    for node in list(graph.nodes):
        if node.op in AFTER and (node.domain or "") in ("", "ai.onnx") and (only is None or _key(node) in only):
            AFTER[node.op](ed, node)
    return graph, ed


def row_costs(graph: OnnxModel, applied: list[Applied], settings: dict, work: Path) -> list[dict]:
    """What each rewrite costs in the circuit: the rows ezkl lays out for its subgraph alone,
    at the chosen circuit's scales and layout (the op it replaced has no native figure: ezkl
    refuses or mis-circuits it). A rewrite that only changed an attribute adds none."""
    from proofmint import ezkl_layer

    keep = ("input_scale", "param_scale", "scale_rebase_multiplier", "decomp_base", "decomp_legs",
            "num_inner_cols", "disable_freivalds")
    layout = {k: v for k, v in settings["run_args"].items() if k in keep}
    out = []
    for i, a in enumerate(applied):
        d = a.to_dict()
        if a.span is None:
            d["rows"] = 0
        else:
            sub, sub_settings = work / f"rewrite-{i}.onnx", work / f"rewrite-{i}.settings.json"
            try:
                extract(graph.path, sub, [a.span[0]], [a.span[1]])
                ezkl_layer.gen_settings(sub, sub_settings, ezkl_layer.run_args(
                    input_visibility="public", output_visibility="public", param_visibility="fixed",
                    layout=layout))
                d["rows"] = json.loads(sub_settings.read_text())["num_rows"]
            except Exception as exc:  # a figure for the report, never a reason to fail a compile
                d["rows"] = None
                d["rows_unmeasured"] = str(exc).splitlines()[0][:160]
        out.append(d)
    return out


def _to_opset(proto, model: OnnxModel):
    """The graph at opset 18: onnx's version converter, or where it has no adapter for a step
    (20 -> 19 for several ops), the same graph labelled 18 when every op it uses is defined
    at 18 — the float check that follows every rewrite catches a semantic difference."""
    import onnx
    from onnx import defs, version_converter

    proto = _lower_newer_ops(proto)
    try:
        return version_converter.convert_version(proto, MAX_OPSET), "onnx.version_converter"
    except Exception as exc:
        why = str(exc).splitlines()[0][:150]
    missing = []
    for node in proto.graph.node:
        if (node.domain or "") not in ("", "ai.onnx"):
            continue
        try:
            defs.get_schema(node.op_type, MAX_OPSET, "")
        except Exception:
            missing.append(node.op_type)
    if missing or model.opset < MIN_OPSET:
        raise InvalidModelError(
            f"{model.path.name} uses ONNX opset {model.opset}; ezkl is tested with {MIN_OPSET}-{MAX_OPSET}, "
            f"onnx's version converter can't bring it to {MAX_OPSET} ({why})"
            + (f" and {', '.join(sorted(set(missing)))} has no opset-{MAX_OPSET} form" if missing else "")
            + f" — re-export with opset_version={MAX_OPSET}") from None
    relabelled = onnx.ModelProto()
    relabelled.CopyFrom(proto)
    for o in relabelled.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = MAX_OPSET
    return relabelled, f"relabelled: every op is defined at {MAX_OPSET}"


def _lower_newer_ops(proto):
    """Ops added after opset 18 that torch's default exporter writes, as the opset-18 ops they
    stand for (the version converter has no way down for them): Gelu (opset 20) as
    0.5 x (1 + erf(x / sqrt 2)), or with ``approximate="tanh"`` its tanh form."""
    import onnx
    from onnx import helper, numpy_helper

    if not any(n.op_type == "Gelu" and (n.domain or "") in ("", "ai.onnx") for n in proto.graph.node):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    nodes = []
    for i, n in enumerate(proto.graph.node):
        if n.op_type != "Gelu" or (n.domain or "") not in ("", "ai.onnx"):
            nodes.append(n)
            continue
        x, y, p = n.input[0], n.output[0], f"pm_gelu{i}_"
        tanh = any(a.name == "approximate" and a.s == b"tanh" for a in n.attribute)
        consts = {"half": 0.5, "one": 1.0, "k": math.sqrt(2 / math.pi) if tanh else 1 / math.sqrt(2),
                  "c": 0.044715}
        out.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), p + k) for k, v in consts.items())
        if tanh:  # 0.5 x (1 + tanh(k (x + c x^3)))
            inner = [helper.make_node("Mul", [x, x], [p + "x2"]), helper.make_node("Mul", [p + "x2", x], [p + "x3"]),
                     helper.make_node("Mul", [p + "x3", p + "c"], [p + "cx3"]),
                     helper.make_node("Add", [x, p + "cx3"], [p + "s"]),
                     helper.make_node("Mul", [p + "s", p + "k"], [p + "ks"]),
                     helper.make_node("Tanh", [p + "ks"], [p + "f"])]
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            inner = [helper.make_node("Mul", [x, p + "k"], [p + "ks"]), helper.make_node("Erf", [p + "ks"], [p + "f"])]
        nodes += inner + [helper.make_node("Add", [p + "f", p + "one"], [p + "g"]),
                          helper.make_node("Mul", [x, p + "g"], [p + "xg"]),
                          helper.make_node("Mul", [p + "xg", p + "half"], [y], name=n.name)]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _check_equivalent(model: OnnxModel, graph: OnnxModel, samples: np.ndarray,
                      applied: list[Applied]) -> None:
    """The rewritten graph computes what the model does, in float, on real inputs."""
    for x in samples[:CHECK_SAMPLES]:
        want = [o.ravel() for o in model.run(x)]
        got = [o.ravel() for o in graph.run(x)]
        for w, g in zip(want, got):
            scale = max(1.0, float(np.abs(w).max()))
            if w.shape != g.shape or float(np.abs(w - g).max()) > RTOL * scale:
                diff = float(np.abs(w - g).max()) if w.shape == g.shape else float("inf")
                ops = ", ".join(f"{a.op} '{a.node}'" for a in applied)
                raise InvalidModelError(
                    f"rewriting {ops} changed the model's float outputs (max diff {diff:.3g}) — "
                    "proofmint refuses rather than prove another model")
