"""Where to cut a model too big for one circuit: consecutive segments, each one's proving key
within a budget, as even as the graph allows.

A cut after node k carries every tensor computed at or before k (or a graph input) that a
later node or the graph's output reads, the weights and what is made from them alone aside:
one tensor on a plain chain, two across a residual connection (the stream and its branch),
none inside a block that no tensor leaves whole.
Cuts are taken only where at most :data:`MAX_CARRIED` float tensors cross, preferring
positions that carry fewer values (each carried value is hashed into both proofs).

A segment's size is the rows ezkl's ``gen_settings`` lays out for it at its defaults, with
the links' hashing included (a Poseidon hash of every carried value), measured on the
extracted segment itself: ezkl's rows are not additive across ops, nor monotone in a
segment's span (hashing a wide tensor can cost more than the layers that narrow it). Its key
is sized from those settings' columns (:func:`candidate.key_bytes`: tables, Poseidon's and
Freivalds' columns), not a flat rate a row: a hashed attention segment's key is twice a hashed
plain one's at the same rows (20,295 vs 10,048 bytes a row here). The plan takes the fewest
segments whose keys fit the budget and, among those cuts, the ones whose largest segment is
smallest (minimax over the measured segments).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from proofmint import ezkl_layer, progress
from proofmint.encoding import Visibility
from proofmint.errors import InvalidModelError, ProofmintError
from proofmint.models.onnx_model import UNSUPPORTED_OPS, OnnxModel, extract, with_shapes

from .calibrate import gib
from .candidate import key_bytes

MAX_CARRIED = 2  # tensors one cut may carry: a residual block's stream and branch
LINKS = ("hashed", "public")  # how a cut tensor is bound across the two proofs


@dataclass(frozen=True)
class Boundary:
    """A place the graph can be cut: after node ``after`` (-1: before the first node)."""

    after: int
    tensors: tuple[str, ...]  # what crosses it, in graph order
    values: int  # how many numbers that is


@dataclass
class Segment:
    index: int
    start: Boundary
    end: Boundary | None  # None: the graph's outputs
    rows: int  # at ezkl's default settings, links included
    nodes: int
    key_bytes: int  # its proving key at those settings (candidate.key_bytes)


@dataclass
class Plan:
    segments: list[Segment]
    budget_bytes: int
    why: str  # how the count and the cuts were chosen
    tried: dict = field(default_factory=dict)  # rows measured per (start, end) boundary pair

    def to_dict(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "why": self.why, "segments": [
            {"index": s.index, "inputs": list(s.start.tensors) if s.start.after >= 0 else None,
             "outputs": list(s.end.tensors) if s.end else None, "carried_values": s.end.values if s.end else 0,
             "rows": s.rows, "nodes": s.nodes, "key_bytes": s.key_bytes} for s in self.segments]}


def boundaries(graph: OnnxModel) -> tuple[list, list[Boundary]]:
    """The graph's nodes (constants aside) and every place it can be cut, in order."""
    import onnx

    proto = onnx.load_model_from_string(graph.data)
    shapes = _float_sizes(proto)
    constants = _constants(proto)
    nodes = [n for n in proto.graph.node if not all(o in constants for o in n.output if o)]
    last_use = _last_use(proto, nodes, constants)
    made: dict[str, int] = {t: -1 for t in graph.input_names}
    found = []
    for k, n in enumerate(nodes[:-1]):
        for t in n.output:
            made[t] = k
        live = tuple(t for t, at in made.items() if at <= k and last_use.get(t, -1) > k)
        if 0 < len(live) <= MAX_CARRIED and all(t in shapes for t in live) \
                and not any(t in graph.input_names for t in live):
            found.append(Boundary(k, live, sum(shapes[t] for t in live)))
    return nodes, found


def _float_sizes(proto) -> dict[str, int]:
    """Each float tensor of known shape, and how many values it holds."""
    proto = with_shapes(proto)  # a tensor without a known shape can't be carried
    sizes = {}
    for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]:
        t = v.type.tensor_type
        # a symbolic leading (batch) dim counts as one: ezkl fixes it the same way in every segment
        dims = [d.dim_value or (1 if i == 0 and d.dim_param else 0) for i, d in enumerate(t.shape.dim)]
        if t.elem_type == 1 and dims and all(d > 0 for d in dims):
            sizes[v.name] = math.prod(dims)
    return sizes


