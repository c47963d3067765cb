"""``proofmint bench --node``: the prover node against one ``proofmint prove`` call per input and
against direct ezkl calls, on the same inputs in the same run; then a burst of submissions.

- direct ezkl: witness + prove with ezkl's Python calls in this process (no verify, no reference
  run): the floor any wrapper is measured against;
- ``proofmint prove``: one CLI process per input, as a script would call it;
- the node: one job of N inputs to ``proofmint serve`` (warm workers, one of them here, as
  many cores as the CLI gets; a one-input job first, as a long-running node has done before),
  from submit to the last item proven (each proof is verified and compared with the float
  model before it counts, like the CLI's);
- burst: 200 submissions as fast as one client sends them, to a node whose queue holds 50
  items: each is accepted (202) or refused (429 with Retry-After), none lost, and the health
  check's latency during the burst.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from proofmint import api, ezkl_layer, progress
from proofmint.circuits.package import proving_key
from proofmint.errors import ProofmintError
from proofmint.store import Workspace

from . import baseline

MODEL = "mlp"
BURST = 200
BURST_QUEUE = 50


def _post(url: str, body: dict, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"retry_after": exc.headers.get("Retry-After")}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def _serve(ws: Workspace, log: Path, max_queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "proofmint", "serve", "--port", str(port), "--workspace",
                             str(ws.root), "--max-queue", str(max_queue)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            _get(f"{url}/api/health")
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise ProofmintError(f"the node exited: {log.read_text()[-500:]}") from None
            time.sleep(0.2)
    raise ProofmintError("the node did not start in 120 s")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def run(out: Path, n: int, ws: Workspace) -> dict:
    e = api.models_export(MODEL, out=out / "models" / MODEL)
    c = api.compile(e.onnx, workspace=ws)
    pkg = c.package
    rows = np.asarray(json.loads(Path(e.calibration).read_text())["input_data"][0]).reshape(-1, *pkg.input_shape[1:])[:n]
    inputs = [r.reshape(pkg.input_shape) for r in rows]
    ezkl_layer.version()  # load ezkl before timing
    with progress.step(f"direct ezkl x{n}"):
        with proving_key(pkg) as pk:
            direct = [baseline.direct_prove(str(pkg.compiled), str(pk), str(pkg.vk), str(pkg.srs), x, 1)["median"]
                      for x in inputs]
    cli = []
    with progress.step(f"proofmint prove (one process per input) x{n}"):
        for i, x in enumerate(inputs):
            f = out / "inputs" / f"x{i}.json"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps({"input_data": [x.ravel().tolist()]}))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "proofmint", "prove", c.circuit_id, "--input", str(f),
                            "--out", str(out / "inputs" / f"p{i}.json"), "--workspace", str(ws.root)],
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - t)
    proc, url = _serve(ws, out / "node.log", BURST_QUEUE)
    try:
        token = ws.node_token().read_text().strip()
        with progress.step("node: warm-up job (one input: loads the circuit in the worker)"):
            warm = _post(f"{url}/api/jobs", {"circuit": c.circuit_id, "inputs": [inputs[0].ravel().tolist()]}, token)[1]
            while _get(f"{url}/api/jobs/{warm['job']}")["status"] not in ("done", "failed", "partial"):
                time.sleep(0.05)
        with progress.step(f"node: one job of {n} inputs"):
            t = time.perf_counter()
            status, r = _post(f"{url}/api/jobs", {"circuit": c.circuit_id, "inputs": [x.ravel().tolist() for x in inputs]},
                              token)
            if status != 202:
                raise ProofmintError(f"the node refused the bench job: {status} {r}")
            while (view := _get(f"{url}/api/jobs/{r['job']}"))["status"] not in ("done", "failed", "partial"):
                time.sleep(0.05)
            node_wall = time.perf_counter() - t
            if view["status"] != "done":
                raise ProofmintError(f"the bench job ended {view['status']}: {view['items'][0].get('error')}")
        with progress.step(f"burst: {BURST} submissions"):
            accepted, refused, latency = [], 0, []
            body = {"circuit": c.circuit_id, "inputs": [inputs[0].ravel().tolist()]}
            started = time.perf_counter()
            for i in range(BURST):
                status, r = _post(f"{url}/api/jobs", body, token)
                if status == 202:
                    accepted.append(r["job"])
                elif status == 429 and r.get("retry_after"):
                    refused += 1
                if i % 10 == 0:
                    t = time.perf_counter()
                    _get(f"{url}/api/health")
                    latency.append(time.perf_counter() - t)
            burst_s = time.perf_counter() - started
            lost = [j for j in accepted if not _get(f"{url}/api/jobs/{j}")["items"]]
    finally:
        _stop(proc)
    per_direct, per_cli, per_node = statistics.median(direct), statistics.median(cli), node_wall / n
    return {
        "model": MODEL, "logrows": pkg.logrows, "inputs": n,
        "direct_ezkl_s_per_proof": round(per_direct, 4),
        "cli_s_per_proof": round(per_cli, 4), "node_s_per_proof": round(per_node, 4),
        "node_jobs_per_minute": round(60 / per_node, 1), "cli_proofs_per_minute": round(60 / per_cli, 1),
        "node_overhead_vs_direct": round(per_node / per_direct - 1, 4),
        "cli_overhead_vs_direct": round(per_cli / per_direct - 1, 4),
        "burst": {"submitted": BURST, "accepted": len(accepted), "refused_429": refused,
                  "other": BURST - len(accepted) - refused, "lost": len(lost), "queue_limit": BURST_QUEUE,
                  "seconds": round(burst_s, 2), "health_latency_s_max": round(max(latency), 4),
                  "health_latency_s_median": round(statistics.median(latency), 4)},
    }


def markdown(r: dict, machine_line: str) -> str:
    b = r["burst"]
    return "\n".join([
        f"# Prover node vs `proofmint prove` vs direct ezkl ({r['model']}, logrows {r['logrows']}, "
        f"{r['inputs']} inputs)", "", machine_line, "",
        "| path | s / proof | proofs / minute | overhead vs direct ezkl |", "|---|---|---|---|",
        f"| direct ezkl (witness + prove, in-process) | {r['direct_ezkl_s_per_proof']:.3f} | "
        f"{60 / r['direct_ezkl_s_per_proof']:.0f} | — |",
        f"| `proofmint prove`, one process per input | {r['cli_s_per_proof']:.3f} | {r['cli_proofs_per_minute']:.0f} | "
        f"{100 * r['cli_overhead_vs_direct']:+.1f} % |",
        f"| `proofmint serve`, one job of {r['inputs']} | {r['node_s_per_proof']:.3f} | {r['node_jobs_per_minute']:.0f} | "
        f"{100 * r['node_overhead_vs_direct']:+.1f} % |", "",
        "Both proofmint paths also verify every proof and run the float model for the fidelity "
        "figure before a proof counts; direct ezkl does neither.", "",
        f"Burst: {b['submitted']} submissions in {b['seconds']} s to a queue of {b['queue_limit']} items: "
        f"{b['accepted']} accepted, {b['refused_429']} refused with 429 + Retry-After, {b['other']} other, "
        f"{b['lost']} lost; health check latency during the burst median {b['health_latency_s_median'] * 1000:.0f} ms, "
        f"max {b['health_latency_s_max'] * 1000:.0f} ms.", ""])
