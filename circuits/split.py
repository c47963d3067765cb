"""A layer too wide for any segment: its output channels split into groups, each carried
through the next layer and summed there.

A cut between segments is a point where at most two tensors carry everything on, and one
wide layer has none inside it: EZKL's mnist_gan spends 6.0 M of its 7.45 M rows in one
transposed convolution (64 -> 128 channels, 7x7 -> 14x14) and the next, whose key no budget
on a 24 GB machine holds. Where a layer A (Conv or ConvTranspose) feeds, through ops that
act on each channel alone (BatchNormalization, an activation, a per-channel Add or Mul, or
an activation an exporter wrote as a graph of them: x * sigmoid(x), x * x + x), a layer B
(Conv or ConvTranspose) that sums over those channels,

    B(f(A(x))) = sum over groups g of B_g(f_g(A_g(x)))

where A_g makes only group g's channels, f_g is f on them and B_g reads only them (B's bias
once). Written as G such chains and a running sum, the graph has a cut after each group that
carries two tensors — A's input and the partial sum, each the size of a layer's input or
output, never A's wide output — and the planner cuts there. The split is a float identity up
to the order of the sums (checked on the samples like every rewrite).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proofmint.errors import InvalidModelError
from proofmint.models.onnx_model import OnnxModel, load_onnx, save_checked, with_shapes

LAYERS = ("Conv", "ConvTranspose")
UNARY = ("Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softplus",
         "Softsign", "Identity", "Clip", "Erf", "Gelu", "MaxPool", "AveragePool", "GlobalAveragePool",
         "GlobalMaxPool")  # a pool too acts on each channel alone
BINARY = ("Add", "Sub", "Mul", "Div", "PRelu")  # with a constant of one value, or one a channel
GROUPS = (4, 8, 16, 32, 64)  # tried in turn: each link hashes A's input and the sum, so fewer is cheaper


@dataclass(frozen=True)
class Pair:
    """A layer whose channels can be grouped (``node``) and the layer that sums them (``then``)."""

    node: str
    op: str
    then: str
    channels: int
    products: int  # multiplications of both layers, a transposed one's counted per output phase
    out: str  # the tensor B makes: after the split, the last group's sum
    reads: str  # A's input, which every group reads

    def into(self, groups: int) -> str:
        return f"{groups} groups of its {self.channels} channels, each through {self.then!r}, summed"

    def sum_after(self, group: int, groups: int) -> str:
        """The running sum's tensor after ``group`` (1 .. groups - 1; the last is B's own)."""
        return self.out if group == groups - 1 else f"{self.out}/sum/group{group}"


def pairs(model: OnnxModel) -> list[Pair]:
    """The layers of ``model`` that can be split by channel, the costliest first."""
    graph = _graph(model)
    found = [_pair(*found) for found in _chains(graph)]
    return sorted(found, key=lambda p: -p.products)


def splits_of(rewrites: list | None) -> list[tuple[str, int]]:
    """The splits a compile's report lists: (node, groups)."""
    return [(str(r.get("node")), int(r["groups"])) for r in rewrites or []
            if isinstance(r, dict) and isinstance(r.get("groups"), int) and not isinstance(r["groups"], bool)]


def apply(model: OnnxModel, dest: Path, splits: list[tuple[str, int]]) -> OnnxModel:
    """``model`` with each named layer split into that many channel groups, written to ``dest``."""
    import onnx_graphsurgeon as gs

    graph = _graph(model)
    for name, groups in splits:  # the chains found again after each split: one can't be split twice
        chains = {label: (a, chain, b) for label, a, chain, b, _ in _chains(graph)}
        if name not in chains:
            raise InvalidModelError(f"{model.path.name} has no layer {name!r} whose channels can be grouped "
                                    "(a report that names one was not made from this file)")
        if not 2 <= groups <= _channels(chains[name][0]):
            raise InvalidModelError(f"{model.path.name}: layer {name!r} can't be split into {groups} groups of "
                                    f"its {_channels(chains[name][0])} channels")
        _split(graph, *chains[name], groups)
    graph.cleanup()
    proto = gs.export_onnx(graph)
    _sequence(proto)  # the groups' nodes were appended after B's consumers: a valid order again
    return save_checked(proto, dest, f"splitting {', '.join(n for n, _ in splits)} into channel groups")


def sequence(model: OnnxModel, dest: Path) -> OnnxModel:
    """``model``'s nodes reordered so each group's ops follow one another (see :func:`_sequence`)."""
    import onnx

    proto = onnx.load_model_from_string(model.data)
    _sequence(proto)
    dest.write_bytes(proto.SerializeToString())
    return load_onnx(dest)