def _constants(proto) -> set[str]:
    """The tensors the weights alone fix: initializers, Constant nodes' and what a node that
    reads only those makes (an Identity an exporter put on a shared weight, a weight's
    Transpose). None crosses a cut: the segment that reads one computes it from the weights."""
    import onnx

    known = {i.name for i in proto.graph.initializer}
    for n in proto.graph.node:  # producers come first in a valid graph
        if n.op_type == "Constant" or (
                any(n.input) and all(not t or t in known for t in n.input) and n.op_type not in UNSUPPORTED_OPS
                and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)):
            known.update(o for o in n.output if o)
    return known


def _last_use(proto, nodes: list, constants: set[str]) -> dict[str, int]:
    """The index of the last node that reads each computed tensor (past the last: an output)."""
    last: dict[str, int] = {}
    for k, n in enumerate(nodes):
        for t in n.input:
            if t and t not in constants:
                last[t] = k
    for o in proto.graph.output:
        last[o.name] = len(nodes)
    return last


class Planner:
    """Cuts ``graph`` into segments under a key budget, measuring each candidate segment once."""

    def __init__(self, graph: OnnxModel, visibility: Visibility, link: str, work: Path, batch: int = 1):
        self.graph, self.visibility, self.link, self.work, self.batch = graph, visibility, link, work, batch
        self.nodes, self.cuts = boundaries(graph)
        self.start = Boundary(-1, tuple(graph.input_names), graph.input_size)
        self.rows: dict[tuple[int, int], int] = {}
        self.keys: dict[tuple[int, int], int] = {}
        work.mkdir(parents=True, exist_ok=True)

    def segment_rows(self, a: Boundary, b: Boundary | None) -> int:
        key = (a.after, b.after if b else len(self.nodes))
        if key not in self.rows:
            i = len(self.rows)
            onnx_path = self.work / f"probe-{i}.onnx"
            outs = list(b.tensors) if b else None
            extract(self.graph.path, onnx_path, list(a.tensors), outs or self._outputs())
            vis = segment_visibility(self.visibility, self.link, first=a.after < 0, last=b is None)
            args = ezkl_layer.run_args(**vis.run_args(), variables=self.variables)
            try:
                ezkl_layer.gen_settings(onnx_path, self.work / f"probe-{i}.json", args)
                settings = json.loads((self.work / f"probe-{i}.json").read_text())
                self.rows[key] = settings["num_rows"]
                self.keys[key] = key_bytes(settings, self.rows[key])
            except ProofmintError as exc:  # a cut ezkl can't read on one side: not a place to cut
                self.rows[key] = -1
                self.failed = str(exc)
        return self.rows[key]

    def key(self, a: Boundary, b: Boundary | None) -> int | None:
        """The proving key of the segment from ``a`` to ``b`` at ezkl's defaults (None: no circuit)."""
        return self.keys.get((a.after, b.after if b else len(self.nodes))) if self.segment_rows(a, b) >= 0 else None

    def _outputs(self) -> list[str]:
        import onnx

        return [o.name for o in onnx.load_model_from_string(self.graph.data).graph.output]

    @property
    def variables(self):
        return [(self.graph.batch_axis, self.batch)] if self.graph.batch_axis else None

    def pairs(self, bounds: list[Boundary], budget_bytes: int) -> dict[tuple[int, int], int]:
        """Rows of every segment between two of ``bounds`` (index ``len(bounds)``: the graph's
        end) whose key could be within ``budget_bytes``: from each start, later ends until two
        in a row are over it (a segment's rows grow with its span, give or take the hashing of
        what it carries: the zoo LeNet's first conv alone is 10,498 rows with its 256 outputs
        hashed, the conv and pool 11,554 with 64)."""
        out = {}
        for i, a in enumerate(bounds):
            over = 0
            for j in range(i + 1, len(bounds) + 1):
                b = bounds[j] if j < len(bounds) else None
                key = self.key(a, b)
                if key is not None and key <= budget_bytes:
                    out[(i, j)], over = self.segment_rows(a, b), 0
                else:
                    over += 1
                    if over >= 2:
                        break
        return out


