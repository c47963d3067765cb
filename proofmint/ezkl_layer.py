"""The only module that imports ezkl: every call proofmint makes into it, and one error map.

Why one layer: ezkl 23's Python module has sharp edges worth handling once — async calls that
need a running loop, stub files with wrong argument orders (the calls whose stubs are wrong
take keywords here), stdout reports, errors that are bare strings. Everything above this module sees paths in, typed
values out, and :class:`~proofmint.errors.ProofmintError` on failure.

ezkl holds the GIL for a whole synchronous call: long calls run in a child process
(:mod:`proofmint.jobs`), never in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import EzklPanicError, InvalidModelError, ProofmintError, ProvingError, WorkspaceError


def _ezkl():
    import ezkl

    return ezkl


def version() -> str:
    return _dist_version("ezkl")


# ---- errors ----

def error(step: str, exc: BaseException, hint: str | None = None) -> ProofmintError:
    """Name what went wrong in an ezkl call: the disk, the model, or ezkl itself. ``hint``
    is the likely cause and next step when the step itself has no better one."""
    first, lowered = first_line(exc, 400), str(exc).lower()
    if "no space left" in lowered:
        return WorkspaceError(f"ezkl {step} failed: the disk is full — free space or pick another "
                              "workspace with --workspace DIR or PROOFMINT_HOME")
    if "read-only file system" in lowered or "permission denied" in lowered:
        return WorkspaceError(f"ezkl {step} failed: can't write (read-only) — pick another workspace "
                              "with --workspace DIR or PROOFMINT_HOME")
    if "unsupported" in lowered or "unknown op" in lowered or "not implemented" in lowered:
        return InvalidModelError(f"ezkl can't turn this model into a circuit ({step}): {first}")
    if type(exc).__name__ == "PanicException":  # ezkl itself failed on something in the model
        return EzklPanicError(f"ezkl failed inside {step} (a panic: {first})" + (f" — {hint}" if hint else ""))
    return ProvingError(f"ezkl {step} failed: {first}" + (f" — {hint}" if hint else ""))


def _call(step: str, fn, *args, hint: str | None = None, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException, a BaseException
        raise error(step, exc, hint) from None


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


# ---- input JSON ({"input_data": [[...], ...]}: one list per graph input; read by proofmint.inputs) ----

def input_json(rows: np.ndarray, sizes: Sequence[int] | None = None) -> dict:
    """ezkl's input JSON for one or more flat inputs (rows of ``rows``): one list per graph
    input (``sizes`` = each input's length; default one input), each holding every row's
    values for that input back to back."""
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows.reshape(-1, rows.size if sizes is None else sum(sizes)) if rows.size else rows.reshape(0, 0)
    sizes = list(sizes or [rows.shape[1]])
    bounds = np.cumsum([0, *sizes])
    return {"input_data": [rows[:, a:b].ravel().tolist() for a, b in zip(bounds[:-1], bounds[1:])]}


def write_input(path: Path, rows: np.ndarray, sizes: Sequence[int] | None = None) -> Path:
    Path(path).write_text(json.dumps(input_json(rows, sizes)))
    return Path(path)


# ---- settings and circuits ----

def run_args(*, input_visibility: str, output_visibility: str, param_visibility: str,
             variables: list[tuple[str, int]] | None = None, layout: dict | None = None):
    ra = _ezkl().PyRunArgs()
    if variables:  # ezkl fixes symbolic dims from `variables`; a batch circuit sets N
        ra.variables = variables
    ra.input_visibility = input_visibility
    ra.output_visibility = output_visibility
    ra.param_visibility = param_visibility
    for name, value in (layout or {}).items():
        setattr(ra, name, value)
    return ra


def gen_settings(model: Path, settings: Path, run_args=None) -> None:
    """ezkl's default run args when ``run_args`` is None (bare ezkl's recipe)."""
    kwargs = {"py_run_args": run_args} if run_args is not None else {}
    ezkl = _ezkl()
    try:
        ezkl.gen_settings(str(model), str(settings), **kwargs)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # before any data or scale: the graph itself is the problem
        err = error("gen_settings", exc)
        if isinstance(err, ProvingError):
            err = InvalidModelError(f"ezkl can't turn {Path(model).name} into a circuit: {first_line(exc)} — "
                                    "replace that layer, or see README 'Any ONNX model' for what "
                                    "proofmint rewrites")
        raise err from None


def calibrate_settings(data: Path, model: Path, settings: Path, target: str,
                       scales: list[int] | None = None,
                       multipliers: list[int] | None = None) -> None:
    """ezkl's calibration; ``multipliers`` are the scale rebase multipliers it may pick from
    (ezkl's own default, when None, is 1 and 10)."""
    extra = {"scale_rebase_multiplier": multipliers} if multipliers else {}
    _call(f"calibrate_settings (target {target}, scales {scales})", _ezkl().calibrate_settings,
          str(data), str(model), str(settings), target, scales=scales, **extra)


def compile_circuit(model: Path, compiled: Path, settings: Path) -> None:
    _call("compile_circuit", _ezkl().compile_circuit, str(model), str(compiled), str(settings))


def gen_srs(path: Path, logrows: int) -> None:
    _call("gen_srs", _ezkl().gen_srs, str(path), logrows)


def setup(compiled: Path, vk: Path, pk: Path, srs: Path) -> None:
    _call("setup", _ezkl().setup, str(compiled), str(vk), str(pk), srs_path=str(srs))


# ---- witness, proof, verification ----

def gen_witness(data: Path, compiled: Path, out: Path, vk: Path | None = None,
                srs: Path | None = None, hint: str | None = None) -> dict:
    """The quantized model's run on ``data``; ``vk``/``srs`` are needed only when inputs or
    outputs are hashed or committed."""
    return _call("gen_witness", _ezkl().gen_witness, str(data), str(compiled), str(out),
                 vk_path=str(vk) if vk else None, srs_path=str(srs) if srs else None, hint=hint)


def prove(witness: Path, compiled: Path, pk: Path, out: Path, srs: Path, hint: str | None = None) -> None:
    _call("prove", _ezkl().prove, str(witness), str(compiled), str(pk), str(out), srs_path=str(srs),
          hint=hint)


def verify(proof: Path, settings: Path, vk: Path, srs: Path) -> tuple[bool, str]:
    """(valid, why): ezkl raises on malformed proofs, which is a rejection, not an error.

    ``reduced_srs``: the SHPLONK verifier needs only the SRS's first G1 point and its G2 pair;
    without it ezkl rebuilds the Lagrange basis of every point up to logrows (an FFT over the
    curve), which for an SRS larger than the circuit took minutes at logrows 19."""
    try:
        ok = _ezkl().verify(str(proof), str(settings), str(vk), srs_path=str(srs), reduced_srs=True)
    except Exception as exc:
        return False, f"ezkl rejected the proof: {first_line(exc)}"
    return bool(ok), "proof verifies" if ok else "proof does not verify"


# ---- field elements ----

def float_to_felt(value: float, scale: int) -> str:
    ezkl = _ezkl()
    return ezkl.float_to_felt(float(value), scale, ezkl.PyInputType.F32)


def felt_to_float(felt: str, scale: int) -> float:
    return _ezkl().felt_to_float(felt, scale)


def felt_to_uint(felt: str) -> int:
    """A field element (ezkl's little-endian hex) as the uint256 the EVM verifier reads."""
    return int(_ezkl().felt_to_big_endian(felt), 16)


def poseidon(felts: list[str]) -> list[str]:
    return _ezkl().poseidon_hash(felts)


def decode_outputs(witness: dict, output_scales: list[int]) -> list[np.ndarray]:
    """A witness's outputs as floats, one flat array per model output."""
    return [np.array([felt_to_float(f, scale) for f in felts], dtype=np.float64)
            for felts, scale in zip(witness["outputs"], output_scales)]


# ---- EVM verifiers (ezkl's async calls: they need a running loop even to be called) ----

def render_verifier(*, vk: Path, settings: Path, srs: Path, sol: Path, abi: Path,
                    vka: Path | None = None) -> bool:
    """ezkl renders (and checks with solc) the Solidity verifier; for a reusable one (``vka``
    given), also the circuit's VKA. Run it in a child: ezkl's exit sometimes aborts after."""
    ezkl = _ezkl()

    async def render():
        async def wait(res):
            return await res if inspect.isawaitable(res) else res

        ok = await wait(ezkl.create_evm_verifier(vk_path=str(vk), settings_path=str(settings),
                                                 sol_code_path=str(sol), abi_path=str(abi),
                                                 srs_path=str(srs), reusable=vka is not None))
        if ok and vka is not None:
            ok = await wait(ezkl.create_evm_vka(vk_path=str(vk), settings_path=str(settings),
                                                vka_path=str(vka), srs_path=str(srs)))
        return ok

    try:
        return bool(asyncio.run(render()))
    except Exception as exc:
        raise error("create_evm_verifier", exc) from None


# ---- build facts ----

def library() -> Path | None:
    """ezkl's compiled library (to tell a CPU-only build from a GPU one)."""
    return next(Path(_ezkl().__file__).parent.glob("ezkl*.so"), None)


def has_icicle() -> bool:
    """Whether this ezkl build holds ICICLE (GPU) code: the PyPI wheels hold none."""
    lib = library()
    return lib is not None and b"icicle" in lib.read_bytes().lower()
