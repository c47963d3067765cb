"""A model bigger than one circuit, compiled as linked segments (one inference, several proofs).

The graph is cut (:mod:`.segments`), each segment becomes a circuit package of its own, and
a segmented package (``segments.json``) records their order, the cuts and the link. Across a
cut the carried tensors are ``hashed`` by default: segment i's output hash and segment i+1's
input hash are the same public instance, so the intermediate values stay private and any
verifier (a contract too) checks the link as an equality of instances.

A hash links only identical field elements, so a cut tensor has one scale on both sides:
every segment is calibrated at one input scale with ezkl's scale rebase multiplier 1, under
which ezkl brings every product back to the input scale, so each segment's outputs come out
at the scale the next one reads (checked, not assumed). Within that, each segment gets its
own range-check decomposition, as a single circuit does. Fidelity is measured end to end:
the held-out samples run through the chain of quantized segments, each fed the previous
one's decoded outputs, against the float model — the same contract as a single circuit.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from proofmint import progress
from proofmint.encoding import Visibility
from proofmint.errors import InvalidModelError, ProvingError, WorkspaceError
from proofmint.models.onnx_model import OnnxModel, extract, load_onnx
from proofmint.store import Workspace, atomic_write_bytes, atomic_write_json, canonical_json, read_json, sha256_bytes

from . import rewrite as rewrite_mod, segments as segments_mod, split, srs as srs_mod, witness as witness_mod
from .calibrate import check_disk, free_disk, gib
from .fidelity import acceptable, goal_text, measured, out_of_reach, quality_line
from .report import CompileReport
from .package import KEY_HEADROOM, CircuitPackage, circuit_id_of, create, keep_keys, load as load_package
from .samples import PROBE, Samples
from .search import MIN_HELDOUT, SCALES, SLOW_MEASURE_S, Search, SearchSpec
from .walk import fit_scale

MANIFEST = "segments.json"


@dataclass
class SegmentedPackage:
    """One model proven as consecutive segment circuits whose cut tensors are linked."""

    circuit_id: str
    model_id: str
    segments: list[str]  # the segment circuits' ids, in order
    link: str  # "hashed" or "public": how each cut tensor is bound across two proofs
    visibility: Visibility  # the model's own: its input (first segment) and output (last)
    input_shape: list[int]
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    task: str
    scale: int
    input_range: list[float]
    quantization: dict
    plan: dict  # the cuts and why (segments.Plan.to_dict)
    calibration_report: CompileReport | None = None
    srs_kind: str = "development"
    batch_size: int = 1
    vocab: list[str] | None = None  # what each output position names (a text model's characters)
    pk_on_demand: bool = False  # no proving keys kept: each proof makes its segment's key
    dir: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def input_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.input_shapes]

    @property
    def srs_warning(self) -> str | None:
        return srs_mod.DEV_WARNING if self.srs_kind == "development" else None

    def packages(self, ws: Workspace, *, verify_only: bool = False) -> list[CircuitPackage]:
        return [load_package(ws, c, verify_only=verify_only) for c in self.segments]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "dir"}

    def save(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.to_dict())


def known_fields(data: dict) -> dict:
    """A manifest's fields this version knows: one a later version added is not an error."""
    names = {f.name for f in fields(SegmentedPackage)} - {"dir"}
    return {k: v for k, v in data.items() if k in names}


def segmented_id(model_id: str, segment_ids: list[str], link: str) -> str:
    return sha256_bytes(canonical_json({"model": model_id, "segments": segment_ids, "link": link}))


def load(ws: Workspace, circuit_id: str) -> SegmentedPackage | None:
    """The segmented package ``circuit_id`` names (a unique prefix of 8+), or None when it names none."""
    root = ws.circuits()
    found = [p for p in root.glob(f"{circuit_id}*") if (p / MANIFEST).is_file()] \
        if root.is_dir() and len(circuit_id) >= 8 else []
    if len(found) != 1:
        return None
    data = read_json(found[0] / MANIFEST)
    try:
        data["visibility"] = Visibility.of(data["visibility"])
        data["calibration_report"] = CompileReport.from_dict(data.get("calibration_report") or {"target": "unknown"})
        pkg = SegmentedPackage(**known_fields(data))
    except (TypeError, KeyError) as exc:
        raise WorkspaceError(f"{found[0]}/{MANIFEST} is not a segmented package ({exc}) — compile again") from None
    pkg.dir = str(found[0])
    return pkg


