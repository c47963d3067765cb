"""JSTprove on one model, for ``proofmint bench --corpus``: run by JSTprove's own interpreter
(its wheel is for Python 3.12 only), so it imports nothing of proofmint.

    python3.12 jstprove_run.py MODEL.onnx SAMPLES.json WORKDIR  ->  one JSON object on stdout

SAMPLES.json holds {"inputs": [[...], ...]}: the first is proven and verified, every one is
run through the circuit (a witness) for its outputs. JSTprove's witness is a JST container
(a zstd-compressed msgpack map); its ``expected_output`` holds the outputs in fixed point at
the scale its quantized input shows.
"""

import json
import math
import os
import sys
import time


def _shreds(path):
    import msgpack
    import zstandard

    data = open(path, "rb").read()
    start = data.index(b"\x28\xb5\x2f\xfd")  # the zstd frame after JST's header
    raw = zstandard.ZstdDecompressor().decompress(data[start:], max_output_size=1 << 31)
    return msgpack.unpackb(raw, strict_map_key=False)["shreds"]


def _scale(shreds, first_input, x):
    q = shreds.get(first_input)
    pairs = [(a, b) for a, b in zip(q or [], x) if abs(b) > 1e-3 and a]
    if not pairs:
        return None
    return 2 ** round(math.log2(sorted(abs(a / b) for a, b in pairs)[len(pairs) // 2]))


def main(model, samples_path, work):
    import jstprove
    import msgpack

    os.makedirs(work, exist_ok=True)
    inputs = json.load(open(samples_path))["inputs"]
    out = {"compatible": None}
    ok, reasons = jstprove.Circuit.is_compatible(model)
    out["compatible"], out["reasons"] = bool(ok), [str(r) for r in reasons][:5]
    if not ok:
        return out
    t = time.perf_counter()
    circuit = jstprove.Circuit.compile(model, os.path.join(work, "bundle"))
    out["compile_s"] = round(time.perf_counter() - t, 3)
    outputs, witness_s = [], []
    for i, x in enumerate(inputs):
        inp = os.path.join(work, f"input{i}.msgpack")
        with open(inp, "wb") as f:
            f.write(msgpack.packb({"input": x}))
        t = time.perf_counter()
        circuit.generate_witness(inp, os.path.join(work, f"witness{i}"))
        witness_s.append(time.perf_counter() - t)
        shreds = _shreds(os.path.join(work, f"witness{i}"))
        first = next((k for k in shreds if not k.startswith(("/", "range_", "expected_"))), None)
        scale = _scale(shreds, first, x)
        q = shreds.get("expected_output")
        outputs.append(None if scale is None or q is None else [v / scale for v in q])
    out["witness_s"] = round(sorted(witness_s)[len(witness_s) // 2], 4)
    out["outputs"] = outputs
    t = time.perf_counter()
    circuit.prove(os.path.join(work, "witness0"), os.path.join(work, "proof"))
    out["prove_s"] = round(time.perf_counter() - t, 3)
    out["proof_bytes"] = os.path.getsize(os.path.join(work, "proof"))
    t = time.perf_counter()
    out["valid"] = bool(circuit.verify(os.path.join(work, "proof"), os.path.join(work, "input0.msgpack")))
    out["verify_s"] = round(time.perf_counter() - t, 3)
    return out


if __name__ == "__main__":
    stdout = os.dup(1)
    os.dup2(2, 1)  # JSTprove prints its layers as it builds them: stdout carries only the answer
    try:
        result = main(*sys.argv[1:4])
    except Exception as exc:  # its refusal, in its own words
        result = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"}
    os.write(stdout, (json.dumps(result) + "\n").encode())