def _minimax(pairs: dict[tuple[int, int], int], n: int, k: int) -> tuple[int, list[int]] | None:
    """The ends (indices into the boundaries; ``n`` the graph's end) of ``k`` consecutive
    segments from boundary 0 to ``n`` whose largest is smallest, and that size; None if none."""
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[-1] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0
    for m in range(1, k + 1):
        for (i, j), rows in pairs.items():
            cost = max(best[m - 1][i], rows)
            if cost < best[m][j]:
                best[m][j], back[m][j] = cost, i
    if best[k][n] == inf:
        return None
    ends, j = [], n
    for m in range(k, 0, -1):
        ends.append(j)
        j = back[m][j]
    return int(best[k][n]), ends[::-1]


def plan(graph: OnnxModel, visibility: Visibility, work: Path, *, budget_bytes: int,
         count: int | None = None, link: str = "hashed", batch: int = 1, name: str | None = None,
         two: str = "a cut across a residual connection carries both its tensors") -> Plan:
    """The segments ``graph`` is proven as: the fewest whose keys each fit ``budget_bytes``
    (or exactly ``count``), cut where the largest of them is smallest. Cuts that carry one
    tensor are tried first; cuts across a residual connection (two) only if those can't do it.
    ``name``: the user's file, which messages name (``graph`` may be its rewritten copy);
    ``two``: why the plan says a cut carries two tensors."""
    name = name or graph.path.name
    planner = Planner(graph, visibility, link, work, batch)
    if not planner.cuts:
        raise InvalidModelError(f"{name} has no place to cut it: no point where at most "
                                f"{MAX_CARRIED} float tensors of known shape cross")
    single = [c for c in planner.cuts if len(c.tensors) == 1]
    found = None
    with progress.step("plan the segments"):
        for cuts in ([single, planner.cuts] if single and len(single) < len(planner.cuts) else [planner.cuts]):
            bounds = [planner.start] + cuts
            pairs = planner.pairs(bounds, budget_bytes)
            n = len(bounds)
            for k in ([count] if count else range(2, n + 1)):
                result = _minimax(pairs, n, k) if k <= n else None
                if result is not None:
                    found = (k, result)
                    break
            if found is not None:
                break
    if found is None:
        fewest = next((k for k in range(2, n + 1) if _minimax(pairs, n, k)), None) if count else None
        raise InvalidModelError(
            f"{name} can't be cut into {count or 'any number of'} segments whose keys each fit "
            f"{gib(budget_bytes)} (each sized at ezkl's defaults by its columns)"
            + (f"; {fewest} segments can — pass --segments {fewest}" if fewest else "")
            + " — raise --max-key, or prove on a machine with more memory")
    k, (largest, ends) = found
    segments, start = [], 0
    for idx, end in enumerate(ends):
        a, b = bounds[start], bounds[end] if end < len(bounds) else None
        nodes = (b.after if b else len(planner.nodes) - 1) - a.after
        segments.append(Segment(idx, a, b, pairs[(start, end)], nodes, planner.key(a, b)))
        start = end
    why = (f"{k} segments, as asked" if count else
           f"{k} segments: the fewest whose proving keys each fit {gib(budget_bytes)}")
    why += (f"; cut where the largest is smallest ({largest:,} rows at ezkl's defaults)"
            + ("" if all(len(s.start.tensors) == 1 for s in segments[1:]) else f"; {two}"))
    return Plan(segments, budget_bytes, why, {f"{a}-{b}": r for (a, b), r in planner.rows.items()})


def segment_visibility(model: Visibility, link: str, *, first: bool, last: bool) -> Visibility:
    """A segment's visibility: the model's own at the model's input and output, the link's
    across every cut."""
    return Visibility(model.input if first else link, model.output if last else link, model.param)