# ---- compile ----

@dataclass
class _Segment:
    """One segment during the search: its graph and the samples that reach it."""

    index: int
    model: OnnxModel
    visibility: Visibility
    calibration: np.ndarray
    probe: np.ndarray
    heldout: np.ndarray
    search: Search | None = None


def compile_segmented(ws: Workspace, model: OnnxModel, graph: OnnxModel, samples: Samples, *,
                      visibility: Visibility, task: str, tolerance: float, budget: float,
                      budget_bytes: int, count: int | None, link: str, srs_path: str | None,
                      work: Path, timings: dict, vocab: list[str] | None = None,
                      rewrites: list[dict] | None = None, keys: str = "auto") -> SegmentedPackage:
    """Plan the cuts, search one scale for the whole chain (the cheapest that keeps the
    model's outputs end to end), set each segment up, and save the segmented package
    (``rewrites``: what compile rewrote in ``model`` to make ``graph``, recorded in its report).
    ``keys``: whether the proving keys are kept or made by each proof (:data:`KEYS`)."""
    if link not in segments_mod.LINKS:
        raise InvalidModelError(f"unknown link '{link}' — choose one of {', '.join(segments_mod.LINKS)}")
    started = time.monotonic()
    plan, graph, rewrites = _plan(model, graph, samples, visibility, budget_bytes, count, link, work, rewrites)
    for s in plan.segments:
        progress.note(f"segment {s.index}: {s.nodes} nodes, {s.rows:,} rows at ezkl's defaults"
                      + (f", then carries {s.end.values} values" if s.end else ""))
    _keys_on_demand(keys, [s.key_bytes for s in plan.segments], ws.root)
    segs = _extract(graph, plan, visibility, link, samples, work)
    chosen, quality, tried = _search(segs, model, samples, task, tolerance, budget, started, work)
    _check_keys(segs, chosen, budget_bytes, model)
    on_demand = _keys_on_demand(keys, [c.key_bytes for c in chosen], ws.root, say=True)
    report = CompileReport("balanced", goal_text(task, tolerance), tolerance=tolerance, plan=plan.to_dict(),
                           scales_tried=tried, link=link, search_seconds=round(time.monotonic() - started, 2),
                           samples=samples.report(), rewrites=rewrites or [])
    timings["settings"] = round(time.monotonic() - started, 3)
    ids, srs_kind = [], "development"
    t = time.monotonic()
    for seg, cand in zip(segs, chosen):
        with progress.step(f"segment {seg.index}: SRS + setup (logrows {cand.logrows})"):
            srs = srs_mod.resolve(cand.logrows, srs_path)
            srs_kind = srs.kind
            cid = circuit_id_of(seg.model.model_id, cand.settings, srs.sha256)
            dest = ws.circuit_dir(cid)
            with ws.lock(f"circuit-{cid[:32]}"):
                if (dest / "package.json").is_file():  # compiled before: kept or made on demand as asked now
                    keep_keys(load_package(ws, cid), on_demand)
                else:
                    reach = np.concatenate([seg.calibration, seg.heldout])
                    create(ws, dest, seg.model, seg.model, cand,
                           CompileReport("balanced", chosen=cand.summary(), segment=seg.index),
                           [float(reach.min()), float(reach.max())], "balanced", seg.visibility,
                           "regression", srs, cid, 1, pk_on_demand=on_demand)
            ids.append(cid)
    timings["setup"] = round(time.monotonic() - t, 3)
    sid = segmented_id(model.model_id, ids, link)
    pkg = SegmentedPackage(
        circuit_id=sid, model_id=model.model_id, segments=ids, link=link, visibility=visibility,
        input_shape=list(model.input_shape), input_shapes=[list(s) for s in model.input_shapes],
        output_shapes=[list(s) for s in model.output_shapes], task=task, scale=chosen[0].scale,
        input_range=samples.accepted, quantization=quality, plan=plan.to_dict(),
        calibration_report=report, srs_kind=srs_kind, vocab=vocab, pk_on_demand=on_demand,
        dir=str(ws.circuit_dir(sid)))
    pkg.path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(pkg.path / "model.onnx", model.data)  # the float reference, and what the id names
    pkg.save()
    return pkg