def _sequence(proto) -> None:
    """Nodes in depth-first order from the outputs, each input's producers before the next
    input's: the groups' chains one after another, so a cut between two of them exists in
    the node order the planner walks (onnx-graphsurgeon sorts by depth, which interleaves
    the groups)."""
    nodes = list(proto.graph.node)
    producer = {t: i for i, n in enumerate(nodes) for t in n.output if t}
    reads = [_reads(n) for n in nodes]
    order, seen = [], set()
    for out in [o.name for o in proto.graph.output]:
        stack = [(producer[out], False)] if out in producer else []
        while stack:
            i, ready = stack.pop()
            if ready:
                order.append(i)
                continue
            if i in seen:
                continue
            seen.add(i)
            stack.append((i, True))
            for t in reversed(reads[i]):
                if t in producer and producer[t] not in seen:
                    stack.append((producer[t], False))
    order += [i for i in range(len(nodes)) if i not in seen]  # nothing reaches an output: kept, last
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[i] for i in order)


def _reads(node) -> list[str]:
    """The tensors ``node`` reads, those its subgraphs (If, Loop) take from the outer graph included."""
    import onnx

    names = list(node.input)
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                  list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
            names += [t for n in g.node for t in _reads(n)]
    return names


def _graph(model: OnnxModel):
    import onnx
    import onnx_graphsurgeon as gs

    return gs.import_onnx(with_shapes(onnx.load_model_from_string(model.data)))  # a layer of unknown shape: not split


def constant(tensor, identity: bool = True) -> np.ndarray | None:
    """A tensor's constant value, else None: an initializer, or what an exporter wrote as a
    Constant node or (``identity``) passed through Identity (a weight two layers share)."""
    import onnx_graphsurgeon as gs
    from onnx import numpy_helper

    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    if identity and node.op == "Identity" and node.inputs:
        return constant(node.inputs[0])
    if node.op != "Constant":
        return None
    attrs = node.attrs
    if "value" in attrs:
        v = attrs["value"]
        return np.asarray(v.values) if isinstance(v, gs.Constant) else numpy_helper.to_array(v)
    for key in ("value_float", "value_int"):
        if key in attrs:
            return np.asarray(attrs[key])
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return np.asarray(list(attrs[key]))
    return None


def _layer(node) -> bool:
    """A Conv or ConvTranspose with constant weights, ungrouped and without output_shape."""
    return (node.op in LAYERS and node.attrs.get("group", 1) == 1 and "output_shape" not in node.attrs
            and len(node.inputs) >= 2 and constant(node.inputs[1]) is not None
            and (len(node.inputs) < 3 or not node.inputs[2].name or constant(node.inputs[2]) is not None))


def _channels(node) -> int:
    w = constant(node.inputs[1])
    return int(w.shape[0] if node.op == "Conv" else w.shape[1])


def _per_channel(node, inside: set[int], channels: int) -> bool:
    """Whether ``node`` acts on each of the ``channels`` (axis 1) of the tensors it reads from
    ``inside`` (by id) alone: a unary op, BatchNormalization, or an elementwise op of two such
    tensors of one shape (x * x + x, x * sigmoid(x)) or of one and a constant of one value or
    one a channel."""
    if len(node.outputs) != 1 or not node.inputs:
        return False
    mine = [i for i, x in enumerate(node.inputs) if id(x) in inside]
    others = [x for x in node.inputs if id(x) not in inside]
    if node.op in UNARY or node.op == "BatchNormalization":
        if mine != [0]:
            return False
        if node.op == "BatchNormalization":
            return len(others) == 4 and all(constant(o) is not None and constant(o).size == channels for o in others)
        return all(not o.name or constant(o) is not None and constant(o).size == 1 for o in others)
    if node.op not in BINARY or len(node.inputs) != 2 or (node.op == "PRelu" and mine != [0]):
        return False
    if len(mine) == 2:
        a, b = node.inputs
        return a.shape is not None and list(a.shape) == list(b.shape or [])
    c = constant(others[0])
    return c is not None and (c.size == 1 or _channel_axis(c, channels) is not None)


def _channel_axis(c: np.ndarray, channels: int, rank: int = 4) -> int | None:
    """The axis of constant ``c`` that runs along the channels of a rank-``rank`` tensor it is
    broadcast against (None: it doesn't vary by channel alone)."""
    axis = c.ndim - (rank - 1)
    if 0 <= axis < c.ndim and c.shape[axis] == channels and c.size == channels:
        return axis
    return None


def _chains(graph):
    """Each (A's label, A, the per-channel ops after it in graph order, B, B's label) in
    ``graph`` (a layer can be B of one and A of the next: only one is split)."""
    from collections import Counter

    names = Counter(n.name for n in graph.nodes)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    for a in graph.nodes:
        if not _layer(a) or len(a.outputs) != 1:
            continue
        name = _label(a, names)
        if name != a.name and names[name]:  # a label another node has as its name: ambiguous
            continue
        found = _region(graph, a)
        if found is not None:
            ops, b = found
            yield name, a, sorted(ops, key=lambda n: order[id(n)]), b, _label(b, names)


def _own_name(node, names) -> str | None:
    """The node's name where no other node has it."""
    return node.name if node.name and names[node.name] == 1 else None


def _label(node, names) -> str:
    """How a report names a layer: by its own name, else (a layer of an exporter that names no
    nodes) by the op and the tensor it makes, unique in any graph."""
    return _own_name(node, names) or f"{node.op} -> {node.outputs[0].name}"


