"""Where a model is cut into segments, and what a segmented compile promises: every key within
the budget, one scale across every cut, the model's outputs end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from proofmint.circuits import segments
from proofmint.circuits.candidate import Candidate, key_bytes
from proofmint.encoding import Visibility
from proofmint.errors import InvalidModelError
from proofmint.models import load_onnx


class Residual(nn.Module):
    """Two residual blocks between an input and an output layer: inside a block two tensors
    cross any cut (the stream and its branch), between blocks one."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)) for _ in range(2))
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


def _residual(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "residual.onnx"
    torch.onnx.export(Residual().eval(), (torch.rand(1, 6),), str(path), opset_version=18, dynamo=False)
    return load_onnx(path)


def test_cuts_carry_one_tensor_between_blocks_and_both_inside_one(tmp_path):
    model = _residual(tmp_path)
    nodes, cuts = segments.boundaries(model)
    ops = [n.op_type for n in nodes]
    singles = [c for c in cuts if len(c.tensors) == 1]
    doubles = [c for c in cuts if len(c.tensors) == 2]
    # one tensor leaves each residual Add (and the input layer); inside a block, two cross
    assert all(ops[c.after] in ("Gemm", "Add") for c in singles), [(ops[c.after], c.tensors) for c in singles]
    assert len([c for c in singles if ops[c.after] == "Add"]) == 2
    assert doubles and all(c.values == 16 for c in doubles)


def test_a_weight_an_exporter_passes_through_nodes_is_never_carried_across_a_cut(tmp_path):
    """An Identity on a shared weight, or a weight's Transpose, sits first in many exporters'
    graphs and is read only by the last layer: it is computed from the weights in the segment
    that reads it, not carried (hashed) through every cut before."""
    import onnx
    from onnx import helper

    model = _residual(tmp_path)
    proto = onnx.load(str(model.path))
    last = proto.graph.node[-1]
    assert last.op_type == "Gemm"
    shared = helper.make_node("Identity", [last.input[1]], ["out.weight/shared"])
    flipped = helper.make_node("Transpose", ["out.weight/shared"], ["out.weight/t"], perm=[1, 0])
    back = helper.make_node("Transpose", ["out.weight/t"], ["out.weight/tt"], perm=[1, 0])
    last.input[1] = "out.weight/tt"
    nodes = [shared, flipped, back, *proto.graph.node]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    onnx.save(proto, str(tmp_path / "shared.onnx"))
    shared_model = load_onnx(tmp_path / "shared.onnx")
    assert np.allclose(shared_model.run(np.ones(6, np.float32))[0], model.run(np.ones(6, np.float32))[0])
    _, plain = segments.boundaries(model)
    _, cuts = segments.boundaries(shared_model)
    assert [(c.tensors, c.values) for c in cuts] == [(c.tensors, c.values) for c in plain]
    p = segments.plan(shared_model, Visibility(), tmp_path / "plan", budget_bytes=2**30, count=3)
    assert len(p.segments) == 3 and all(len(s.start.tensors) == 1 for s in p.segments[1:])


def test_the_plan_cuts_at_block_boundaries_and_keeps_every_key_within_the_budget(tmp_path):
    model = _residual(tmp_path)
    p = segments.plan(model, Visibility(), tmp_path / "plan", budget_bytes=2**30, count=3)
    assert len(p.segments) == 3 and "as asked" in p.why
    assert all(len(s.start.tensors) == 1 for s in p.segments[1:])  # a one-tensor cut wherever one serves
    assert p.segments[0].start.after == -1 and p.segments[-1].end is None
    for a, b in zip(p.segments, p.segments[1:]):
        assert a.end == b.start
    # the tightest budget one-tensor cuts allow: every segment's key within it
    tight = max(s.key_bytes for s in p.segments)
    q = segments.plan(model, Visibility(), tmp_path / "plan2", budget_bytes=tight)
    assert all(s.key_bytes <= tight for s in q.segments)
    assert json.loads(json.dumps(q.to_dict()))["segments"][0]["rows"] == q.segments[0].rows


def test_a_segment_the_residual_stream_passes_through_is_a_place_to_cut(tmp_path):
    """Between two cuts inside one block the stream crosses untouched: the segment's input is
    also its output. tract can't type such a graph ("Translating node #0 ... Source"), which
    kept every cut inside a GPT's attention off the plan; the carried tensor is now read
    through an Identity, under its own name at the output, so the links still meet."""
    import onnx

    model = _residual(tmp_path)
    planner = segments.Planner(model, Visibility(), "hashed", tmp_path / "plan")
    doubles = [c for c in planner.cuts if len(c.tensors) == 2]
    a, b = next((a, b) for a, b in zip(doubles, doubles[1:]) if set(a.tensors) & set(b.tensors))
    stream = (set(a.tensors) & set(b.tensors)).pop()
    assert planner.segment_rows(a, b) > 0, getattr(planner, "failed", None)
    cut = onnx.load(tmp_path / "plan" / "probe-0.onnx").graph
    assert [o.name for o in cut.output] == list(b.tensors) and stream in [o.name for o in cut.output]
    assert stream not in [i.name for i in cut.input] and len(cut.input) == 2


class Decoder(nn.Module):
    """The zoo's generator28 in miniature: a dense layer to 2 maps of 4x4, a transposed conv."""

    def __init__(self):
        super().__init__()
        self.project, self.up = nn.Linear(4, 2 * 4 * 4), nn.ConvTranspose2d(2, 1, 4, stride=2, padding=1)

    def forward(self, z):
        return torch.sigmoid(self.up(torch.relu(self.project(z)).view(-1, 2, 4, 4)))


def test_a_cut_after_a_reshape_of_a_batched_model_is_a_place_to_cut(tmp_path):
    """A DCGAN-shaped decoder with a symbolic batch: shape inference names the batch of the
    Reshape's output afresh (``unk__0``); each segment keeps the model's batch symbol, which
    ezkl's ``variables`` fix, so every segment after the Reshape is measured (it used to be
    unreadable: "Undetermined symbol in expression")."""
    torch.manual_seed(0)
    path = tmp_path / "decoder.onnx"
    torch.onnx.export(Decoder().eval(), (torch.rand(1, 4),), str(path), opset_version=18, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    model = load_onnx(path)
    assert model.batch_axis == "batch"
    planner = segments.Planner(model, Visibility(), "hashed", tmp_path / "plan")
    (reshaped,) = [c for c in planner.cuts if any("Reshape" in t for t in c.tensors)]
    assert planner.segment_rows(reshaped, None) > 0, getattr(planner, "failed", None)


def test_a_budget_no_cut_can_meet_is_refused_in_one_line(tmp_path):
    model = _residual(tmp_path)
    with pytest.raises(InvalidModelError, match=r"can't be cut into any number of segments whose keys each fit 1 MiB"):
        segments.plan(model, Visibility(), tmp_path / "plan", budget_bytes=2**20)


def test_segment_visibility_is_the_models_at_its_ends_and_the_links_between():
    model = Visibility("hashed", "public", "fixed")
    assert segments.segment_visibility(model, "hashed", first=True, last=False) == Visibility("hashed", "hashed", "fixed")
    assert segments.segment_visibility(model, "hashed", first=False, last=False) == Visibility("hashed", "hashed", "fixed")
    assert segments.segment_visibility(model, "public", first=False, last=True) == Visibility("public", "public", "fixed")


def test_a_hashed_link_is_planned_at_the_hashed_key_size(tmp_path):
    """A Poseidon-hashed input or output takes ~10 KB of key a row on plain layers (10,048 in
    keys.json: Poseidon's columns, on a domain twice as wide), not a public circuit's ~4 KB: a
    plan at 4 KB put EZKL lenet_5's segments at 2.6 GB each under a 1 GiB --max-key. Each segment is sized from its probe's
    columns, hashing included, and every key is within the budget."""
    model = _residual(tmp_path)
    budget = 2**26
    per_row = {}
    for link in ("public", "hashed"):
        p = segments.plan(model, Visibility(), tmp_path / f"plan-{link}", budget_bytes=budget, link=link)
        assert all(s.key_bytes <= budget for s in p.segments)
        per_row[link] = [s.key_bytes / 2 ** s.rows.bit_length() for s in p.segments]
    assert min(per_row["hashed"]) - max(per_row["public"]) >= 6_000, per_row  # Poseidon's columns


@pytest.mark.slow  # compiles three circuits
def test_a_segmented_compile_links_one_scale_and_keeps_the_outputs_end_to_end(segmented):
    pkg, ws = segmented["compile"].package, segmented["ws"]
    parts = pkg.packages(ws)
    assert len(parts) == 3 and pkg.link == "hashed"
    for a, b in zip(parts, parts[1:]):  # the cut tensor has one scale on both sides
        assert a.output_scales == [b.input_scale] * len(a.output_scales) == [pkg.scale] * len(a.output_scales)
        assert a.visibility.output == "hashed" and b.visibility.input == "hashed"
    assert parts[0].visibility.input == "public" and parts[-1].visibility.output == "public"
    q = pkg.quantization
    assert q["relative_max_error"] <= 0.01 and q["samples"] >= 16
    assert np.isclose(sum(s["nodes"] for s in pkg.plan["segments"]), 7)  # every node of the LeNet, once
    # the key each segment was checked at before its setup bounds the key its setup made
    for part in parts:
        settings = json.loads((part.path / "settings.json").read_text())
        assert part.pk_bytes <= key_bytes(settings) <= 1.15 * part.pk_bytes, (part.pk_bytes, key_bytes(settings))


def test_a_chain_whose_scale_outgrows_the_budget_is_refused_before_any_setup(tmp_path):
    """The plan sizes segments at ezkl's defaults; the scale the chain needs can take more rows
    (a sigmoid's or an exp's table grows with the scale: the zoo GPT's segments went from
    logrows 19 to 20). Checked on the chosen settings before any setup, in one line."""
    from types import SimpleNamespace

    from proofmint.circuits.segmented import _check_keys

    segs = [SimpleNamespace(index=i) for i in range(2)]
    chosen = [Candidate("s11", _gpt_segment_settings(lr), tmp_path, tmp_path) for lr in (18, 19)]
    model = SimpleNamespace(path=tmp_path / "gpt.onnx")
    _check_keys(segs, chosen, chosen[1].key_bytes, model)  # both fit
    with pytest.raises(InvalidModelError, match=r"gpt.onnx: segment 1 needs logrows 19 .* over the .* budget — "
                                                r"cut it finer \(--segments 3 or more\)"):
        _check_keys(segs, chosen, chosen[1].key_bytes - 1, model)


def _gpt_segment_settings(logrows: int) -> dict:
    """The zoo GPT's (size tiny) first segment at scale 11, as ezkl calibrated it here: its setup
    wrote an 11,143,812,651-byte key at logrows 19 (21,255 bytes a row). It holds the token
    embedding's Gather: ezkl's one dynamic lookup. Its shuffles were not recorded then: softmax's
    max takes them: the same model's attention segments, recorded since, hold 64 (keys.json)."""
    return {"num_rows": 477_216, "num_dynamic_lookups": 1, "total_dynamic_col_size": 1536, "num_shuffles": 64,
            "required_lookups": [{"Exp": {"scale": 2048.0, "base": 2.7182817}}],
            "required_range_checks": [[0, 8191], [-1, 1], [0, 1]],
            "einsum_params": {"total_einsum_col_size": 22_056},
            "run_args": {"logrows": logrows, "input_scale": 11, "num_inner_cols": 2, "lookup_range": [-359_950, 0],
                         "input_visibility": "Public", "output_visibility": {"Hashed": {"hash_is_public": True}}}}


KEYS = json.loads((Path(__file__).parent / "keys.json").read_text())["keys"]


@pytest.mark.parametrize("key", KEYS, ids=[k["what"] for k in KEYS])
def test_a_key_is_sized_at_or_above_the_key_ezkl_wrote(key):
    """Every proving key measured here (keys.json: ezkl 23.0.5's setup on layers at 1-4 inner
    columns, public, hashed and polycommitted, tables whole and split; EZKL's examples; the
    suite's own circuits, the zoo GPT's segments) is at most its estimate, and the estimate at
    most 18 % over it. The previous fit (256 bytes a row a counted column) ranged 0.31-1.46x of
    these: under on shuffles (max pools, softmax), split tables, a lookup's output column and
    polycommitment."""
    assert key["pk_bytes"] <= key_bytes(key["settings"]) <= 1.18 * key["pk_bytes"]


def test_a_key_is_sized_by_its_columns_before_its_setup():
    """A flat hashed rate (10,240 bytes a row) put the GPT segment above at 5.4 GB, within a 6 GiB
    budget; its setup wrote 11.1 GB. Counted by columns and the constraints' degree, the estimate
    is at or above the key setup writes, 6 % over. An attention segment without the embedding
    wrote 10,640,299,299 bytes; these settings less the lookup stand in for its (the same layers,
    tables and columns): 3 % over, five columns (inner + 3) less, so a budget between the two cuts
    the embedding off (what let the GPT prove in 23.5 GB). A dynamic table longer than 2^logrows
    takes those columns again for each 2^logrows, as a fixed one does."""
    written, attention = 11_143_812_651, 10_640_299_299
    column = 32 * (2 + 8) * 2**19  # a column at logrows 19 on the degree-9 domain (ext 8)
    assert written <= key_bytes(_gpt_segment_settings(19)) <= 1.07 * written
    assert key_bytes(_gpt_segment_settings(19)) > 6 * 2**30 > 10_240 * 2**19
    plain = {k: v for k, v in _gpt_segment_settings(19).items() if "dynamic" not in k}
    assert attention <= key_bytes(plain) <= 1.04 * attention
    dynamic = key_bytes(_gpt_segment_settings(19)) - key_bytes(plain)
    assert 5 * column <= dynamic <= 5 * column + 2**19  # and up to a byte a row for its selectors
    long_table = _gpt_segment_settings(19) | {"total_dynamic_col_size": 2**19 + 1}
    assert 10 * column <= key_bytes(long_table) - key_bytes(plain) <= 10 * column + 2 * 2**19


def test_a_table_split_over_columns_raises_the_keys_degree():
    """ezkl splits a table longer than a column (2^logrows less the blinding rows) and selects
    the part by a polynomial of the parts' count: past 5 parts the constraints' degree passes 9,
    and every column's coset doubles (keys.json's sigmoid at logrows 12, 10 parts, wrote 22,275 B
    a row; at logrows 13, 5 parts, 8,770; the settings here are a cut-down copy). Before a
    calibration the tables are ezkl's placeholders (its default lookup range, a 16,384-wide
    decomposition) that the search narrows to fit the rows: sized at the rows' logrows, one
    column each."""
    base = {"num_rows": 3_000, "required_lookups": [{"Sigmoid": {"scale": 16384.0}}], "required_range_checks": [[-1, 1]],
            "run_args": {"logrows": 12, "num_inner_cols": 1, "lookup_range": [-21_196, 17_250],
                         "input_visibility": "Public", "output_visibility": "Public"}}
    at = {lr: key_bytes(base | {"run_args": base["run_args"] | {"logrows": lr}}) / 2**lr for lr in (12, 13, 16)}
    assert at[12] > 2 * at[13] > 4 * at[16]
    narrow = base | {"required_range_checks": [[0, 1]], "run_args": base["run_args"] | {"lookup_range": [0, 0]}}
    ranged = base | {"required_range_checks": [[0, 16_383]], "run_args": base["run_args"] | {"lookup_range": [-32_768, 32_768]}}
    assert key_bytes(ranged, rows=3_000) == key_bytes(narrow, rows=3_000) == key_bytes(narrow)


@pytest.mark.parametrize("batch,lineage,target,way", [
    (1, False, "balanced", "prove it as linked segments (--segments 2 or more)"),
    (4, False, "balanced", "lower --batch"),
    (1, True, "balanced", "compile it without --input-from to prove it as linked segments"),
    (1, False, "resources", "compile it with the default --target balanced to prove it as linked segments"),
])
def test_a_single_circuit_chosen_over_the_budget_is_refused_before_its_setup(batch, lineage, target, way, tmp_path):
    """The size check sizes a circuit at half its rows: where the circuit the search chose needs
    more (the GPT segment's layout above as one circuit), compile refuses before the setup, in one
    line, with the way on that the options allow (segments can't batch or read --input-from)."""
    from types import SimpleNamespace

    from proofmint.circuits.compiler import check_chosen_key

    chosen = Candidate("s11", _gpt_segment_settings(19), tmp_path, tmp_path)
    model = SimpleNamespace(path=tmp_path / "gpt.onnx")
    check_chosen_key(model, chosen, chosen.key_bytes, batch, lineage, target)  # fits
    with pytest.raises(InvalidModelError, match=r"gpt.onnx: the circuit chosen \(logrows 19\) needs a proving key "
                                                r"of about 11(\.\d)? GiB, over the 10 GiB budget — " + re.escape(way)):
        check_chosen_key(model, chosen, 10 * 2**30, batch, lineage, target)



def test_keys_that_would_not_fit_the_disk_are_refused_before_any_setup(tmp_path):
    """The zoo GPT's 8 segment keys (~89 GB) on a disk with 72 GB free: the setups would have
    filled it part way through. Compile now sums the keys (after the plan, and again after the
    scale search) against the free space where the workspace is, and says where to go."""
    import shutil

    from proofmint.circuits.calibrate import check_disk

    free = shutil.disk_usage(tmp_path).free
    check_disk(1, tmp_path / "ws", "the 8 segments' keys")  # fits: nothing raised
    with pytest.raises(InvalidModelError, match=r"the 8 segments' keys need about .* of disk; .*/ws has .* free — "
                                                r"free space there, or set PROOFMINT_HOME \(or --workspace\) to a larger disk"):
        check_disk(free + 2**40, tmp_path / "ws", "the 8 segments' keys")


class Embed(nn.Module):
    """A token embedding and a layer after it: ids in, like the zoo GPT's first nodes."""

    def __init__(self):
        super().__init__()
        self.emb, self.out = nn.Embedding(32, 8), nn.Linear(8, 4)

    def forward(self, ids):
        return self.out(self.emb(ids))


def test_a_gather_at_input_indices_is_sized_with_its_dynamic_lookup(tmp_path):
    """ezkl lays out a Gather at input-dependent indices (a token embedding) as a dynamic lookup,
    with columns of its own: the zoo GPT's first segment wrote 960 bytes a row more than the same
    attention block without the embedding, and sized as if it had none, the embedding stayed in a
    segment whose proof needed more than this machine's memory. Read from ezkl's own settings at
    planning, a segment holding the Gather is sized with it, and one after it without."""
    torch.manual_seed(0)
    path = tmp_path / "embed.onnx"
    torch.onnx.export(Embed().eval(), (torch.zeros(1, 16, dtype=torch.long),), str(path),
                      opset_version=18, dynamo=False)
    planner = segments.Planner(load_onnx(path), Visibility("public", "public", "fixed"), "hashed", tmp_path / "plan")
    cut = next(c for c in planner.cuts if planner.nodes[c.after].op_type == "Gather")
    planner.segment_rows(planner.start, None)
    planner.segment_rows(cut, None)
    settings = {p.name: json.loads(p.read_text()) for p in (tmp_path / "plan").glob("probe-*.json")}
    whole, after = settings["probe-0.json"], settings["probe-1.json"]
    assert whole["num_dynamic_lookups"] >= 1 and after["num_dynamic_lookups"] == 0
    without = {k: v for k, v in whole.items() if k != "num_dynamic_lookups"}
    assert planner.key(planner.start, None) > key_bytes(without, whole["num_rows"])