def _plan(model: OnnxModel, graph: OnnxModel, samples: Samples, visibility: Visibility, budget_bytes: int,
          count: int | None, link: str, work: Path, rewrites: list[dict] | None):
    """The plan, and the graph and rewrites it cuts: ``graph`` as compile rewrote it where a
    plan fits; where none does, the model with its costliest splittable layer in channel
    groups (:mod:`.split`), the fewest of :data:`split.GROUPS` whose groups each fit."""
    def planned(g: OnnxModel, why: str | None = None) -> segments_mod.Plan:
        return segments_mod.plan(g, visibility, work / "plan", budget_bytes=budget_bytes, count=count, link=link,
                                 name=model.path.name, **({"two": why} if why else {}))

    try:
        return planned(graph), graph, rewrites
    except InvalidModelError as exc:
        if count is not None:  # --segments N cuts the graph as exported; the message says what can
            raise
        refused = exc
    # a cut never carries the model's input (only consecutive segments are linked): a layer
    # that reads it leaves no cut between its groups
    pair = next((p for p in split.pairs(model) if p.reads not in model.input_names), None)
    tried = [g for g in split.GROUPS if pair and g <= pair.channels]
    for groups in tried:
        with progress.step(f"split {pair.node!r} into {groups} channel groups"):
            g, applied = rewrite_mod.grouped(model, work / f"grouped-{groups}.onnx", samples.calibration, pair, groups)
            planner = segments_mod.Planner(g, visibility, link, work / f"groups-{groups}")
            ends = [next((c for c in planner.cuts if pair.sum_after(i, groups) in c.tensors), None) for i in (1, 2)]
        if not all(ends):
            break  # no cut after the sums (more than two tensors cross there): more groups make none
        key = planner.key(*ends)
        if key is None or key > budget_bytes:
            continue  # one group alone is over: more groups
        progress.note(f"{model.path.name}: no cut fits {gib(budget_bytes)} — {pair.node!r} "
                      f"split into {pair.into(groups)} (a group's segment: about {gib(key)})")
        plan = planned(g, f"{pair.node!r} split into {groups} channel groups: a cut between two carries "
                          "the layer's input and the running sum")
        return plan, g, [a.to_dict() for a in applied]
    if not tried:
        raise refused
    raise InvalidModelError(
        f"{model.path.name} can't be cut into segments whose keys each fit {gib(budget_bytes)}, "
        f"not even with {pair.node!r} split into up to {groups} channel groups — raise --max-key, or prove on a "
        "machine with more memory")


def _extract(graph: OnnxModel, plan: segments_mod.Plan, visibility: Visibility, link: str,
             samples: Samples, work: Path) -> list[_Segment]:
    """Each segment's ONNX file and the float values that reach it from every sample."""
    import onnx

    outputs = [o.name for o in onnx.load_model_from_string(graph.data).graph.output]
    segs = []
    for s in plan.segments:
        path = work / f"segment-{s.index}" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        extract(graph.path, path, list(s.start.tensors), list(s.end.tensors) if s.end else outputs)
        vis = segments_mod.segment_visibility(visibility, link, first=s.index == 0, last=s.end is None)
        segs.append(_Segment(s.index, load_onnx(path), vis, samples.calibration, samples.probe, samples.heldout))
    for prev, seg in zip(segs, segs[1:]):  # what reaches each segment, in float
        seg.calibration, seg.probe, seg.heldout = (_run(prev.model, xs) for xs in (prev.calibration, prev.probe, prev.heldout))
    return segs


def _run(model: OnnxModel, xs: np.ndarray) -> np.ndarray:
    return np.stack([np.concatenate([o.ravel() for o in model.run(x)]) for x in xs])


KEYS = ("auto", "kept", "on-demand")  # auto: kept where they all fit the disk, else on demand


