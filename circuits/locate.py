"""Which node of a graph ezkl fails on, when it fails without saying (a Rust panic such as
"index out of bounds: the len is 2 but the index is 2" names no layer).

The graph's nodes are cut into prefixes (the graph from its inputs up to node k's output) and
ezkl's ``gen_settings`` tried on them, bisecting for the first prefix that fails: about
log2(nodes) settings runs, each a fraction of a second on the small prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from proofmint import ezkl_layer
from proofmint.encoding import Visibility
from proofmint.errors import EzklPanicError, ProofmintError
from proofmint.models.onnx_model import OnnxModel, extract


@dataclass(frozen=True)
class Culprit:
    node: str
    op: str
    index: int  # its position among the graph's nodes, in order
    error: str  # ezkl's own words on that prefix


def first_failing_node(graph: OnnxModel, visibility: Visibility, work: Path) -> Culprit | None:
    """The first node whose prefix ezkl's gen_settings fails on, or None when every prefix passes
    (the failure is in the whole, or beyond settings)."""
    import onnx

    proto = onnx.load_model_from_string(graph.data)
    nodes = [n for n in proto.graph.node if n.op_type != "Constant" and n.output and n.output[0]]
    work.mkdir(parents=True, exist_ok=True)

    def fails(k: int) -> str | None:
        sub = work / f"prefix-{k}.onnx"
        try:
            extract(graph.path, sub, list(graph.input_names), [nodes[k].output[0]])
            ezkl_layer.gen_settings(sub, work / f"prefix-{k}.json", ezkl_layer.run_args(**visibility.run_args()))
        except EzklPanicError as exc:
            return str(exc)
        except ProofmintError:  # ezkl's clean refusals and prefixes onnx can't cut: not the panic
            return None
        except Exception:  # onnx.utils can't cut here (an input that isn't a tensor): skip
            return None
        return None

    lo, hi, found = 0, len(nodes) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        why = fails(mid)
        if why is not None:
            found, hi = (mid, why), mid - 1
        else:
            lo = mid + 1
    if found is None:
        return None
    k, why = found
    return Culprit(nodes[k].name or nodes[k].output[0], nodes[k].op_type, k, why)


def explain(exc: EzklPanicError, graph: OnnxModel, visibility: Visibility, work: Path) -> EzklPanicError:
    """``exc`` with the node that causes it named, and what to do."""
    culprit = first_failing_node(graph, visibility, work)
    if culprit is None:
        return EzklPanicError(f"{exc} — on {graph.path.name} as a whole (every part of it alone passes): "
                              "simplify the graph (onnxsim) or re-export it, and try again")
    return EzklPanicError(
        f"ezkl fails on {culprit.op} node '{culprit.node}' (node {culprit.index + 1} of {graph.path.name}): "
        f"{exc.message} — ezkl 23.0.5 can't prove this {culprit.op} as it stands; export the model "
        f"without it, or with it written as other standard ops")
