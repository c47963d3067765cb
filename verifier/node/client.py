"""``proofmint jobs submit|status|wait``: the node's API from the command line (or Python)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from proofmint import config, inputs, progress
from proofmint.errors import InvalidInputError, NodeError, NotFoundError, ProofmintError, UsageError
from proofmint.store import Workspace

FINISHED = ("done", "failed", "partial")


@dataclass
class JobView:
    job: str
    status: str
    progress: dict = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)
    circuit: str = ""
    mint: bool = False

    @property
    def tokens(self) -> list[int]:
        return [t for i in self.items for t in i.get("tokens", [])]

    def to_dict(self) -> dict:
        return asdict(self) | {"tokens": self.tokens}


def _node(node: str | None) -> str:
    return (node or config.node_url()).rstrip("/")


def _call(url: str, body: dict | None = None, token: str | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        kind = {400: InvalidInputError, 401: UsageError, 404: NotFoundError, 413: InvalidInputError}.get(
            exc.code, NodeError)  # 429 (a full queue), 5xx: the node refused
        raise kind(f"the node answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NodeError(f"no prover node answered at {url} ({getattr(exc, 'reason', exc)}) — start one "
                        "with `proofmint serve`, or pass --node URL") from None


def _read_inputs(path: Path) -> list:
    """The inputs of a file as the API takes them, read by the one reader's format layer: their
    values are judged by the node, against the circuit (:mod:`proofmint.inputs`)."""
    return [doc.tolist() if isinstance(doc, np.ndarray) else doc for _, doc in inputs.documents(path)]


def jobs_submit(circuit: str, *, input: str | Path, node: str | None = None, token_file: str | Path | None = None,
                mint: bool = False, creator: str | None = None,
                workspace: str | Path | Workspace | None = None) -> JobView:
    """Queue a job on a running node; returns at once with the job id."""
    path = Path(token_file) if token_file else Workspace.resolve(workspace).node_token()
    if not path.is_file():
        raise NotFoundError(f"no node token at {path} — pass --token-file (the node writes it on first start)")
    body = {"circuit": circuit, "inputs": _read_inputs(Path(input)), "mint": mint, "creator": creator}
    r = _call(f"{_node(node)}/api/jobs", body, path.read_text().strip())
    return jobs_status(r["job"], node=node)


def jobs_status(job: str, *, node: str | None = None) -> JobView:
    """A job's status, per-item progress, bundles and tokens."""
    r = _call(f"{_node(node)}/api/jobs/{job}")
    return JobView(r["id"], r["status"], r["progress"], r["items"], r["circuit"], r["mint"])


def jobs_wait(job: str, *, node: str | None = None, timeout: float = 3600) -> JobView:
    """Wait until a job has finished (every item done or failed), showing its progress."""
    deadline = time.monotonic() + timeout
    view = jobs_status(job, node=node)
    name, shown = f"job {job}", 0
    with progress.step(name, total=len(view.items)):
        while True:
            finished = view.progress.get("done", 0) + view.progress.get("failed", 0)
            if finished > shown:
                progress.advance(name, finished - shown)
                shown = finished
            if view.status in FINISHED:
                return view
            if time.monotonic() > deadline:
                raise ProofmintError(f"job {job} is still {view.status} after {timeout:.0f} s — "
                                     f"`proofmint jobs status {job}` shows where it is")
            time.sleep(1.0)
            view = jobs_status(job, node=node)