def _keys_on_demand(keys: str, sizes: list[int], folder: Path, say: bool = False) -> bool:
    """Whether the segments' proving keys are made by each proof instead of kept: asked, or
    (``auto``) where they would not fit the disk together but one at a time does. Refuses
    in one line where not even that fits. Setup makes each key once at compile either way
    (for its verifying key), one at a time."""
    free, total, largest = free_disk(folder), sum(sizes), max(sizes)
    on_demand = keys == "on-demand" or (keys == "auto" and total + KEY_HEADROOM > free)
    check_disk(largest + KEY_HEADROOM if on_demand else total, folder,
               "proofs that make their segment's key" if on_demand else f"the {len(sizes)} segments' keys",
               "" if on_demand else " (or --keys on-demand: disk for one key, a setup's time per proof)")
    if say and on_demand:
        progress.note(f"proving keys made on demand: each proof makes its segment's key (up to {gib(largest)}) "
                      "first and deletes it after" + (f" — the {len(sizes)} keys together (about {gib(total)}) "
                                                       f"would not fit the {gib(free)} free in {folder}"
                                                       if keys == "auto" else ""))
    return on_demand


def _check_keys(segs: list[_Segment], chosen: list, budget_bytes: int, model: OnnxModel) -> None:
    """Before any setup: the plan sized each segment at ezkl's defaults, and the scale the
    chain needs can take more rows (a wider lookup table) and columns (a table split, the
    Freivalds argument of a product of two computed tensors): every key must still fit. The
    zoo GPT's first segment passed the flat hashed rate (5.4 GB at logrows 19) and its setup
    wrote 11.1 GB under a 6 GiB budget; :func:`candidate.key_bytes` counts its columns."""
    for seg, cand in zip(segs, chosen):
        key = cand.key_bytes
        if key > budget_bytes:
            raise InvalidModelError(
                f"{model.path.name}: segment {seg.index} needs logrows {cand.logrows} at the scale the chain keeps "
                f"the outputs at ({cand.settings['run_args']['input_scale']}), a proving key of about {gib(key)}, "
                f"over the {gib(budget_bytes)} budget — cut it finer (--segments {len(segs) + 1} or more) or "
                "raise --max-key")


def _search(segs: list[_Segment], model: OnnxModel, samples: Samples, task: str, tolerance: float,
            budget: float, started: float, work: Path) -> tuple[list, dict, list[dict]]:
    """The first scale (cheapest) at which every segment calibrates, each segment's outputs
    come out at the next one's input scale, and the chain keeps the model's outputs."""
    from proofmint import ezkl_layer

    tried, best = [], None
    for i, seg in enumerate(segs):
        wdir = work / f"search-{i}"
        wdir.mkdir(parents=True, exist_ok=True)
        calib, probe = wdir / "calibration.json", wdir / "probe.json"
        ezkl_layer.write_input(calib, seg.calibration, seg.model.input_sizes)
        ezkl_layer.write_input(probe, seg.probe[:PROBE], seg.model.input_sizes)
        seg.search = Search(SearchSpec(seg.model, seg.model, calib, probe, seg.heldout, "regression",
                                       seg.visibility, wdir, tolerance, 1, budget, multipliers=(1,)))
    with progress.step("segmented: search scales", total=len(SCALES)):
        for scale in SCALES:
            progress.advance("segmented: search scales")
            if time.monotonic() - started > budget:
                break
            cands, why = [], None
            for seg in segs:
                seg.search.started = started
                cand, _ = fit_scale(seg.search, scale, None)
                if cand is None:
                    why = f"segment {seg.index} does not calibrate at scale {scale}"
                    break
                why = _unlinked(seg.index, len(segs), cand, scale)
                if why:
                    break
                cands.append(cand)
            if why:
                tried.append({"scale": scale, "why": why})
                continue
            try:
                quality = measure_chain(cands, segs, model, samples.heldout, task, tolerance, work)
            except ProvingError as exc:
                tried.append({"scale": scale, "why": str(exc)[:200]})
                continue
            tried.append({"scale": scale, "logrows": [c.logrows for c in cands],
                          "rows": [c.settings["num_rows"] for c in cands], "quality": quality})
            best = quality if best is None or quality["relative_max_error"] < best["relative_max_error"] else best
            if acceptable(quality, tolerance):
                return cands, quality, tried
    if best is None:
        raise InvalidModelError(f"no scale in {list(SCALES)} calibrates every segment of "
                                f"{model.path.name} ({tried[-1]['why'] if tried else 'budget spent'}) — "
                                "pass a larger --budget, or other cuts (--segments N)")
    raise InvalidModelError(
        f"no segmented circuit kept {model.path.name}'s outputs within {tolerance:.2%} of their span "
        f"end to end (best: {quality_line(best)}) — pass --tolerance {max(2 * best['relative_max_error'], 2 * tolerance):.2g} "
        "to accept that error, or calibration data closer to the inputs you will prove")


