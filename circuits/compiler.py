"""``proofmint compile``: ONNX -> settings -> compiled circuit -> keys, content-addressed.

model id = sha256(ONNX bytes). circuit id = sha256(model id, settings, SRS digest): the keys
depend on the SRS as much as on the settings, so one id names one verifying key.
A compile key (model id + options + calibration data + SRS) maps to the circuit id, so the
same compile again is a cache hit that runs neither calibration nor setup.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from proofmint import config, ezkl_layer, progress
from proofmint.encoding import Visibility
from proofmint.errors import EzklPanicError, InvalidModelError, UsageError
from proofmint.jobs import run_in_child
from proofmint.models.onnx_model import OnnxModel, load_onnx
from proofmint.store import Workspace, atomic_write_json, canonical_json, read_json, sha256_bytes, sha256_file

from . import (batching, calibrate, locate, package, rewrite as rewrite_mod, samples as samples_mod, segmented,
               srs as srs_mod)
from .fidelity import DEFAULT_TOLERANCE
from .package import CircuitPackage
from .segmented import SegmentedPackage
from .samples import load_samples


@dataclass
class CompileResult:
    circuit_id: str
    model_id: str
    cached: bool
    package: CircuitPackage | SegmentedPackage
    timings: dict
    srs_warning: str | None

    def to_dict(self) -> dict:
        return {"circuit_id": self.circuit_id, "model_id": self.model_id, "cached": self.cached,
                "timings": self.timings, "srs_warning": self.srs_warning,
                "package": self.package.to_dict() | {"dir": self.package.dir}}


def _model_meta(model: OnnxModel) -> dict:
    meta = model.path.parent / "model.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
            if data.get("model_id") == model.model_id:
                return data
        except (json.JSONDecodeError, OSError):
            pass
    return {}


def _task(model: OnnxModel, meta: dict) -> str:
    if meta.get("task") == "generation":
        return "regression"
    if meta.get("task") == "classification":
        return "classification"
    shapes = model.output_shapes
    is_logits = len(shapes) == 1 and len(shapes[0]) == 2 and shapes[0][1] > 1
    return "classification" if is_logits else "regression"


def _default_calibration(model: OnnxModel) -> Path | None:
    for name in ("calibration.json", "input.json"):
        p = model.path.parent / name
        if p.is_file():
            return p
    return None


def compile(model: str | Path, *, calibration: str | Path | None = None, target: str = "balanced",
            input_visibility: str = "public", output_visibility: str = "public",
            param_visibility: str = "fixed", srs: str | Path | None = None,
            workspace: str | Path | Workspace | None = None, batch: int = 1,
            tolerance: float = DEFAULT_TOLERANCE,
            budget: float = calibrate.DEFAULT_BUDGET_S, segments: int | None = None,
            max_key: int | str | None = None, link: str = "hashed",
            input_from: str | None = None, keys: str = "auto") -> CompileResult:
    """Compile an ONNX model into a proving circuit with keys, reusing any earlier compile.

    ``target="balanced"`` (the default) keeps the decoded outputs within ``tolerance`` of the
    float outputs' span on held-out samples (and argmax for classifiers), then picks the
    fastest circuit; ``budget`` bounds its search in seconds. ``batch`` > 1 compiles a
    circuit that proves that many inferences at once (a fixed-batch graph is batched as
    copies side by side).

    A model whose proving key would not fit ``max_key`` (bytes, or "256M"; default: 40 % of
    the memory to plan for) is compiled as linked segments, each key within it; ``segments``
    asks for that many. ``link`` binds each cut tensor across two proofs: "hashed" (a Poseidon
    hash both proofs make public: the values stay private) or "public". ``keys``: proving keys
    "kept" beside each circuit, or made by each proof just before it and deleted after
    ("on-demand": disk for one key, a setup's time per proof); "auto" keeps them unless a
    segmented model's keys together would not fit the workspace's disk. A circuit compiled
    before is switched to what ``keys`` asks (other than "auto").

    ``input_from`` (a circuit id in this workspace) declares that the model's input is that
    circuit's output (an upsampler of a generator's image): the input is read at that circuit's
    output scale and visibility, so a token of this model can prove it was made from a token of
    that one (its proven input commitment is the parent's proven outputs')."""
    _check_numbers(tolerance, budget, target, segments, link)
    if keys not in segmented.KEYS:
        raise UsageError(f"--keys {keys} — choose one of {', '.join(segmented.KEYS)}")
    split = Split(segments, config.size_bytes(max_key, "--max-key") if max_key is not None else None, link, keys)
    memory = config.memory_bytes()
    key_budget = split.max_key or int(memory / KEY_SHARE)
    if key_budget > memory / KEY_SHARE:
        progress.note(f"--max-key {calibrate.gib(key_budget)} is over {100 / KEY_SHARE:.0f} % of the "
                      f"{calibrate.gib(memory)} of memory to plan for: a prover peaks at 2-2.3x its key — prove its "
                      "largest keys where there is more")
    visibility = Visibility(input_visibility, output_visibility, param_visibility)
    ws = Workspace.resolve(workspace)
    onnx_model = load_onnx(model)
    _check_shape_options(batch, onnx_model, visibility)
    meta = _model_meta(onnx_model)
    calib_path = Path(calibration) if calibration else _default_calibration(onnx_model)
    user_srs = srs_mod.SRS(str(srs), "user", srs_mod.read_k(Path(srs)), sha256_file(Path(srs))) \
        if srs else None
    samples, digests = _samples(onnx_model, calib_path)
    lineage = _lineage(ws, input_from, onnx_model, visibility) if input_from else None
    key = sha256_bytes(canonical_json({
        "model": onnx_model.model_id, "target": target, "visibility": visibility.to_dict(),
        "srs": user_srs.sha256 if user_srs else "development", "batch": batch, "tolerance": tolerance,
        "samples": samples_mod.RECIPE, "split": [split.count, key_budget, split.link], **digests,
        **({"keys": keys} if keys != "auto" else {}),  # auto: what compiles before --keys were
        "input_from": lineage.to_dict() if lineage else None,
    }))
    started = time.perf_counter()
    cached = _cached(ws, key)
    if cached is not None:
        return _result(_switch_keys(ws, cached, keys), True, {"total": round(time.perf_counter() - started, 3)})
    ws.store_model(onnx_model.data)
    with ws.lock(f"compile-{key[:16]}"):
        cached = _cached(ws, key)  # another process may have finished it while we waited
        if cached is not None:
            return _result(_switch_keys(ws, cached, keys), True, {"total": round(time.perf_counter() - started, 3)})
        pkg, timings = run_in_child(
            _compile_job, str(ws.root), str(onnx_model.path), samples, target, visibility,
            user_srs.path if user_srs else None, _task(onnx_model, meta), batch, tolerance, budget,
            key_budget, split, meta.get("vocab"), lineage, what="compile", nests=True, memory=config.memory_bytes())
        atomic_write_json(ws.compile_entry(key), {"circuit_id": pkg.circuit_id})
    timings["total"] = round(time.perf_counter() - started, 3)
    return _result(pkg, False, timings)


def _check_numbers(tolerance, budget, target: str, segments, link: str) -> None:
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise UsageError(f"--tolerance must be a fraction of the output span in (0, 1), not {tolerance}")
    if not (isinstance(budget, (int, float)) and budget > 0):
        raise UsageError(f"--budget must be a number of seconds > 0, not {budget}")
    if target not in calibrate.TARGETS:
        raise UsageError(f"unknown target '{target}' — choose one of {', '.join(calibrate.TARGETS)}")
    if segments is not None and (not isinstance(segments, int) or isinstance(segments, bool) or segments < 1):
        raise UsageError(f"--segments must be a whole number >= 1 (1: one circuit, never cut), not {segments}")
    if link not in segmented.segments_mod.LINKS:
        raise UsageError(f"--link {link} — choose one of {', '.join(segmented.segments_mod.LINKS)}")


def _check_shape_options(batch: int, model: OnnxModel, visibility: Visibility) -> None:
    """Visibility and batch choices the model's inputs and outputs can't take."""
    if visibility.params_hashed:
        # ezkl puts a Poseidon hash of the weights among the instances but the verifying key
        # is the same for any weights of that shape: a proof made with other weights verifies.
        # Until the registry binds that hash, the option would promise what it doesn't check.
        raise UsageError("--param-visibility hashed does not bind the weights yet (any weights of "
                         "the same shape give the same verifying key) — use fixed, which bakes "
                         "them into the circuit")
    _check_batch(batch, model, visibility)
    if len(model.input_shapes) > 1 and visibility.input_hashed:
        raise UsageError(f"{model.path.name} has {len(model.input_shapes)} inputs: ezkl hashes "
                         "each separately, and proofmint commits to one input hash — use "
                         "--input-visibility public or private for a multi-input model")
    if len(model.output_shapes) > 1 and visibility.output_hashed:
        raise UsageError(f"{model.path.name} has {len(model.output_shapes)} outputs: ezkl hashes "
                         "each separately, and a token records one outputs commitment — use "
                         "--output-visibility public for a multi-output model")


def _samples(model: OnnxModel, calib_path: Path | None) -> tuple[samples_mod.Samples, dict]:
    """The samples to calibrate and judge on, and digests of the files they came from (the
    compile key's). The folder's input.json is judged wherever calibration came from."""
    given = load_samples(calib_path, model) if calib_path is not None else None
    if given is not None:
        samples_mod.check_defined(model, given, str(calib_path))
    beside = model.path.parent / "input.json"
    judged = None
    if beside.is_file() and (calib_path is None or beside.resolve() != calib_path.resolve()):
        judged = load_samples(beside, model)
        samples_mod.check_defined(model, judged, str(beside))
    return samples_mod.prepare(given, model, judged), {
        "calibration": sha256_file(calib_path) if calib_path is not None else "standard-normal",
        "judged": sha256_file(beside) if judged is not None else None}


def _check_batch(batch: int, model: OnnxModel, visibility: Visibility) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise UsageError(f"--batch must be a whole number >= 1, not {batch}")
    if batch == 1:
        return
    if len(model.output_shapes) > 1:
        raise UsageError(f"{model.path} has {len(model.output_shapes)} outputs; --batch supports "
                         "models with one output tensor")
    if len(model.input_shapes) > 1:
        raise UsageError(f"{model.path} has {len(model.input_shapes)} inputs; --batch supports "
                         "models with one input tensor")
    if visibility.output_hashed:
        raise UsageError("--batch needs --output-visibility public: each inference's token "
                         "records its own outputs, which one hash of the batch would hide")


def _switch_keys(ws: Workspace, pkg: CircuitPackage | SegmentedPackage, keys: str):
    """A compile found in the cache, its proving keys kept or made by each proof as ``keys``
    asks (a later compile asked the other way: its circuits are shared)."""
    if keys == "auto":
        return pkg
    on_demand = keys == "on-demand"
    for part in pkg.packages(ws) if isinstance(pkg, SegmentedPackage) else [pkg]:
        with ws.lock(f"circuit-{part.circuit_id[:32]}"):
            package.keep_keys(part, on_demand)
    if isinstance(pkg, SegmentedPackage) and pkg.pk_on_demand != on_demand:
        pkg.pk_on_demand = on_demand
        pkg.save()
    return pkg


def _cached(ws: Workspace, key: str) -> CircuitPackage | SegmentedPackage | None:
    entry = ws.compile_entry(key)
    if not entry.is_file():
        return None
    try:
        cid = read_json(entry)["circuit_id"]
        found = segmented.load(ws, cid)
        if found is not None:
            found.packages(ws)  # every segment complete
            return found
        return package.load(ws, cid)
    except Exception:
        return None  # a stale entry is recompiled, never trusted


@dataclass(frozen=True)
class Lineage:
    """A model whose input is another circuit's output, whole or a named slice of it: that
    circuit, the scale its output is at (the input is read there, so both proofs hold the same
    field elements), and where among one inference's output instances the input begins
    (``start``: the registry's ``inputFromStart``)."""

    parent: str
    scale: int
    visibility: str
    start: int = 0

    def to_dict(self) -> dict:
        return {"parent": self.parent, "scale": self.scale, "visibility": self.visibility, "start": self.start}


_SLICE = re.compile(r"^(?P<id>[0-9a-fA-F]{8,64})(?::(?P<name>[^\[\]]+))?(?:\[(?P<a>\d*):(?P<b>\d*)\])?$")


def _lineage(ws: Workspace, spec: str, model: OnnxModel, visibility: Visibility) -> Lineage:
    """The parent output ``--input-from`` names (``ID``, ``ID:OUTPUT``, ``ID:OUTPUT[A:B]`` or
    ``ID[A:B]``), checked against the model's input."""
    m = _SLICE.match(spec.strip())
    if m is None:
        raise UsageError(f"--input-from {spec}: write CIRCUIT, CIRCUIT:OUTPUT (one of its output tensors) or "
                         "CIRCUIT:OUTPUT[A:B] (values A to B-1 of it, flattened)")
    chain = segmented.load(ws, m["id"])
    if chain is not None:
        last = chain.packages(ws, verify_only=True)[-1]
        parent, scales, shapes, out_vis = chain.circuit_id, last.output_scales, chain.output_shapes, chain.visibility.output
    else:
        pkg = package.load(ws, m["id"], verify_only=True)
        parent, scales, shapes, out_vis = pkg.circuit_id, pkg.output_scales, pkg.output_shapes, pkg.visibility.output
    sizes = [int(np.prod(s)) for s in shapes]
    names = [o.name for o in onnx.load((chain or pkg).path / "model.onnx", load_external_data=False).graph.output]
    if len(model.input_shapes) != 1:
        raise UsageError(f"--input-from links a parent's output to one input: {model.path.name} has "
                         f"{len(model.input_shapes)} inputs")
    if m["name"] is None and len(shapes) != 1:
        raise UsageError(f"circuit {parent[:12]} has {len(shapes)} outputs ({', '.join(names)}): name the one "
                         f"this model reads, --input-from {parent[:12]}:{names[0]}")
    if m["name"] is not None and m["name"] not in names:
        raise UsageError(f"circuit {parent[:12]} has no output {m['name']!r}; its outputs: {', '.join(names)}")
    k = 0 if m["name"] is None else names.index(m["name"])
    ranged = m["a"] is not None
    a, b = (int(m["a"] or 0), int(m["b"] or sizes[k])) if ranged else (0, sizes[k])
    if not 0 <= a < b <= sizes[k]:
        raise UsageError(f"--input-from {spec}: [{a}:{b}] is not a range within output {names[k]!r}'s "
                         f"{sizes[k]} values")
    if ranged and (a, b) != (0, sizes[k]) and out_vis == "hashed":
        raise UsageError(f"circuit {parent[:12]}'s outputs are hashed: a proof commits to each output tensor "
                         "whole, so a range of one can't be checked against it — take the whole output, or "
                         "compile that model with --output-visibility public")
    if b - a != model.input_size:
        raise UsageError(f"circuit {parent[:12]}'s output {names[k]!r}{f'[{a}:{b}]' if ranged else ''} is "
                         f"{b - a} values; {model.path.name} takes {model.input_size} — it can't read that as its input")
    if visibility.input != out_vis:
        raise UsageError(f"circuit {parent[:12]}'s output is {out_vis}: pass --input-visibility {out_vis} so "
                         "both proofs commit to the input the same way")
    return Lineage(parent, scales[k], out_vis, k if out_vis == "hashed" else sum(sizes[:k]) + a)


def check_chosen_key(model: OnnxModel, chosen, key_budget: int, batch: int, lineage: bool,
                     target: str = "balanced") -> None:
    """Before setup: the size check assumed the search halves the rows at ezkl's default
    layout; the circuit it chose (its tables, its logrows) must still have a key in budget.
    (With the default options compile proves such a model as linked segments instead.)"""
    if chosen.key_bytes <= key_budget:
        return
    way = ("lower --batch" if batch > 1 else
           "compile it without --input-from to prove it as linked segments" if lineage else
           "compile it with the default --target balanced to prove it as linked segments" if target != "balanced" else
           "prove it as linked segments (--segments 2 or more)")
    raise InvalidModelError(
        f"{model.path.name}: the circuit chosen (logrows {chosen.logrows}) needs a proving key of about "
        f"{calibrate.gib(chosen.key_bytes)}, over the {calibrate.gib(key_budget)} budget — {way}, "
        "or raise --max-key (or PROOFMINT_MEMORY)")


# A circuit's key may take 40 % of the memory to plan for; more is split. A prover's peak was
# 2.0-2.3x a key of 1 GB or more (bench/results/segmented-cpu-2core: the GPT's segments, lenet_5,
# generator28), so a key at the budget leaves 8 % of the memory: the estimate is at most 17 % over.
KEY_SHARE = 2.5


@dataclass(frozen=True)
class Split:
    """What the user asked of segmenting: a count (``--segments``), a key budget (``--max-key``,
    bytes) and how cut tensors are linked."""

    count: int | None = None
    max_key: int | None = None
    link: str = "hashed"
    keys: str = "auto"  # segmented.KEYS: kept, or made by each proof


def _segmented(ws: Workspace, model: OnnxModel, graph: OnnxModel, samples, visibility: Visibility, task: str,
               tolerance: float, budget: float, key_budget: int, split: Split, srs_path: str | None,
               scratch: Path, rows: int, key: int, batch: int, target: str, timings: dict,
               vocab: list[str] | None, rewrites: list):
    if batch > 1:
        raise UsageError(f"{model.path.name} is compiled as linked segments ({rows:,} rows at ezkl's defaults); "
                         "--batch is for single circuits — prove one inference per proof chain")
    if target != "balanced":
        raise UsageError(f"--target {target} is ezkl's calibration of one circuit; a segmented model "
                         "takes the default, balanced")
    why = ("--segments" if split.count else
           f"its key (about {calibrate.gib(key)}) is over the {calibrate.gib(key_budget)} "
           + ("--max-key" if split.max_key else "memory budget (PROOFMINT_MEMORY, or this machine's)"))
    progress.note(f"{model.path.name}: {rows:,} rows at ezkl's defaults — proven as linked segments ({why})")
    pkg = segmented.compile_segmented(
        ws, model, graph, samples, visibility=visibility, task=task, tolerance=tolerance, budget=budget,
        budget_bytes=key_budget, count=split.count, link=split.link, srs_path=srs_path,
        work=scratch / "segments", timings=timings, vocab=vocab, rewrites=[r.to_dict() for r in rewrites],
        keys=split.keys)
    return pkg, timings


def _result(pkg: CircuitPackage | SegmentedPackage, cached: bool, timings: dict) -> CompileResult:
    return CompileResult(pkg.circuit_id, pkg.model_id, cached, pkg, timings, pkg.srs_warning)


def _compile_job(ws_root: str, onnx_path: str, samples: samples_mod.Samples, target: str,
                 visibility: Visibility, srs_path: str | None, task: str, batch: int,
                 tolerance: float, budget: float, key_budget: int, split: Split, vocab: list[str] | None = None,
                 lineage: Lineage | None = None) -> tuple[CircuitPackage | SegmentedPackage, dict]:
    """Runs in a child process: calibrate, compile, SRS, setup. Returns the saved package: one
    circuit, or linked segments when one circuit's key would not fit ``key_budget`` (or
    ``split`` asks for them). ``vocab``: what each output position names (a text model's
    characters, from its model.json), kept so the asset can show text, not class numbers."""
    ws = Workspace(Path(ws_root))
    model = load_onnx(onnx_path)
    timings: dict = {}
    if samples.built:
        progress.note(samples.built)
    scratch = ws.scratch("compile")
    try:
        with progress.step("rewrite unsupported layers"):
            graph, rewrites = rewrite_mod.rewrite(model, scratch / "rewritten.onnx", samples.calibration)
        for r in rewrites:
            progress.note(f"rewrote {r.op} '{r.node}' as {r.into} (checked in float)")
        if batch > 1 and graph.batch_axis is None:  # a fixed batch: N copies side by side
            with progress.step(f"batch {batch} copies of the graph side by side"):
                graph = load_onnx(batching.side_by_side(graph, batch, scratch / "circuit.onnx"))
        calib_file, probe_file = scratch / "calibration.json", scratch / "probe.json"
        for path, data in ((calib_file, samples.calibration), (probe_file, samples.probe)):
            # ezkl calibrates whole batches: pad the data to a multiple of the batch size
            padded = np.concatenate([c.items for c in samples_mod.batches(data, batch)])
            ezkl_layer.write_input(path, padded, model.input_sizes)
        try:
            rows, key = calibrate.size(graph, visibility, scratch, batch)
            if split.count == 1 and key > key_budget:
                raise InvalidModelError(
                    f"{model.path.name}: one circuit of {rows:,} rows needs a proving key of about "
                    f"{calibrate.gib(key)}, over the {calibrate.gib(key_budget)} budget — leave out --segments 1 to "
                    "prove it as linked segments, or raise --max-key (or PROOFMINT_MEMORY)")
            if split.count != 1 and (split.count or key > key_budget):
                if lineage is not None:
                    raise UsageError(f"{model.path.name} would be proven as linked segments, and --input-from "
                                     "is for a single circuit — drop --input-from, or raise --max-key")
                return _segmented(ws, model, graph, samples, visibility, task, tolerance, budget, key_budget,
                                  split, srs_path, scratch, rows, key, batch, target, timings, vocab, rewrites)
            with progress.step("choose settings") as t:
                chosen, report = calibrate.choose(target, model, graph, calib_file, probe_file,
                                                  samples.heldout, task, visibility, scratch, tolerance,
                                                  batch, budget, rows=rows,
                                                  scale=lineage.scale if lineage else None)
            if chosen.key_bytes > key_budget and split.count is None and lineage is None and batch == 1 \
                    and target == "balanced":  # the scale its outputs need outgrew the size check's estimate
                progress.note(f"{model.path.name}: the circuit that keeps its outputs (logrows {chosen.logrows}) "
                              f"needs a key of about {calibrate.gib(chosen.key_bytes)}, over the "
                              f"{calibrate.gib(key_budget)} budget")
                return _segmented(ws, model, graph, samples, visibility, task, tolerance, budget, key_budget, split,
                                  srs_path, scratch, rows, chosen.key_bytes, batch, target, timings, vocab, rewrites)
        except EzklPanicError as exc:  # ezkl names no layer: find the node it fails on
            with progress.step("find the node ezkl fails on"):
                raise locate.explain(exc, graph, visibility, scratch / "locate") from None
        check_chosen_key(model, chosen, key_budget, batch, lineage is not None, target)
        report.graph = ("native" if graph is model else
                        "side-by-side" if batch > 1 and model.batch_axis is None else "rewritten")
        report.rewrites = rewrite_mod.row_costs(graph, rewrites, chosen.settings, scratch) if rewrites else []
        report.samples = samples.report()
        timings["settings"] = t["seconds"]
        settings = chosen.settings
        logrows = settings["run_args"]["logrows"]
        with progress.step("SRS") as t:
            srs = srs_mod.resolve(logrows, srs_path)
        timings["srs"] = t["seconds"]
        input_from = (lineage.parent, lineage.start) if lineage else None
        circuit_id = package.circuit_id_of(model.model_id, settings, srs.sha256, input_from)
        dest = ws.circuit_dir(circuit_id)
        # Two compile options can choose the same circuit: one setup, under a lock.
        with ws.lock(f"circuit-{circuit_id[:32]}"):
            if (dest / "package.json").is_file():
                pkg = package.load(ws, circuit_id)
                if split.keys != "auto":
                    package.keep_keys(pkg, split.keys == "on-demand")
                return pkg, timings | {"setup": 0.0, "reused_keys": True}
            calibrate.check_disk(chosen.key_bytes, ws.root, "its proving key")
            pkg, timings["setup"] = package.create(ws, dest, model, graph, chosen, report, samples.accepted,
                                                   target, visibility, task, srs, circuit_id, batch, vocab,
                                                   input_from, pk_on_demand=split.keys == "on-demand")
        return pkg, timings
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
