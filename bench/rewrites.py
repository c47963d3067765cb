"""``proofmint bench --rewrites``: what each ONNX rewrite costs in the circuit.

Each layer the rewrite pass replaces is exported from PyTorch (opset 18) between two
convolutions, and so is the nearest layer ezkl supports natively, of the same size (a dilated
3x3 conv against a plain 5x5 one: the same receptive field; a reflect pad against a zero pad;
per-channel PReLU against LeakyReLU; ``x ** y`` against ``x * x``; ``repeat`` against ``cat``).
Both are compiled with proofmint's defaults and proven once, in the same run: rows, logrows,
prove time and the measured error, side by side.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from proofmint import api, progress
from proofmint.errors import ProofmintError
from proofmint.prover import load_bundle
from proofmint.store import Workspace

INPUT_SHAPE = (1, 2, 6, 6)


def pairs() -> dict:
    """Each rewritten layer (as torch exports it) with the nearest natively supported one."""
    import torch
    from torch import nn

    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("e", torch.tensor([2.0]))  # a tensor exponent, as torch exports x ** y

        def forward(self, x):
            return x ** self.e

    class Times(nn.Module):
        def forward(self, x):
            return x * x

    class Repeat(nn.Module):
        def forward(self, x):
            return x.repeat(1, 1, 2, 1)

    class Cat(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], dim=2)

    return {  # rewritten layer, nearest native layer
        "dilated conv": (lambda: nn.Conv2d(3, 3, 3, padding=2, dilation=2), lambda: nn.Conv2d(3, 3, 5, padding=2)),
        "reflection pad": (lambda: nn.ReflectionPad2d(1), lambda: nn.ZeroPad2d(1)),
        "replication pad": (lambda: nn.ReplicationPad2d(1), lambda: nn.ZeroPad2d(1)),
        "constant pad 2.0": (lambda: nn.ConstantPad2d(1, 2.0), lambda: nn.ZeroPad2d(1)),
        "maxpool with padding": (lambda: nn.MaxPool2d(3, stride=1, padding=1),
                                 lambda: nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(3, stride=1))),
        "prelu per channel": (lambda: nn.PReLU(3), lambda: nn.LeakyReLU(0.25)),
        "pow": (Square, Times),
        "tile": (Repeat, Cat),
        "transposed conv stride 2": (lambda: nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1),
                                     lambda: nn.ConvTranspose2d(3, 3, 3, padding=1)),
    }


def sandwich(mid):
    """``mid`` between two convolutions, as it sits in a real network."""
    from torch import nn

    class Sandwich(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.mid, self.b = nn.Conv2d(2, 3, 3, padding=1), mid, nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.b(self.mid(self.a(x)))

    return Sandwich()


def _export(mid, folder: Path) -> tuple[Path, Path]:
    import torch

    torch.manual_seed(1)
    module = sandwich(mid).eval()
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.randn(*INPUT_SHAPE)
    torch.onnx.export(module, (x,), str(folder / "model.onnx"), dynamo=False, opset_version=18)
    (folder / "input.json").write_text(json.dumps({"input_data": [x.numpy().ravel().tolist()]}))
    return folder / "model.onnx", folder / "input.json"


def _measure(onnx: Path, inp: Path, ws: Workspace, out: Path) -> dict:
    t = time.perf_counter()
    c = api.compile(onnx, workspace=ws)
    compile_s = time.perf_counter() - t
    res = api.prove(c.circuit_id, input=inp, out=out, workspace=ws)
    if res.failures or not api.verify(res.bundles[0], workspace=ws).valid:
        raise ProofmintError(f"{onnx}: the proof failed: {res.failures}")
    pkg, q = c.package, c.package.quantization
    return {"rows": pkg.num_rows, "logrows": pkg.logrows, "compile_s": round(compile_s, 2),
            "prove_s": load_bundle(res.bundles[0]).timings["prove"],
            "relative_max_error": q["relative_max_error"],
            "rewrites": [r["op"] for r in pkg.calibration_report.rewrites]}


def run(out: Path, ws: Workspace) -> list[dict]:
    rows = []
    for name, (rewritten, native) in pairs().items():
        with progress.step(f"rewrite bench: {name}"):
            row = {"layer": name}
            for side, make in (("rewritten", rewritten), ("native", native)):
                onnx, inp = _export(make(), out / "models" / name.replace(" ", "_") / side)
                row[side] = _measure(onnx, inp, ws, out / "proofs" / f"{name}-{side}.json")
            rows.append(row)
    return rows


def markdown(rows: list[dict], machine_line: str) -> str:
    lines = ["# What each ONNX rewrite costs: the rewritten layer vs the nearest native one", "",
             machine_line, "", "Each between Conv(2->3, 3x3) and Conv(3->2, 3x3) on a 2x6x6 input, opset 18, "
             "proofmint's defaults, one proof each.", "",
             "| layer (rewritten) | nearest native | rows | logrows | prove s | max error | rows ÷ native | "
             "prove ÷ native |", "|---|---|---|---|---|---|---|---|"]
    natives = {"dilated conv": "Conv 5x5", "reflection pad": "ZeroPad", "replication pad": "ZeroPad",
               "constant pad 2.0": "ZeroPad", "maxpool with padding": "ZeroPad + MaxPool",
               "prelu per channel": "LeakyReLU", "pow": "x * x", "tile": "cat"}
    for r in rows:
        a, b = r["rewritten"], r["native"]
        lines.append(f"| {r['layer']} | {natives[r['layer']]} | {a['rows']:,} vs {b['rows']:,} | "
                     f"{a['logrows']} vs {b['logrows']} | {a['prove_s']:.2f} vs {b['prove_s']:.2f} | "
                     f"{100 * a['relative_max_error']:.2f} % vs {100 * b['relative_max_error']:.2f} % | "
                     f"{a['rows'] / b['rows']:.2f} | {a['prove_s'] / b['prove_s']:.2f} |")
    return "\n".join(lines) + "\n"