def _unlinked(index: int, count: int, cand, scale: int) -> str | None:
    """Why a segment's values would not link at ``scale``, or None: what it reads from the
    previous segment and what it hands the next must both be at the chain's scale. (The first
    segment's own input may be at another: token ids are whole numbers, scale 0.)"""
    outs = cand.settings["model_output_scales"]
    if index > 0 and cand.scale != scale:
        return f"segment {index} reads its input at scale {cand.scale}, not {scale}: the hashes would differ"
    if index < count - 1 and any(o != scale for o in outs):
        return (f"segment {index}'s outputs come out at scale(s) {outs}, not {scale}: its hash would not "
                "match the next segment's")
    return None


def chain_outputs(compiled: list[Path], scales: list[list[int]], sizes: list[list[int]], x: np.ndarray,
                  work: Path, lookup_ranges: list[list[int]] | None = None,
                  vks: list[Path | None] | None = None, srss: list[Path | None] | None = None,
                  ) -> tuple[list[dict], list[Path]]:
    """The quantized chain on one input: each segment's witness, fed the previous one's decoded
    outputs (so a hashed link matches). Returns the witnesses and their paths."""
    witnesses, paths, v = [], [], np.asarray(x, dtype=np.float64)
    for i, comp in enumerate(compiled):
        wpath, w = witness_mod.generate(comp, v, work, stem=f"seg{i}", sizes=sizes[i],
                                        vk=vks[i] if vks else None, srs=srss[i] if srss else None)
        if lookup_ranges:
            witness_mod.check_lookups(w, lookup_ranges[i], f"segment {i}'s input")
        v = np.concatenate([o.ravel() for o in _decode(w, scales[i])])
        witnesses.append(w)
        paths.append(wpath)
    return witnesses, paths


def _decode(w: dict, scales: list[int]) -> list[np.ndarray]:
    from proofmint import ezkl_layer

    return ezkl_layer.decode_outputs(w, scales)


def measure_chain(cands: list, segs: list[_Segment], model: OnnxModel, heldout: np.ndarray,
                  task: str, tolerance: float, work: Path) -> dict:
    """End-to-end agreement of the chained quantized segments with the float model."""
    ref = [np.concatenate([o.ravel() for o in model.run(x)]) for x in heldout]
    quant, rejected = [], False
    wdir = work / "chain"
    wdir.mkdir(parents=True, exist_ok=True)
    name = f"measure the chain at scale {cands[-1].scale} on {len(heldout)} held-out samples"
    begun = time.monotonic()
    with progress.step(name, total=len(heldout)):
        for x in heldout:
            ws_, _ = chain_outputs([c.compiled_path for c in cands], [c.settings["model_output_scales"] for c in cands],
                                   [s.model.input_sizes for s in segs], x, wdir,
                                   [c.settings["run_args"]["lookup_range"] for c in cands])
            quant.append(np.concatenate([o.ravel() for o in _decode(ws_[-1], cands[-1].settings["model_output_scales"])]))
            progress.advance(name)
            rejected = out_of_reach(ref, quant, task, tolerance)
            if rejected or (len(quant) >= MIN_HELDOUT and time.monotonic() - begun > SLOW_MEASURE_S):
                break  # a slow chain is judged on MIN_HELDOUT samples, not fewer
    return measured(ref, quant, heldout, task, tolerance, model.reference, rejected)