def _region(graph, a) -> tuple[list, object] | None:
    """The ops from A's output to the one layer B that sums its channels, each acting on each
    channel alone (a DAG: an activation may read A's output twice), every tensor among them
    read only by them or B, and one of them B's input; else None."""
    channels = _channels(a)
    inside = {id(a.outputs[0])}  # the tensors the ops make (A's too), by id
    ops: dict[int, object] = {}
    exits: dict[int, object] = {}
    todo = [a.outputs[0]]
    while todo:
        t = todo.pop()
        if t in graph.outputs or not t.outputs:
            return None
        for n in t.outputs:
            if id(n) in ops or id(n) in exits:
                continue
            if _layer(n) and n.inputs[0] is t:
                exits[id(n)] = n
                continue
            if len(n.outputs) != 1 or n.op not in (*UNARY, "BatchNormalization", *BINARY):
                return None
            ops[id(n)] = n
            inside.add(id(n.outputs[0]))
            todo.append(n.outputs[0])
    if len(exits) != 1:
        return None
    (b,) = exits.values()
    t = b.inputs[0]
    if not (constant(b.inputs[1]).shape[1 if b.op == "Conv" else 0] == channels
            and channels >= 2 and len(t.shape or []) == 4 and len(t.outputs) == 1):
        return None
    # each op's inputs all come from the region or are constants (checked once the region is whole)
    if not all(_per_channel(n, inside, channels) for n in ops.values()):
        return None
    return list(ops.values()), b


def _pair(name: str, a, chain, b, then: str) -> Pair:
    def products(node) -> int:
        w = constant(node.inputs[1])
        out = node.outputs[0].shape or []
        spatial = int(np.prod([d for d in out[2:] if isinstance(d, int)] or [1]))
        per = int(np.prod(w.shape))
        if node.op == "ConvTranspose":  # proven by output phase: one tap in stride^2 meets a value
            per //= max(1, int(np.prod(node.attrs.get("strides", [1]))))
        return per * spatial
    return Pair(name, a.op, then, _channels(a), products(a) + products(b),
                b.outputs[0].name, a.inputs[0].name)


def _split(graph, a, chain: list, b, groups: int) -> None:
    import onnx_graphsurgeon as gs

    from collections import Counter

    channels = _channels(a)
    x, out = a.inputs[0], b.outputs[0]
    names = Counter(n.name for n in graph.nodes)
    # a layer without a name of its own: its groups are named by what it makes, apart from any other
    a_name, b_name = (_own_name(n, names) or n.outputs[0].name for n in (a, b))
    region = {id(a.outputs[0]), *(id(op.outputs[0]) for op in chain)}
    total = None
    for g, idx in enumerate(np.array_split(np.arange(channels), groups)):
        def named(base: str) -> str:
            return f"{base}/group{g}"

        w = constant(a.inputs[1])
        inputs = [x, gs.Constant(named(a.inputs[1].name), np.ascontiguousarray(w[idx] if a.op == "Conv" else w[:, idx]))]
        if len(a.inputs) > 2 and a.inputs[2].name:
            inputs.append(gs.Constant(named(a.inputs[2].name), constant(a.inputs[2])[idx]))
        group = {id(a.outputs[0]): _node(graph, a, inputs, named, a_name)}  # each tensor of the region: group g's
        sliced: dict[str, object] = {}  # a constant two ops share: one slice, one name
        for op in chain:
            ins = []
            for o in op.inputs:
                if id(o) in region:  # made by an op before it in graph order, so made for this group
                    ins.append(group[id(o)])
                    continue
                c = constant(o)
                if c is None or c.size == 1:
                    ins.append(o)
                    continue
                if o.name not in sliced:
                    axis = 0 if op.op == "BatchNormalization" else _channel_axis(c, channels)
                    sliced[o.name] = gs.Constant(named(o.name), np.ascontiguousarray(np.take(c, idx, axis=axis)))
                ins.append(sliced[o.name])
            group[id(op.outputs[0])] = _node(graph, op, ins, named)
        t = group[id(b.inputs[0])]
        w = constant(b.inputs[1])
        inputs = [t, gs.Constant(named(b.inputs[1].name), np.ascontiguousarray(w[:, idx] if b.op == "Conv" else w[idx]))]
        if g == 0 and len(b.inputs) > 2 and b.inputs[2].name:
            inputs.append(b.inputs[2])
        part = _node(graph, b, inputs, named, b_name)
        if total is None:
            total = part
        else:
            total_out = gs.Variable(f"{out.name}/sum/group{g}", dtype=out.dtype)
            graph.nodes.append(gs.Node("Add", named(f"{b_name}/sum"), {}, [total, part], [total_out]))
            total = total_out
    for node in (a, *chain, b):
        node.inputs.clear()
        node.outputs.clear()
    total.inputs[0].outputs[0] = out  # the last sum makes B's tensor: B's consumers (or the graph) read it


def _node(graph, like, inputs: list, named, name: str | None = None):
    import onnx_graphsurgeon as gs

    y = gs.Variable(named(like.outputs[0].name), dtype=like.outputs[0].dtype)
    graph.nodes.append(gs.Node(like.op, named(name or like.name or like.op), dict(like.attrs), inputs, [y]))
    return y
