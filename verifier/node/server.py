"""``proofmint serve``: the prover node, one process: queue, warm workers, HTTP API, explorer."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from proofmint import progress
from proofmint.errors import UsageError
from proofmint.store import Workspace, workspace_error

DEFAULT_PORT = 8000


def ensure_token(path: Path) -> str:
    """The node's bearer token: created on first start (0600), refused if others can read it."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise workspace_error(path, exc) from None
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            progress.note(f"created the node's API token in {path} (mode 0600)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path} is readable by others (mode {mode:o}) — `chmod 600 {path}`")
    token = path.read_text().strip()
    if len(token) < 16:
        raise UsageError(f"{path} holds no usable token (16+ characters) — delete it to make a new one")
    return token


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def serve(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, rpc_url: str | None = None, workers: int = 1,
          threads: int | None = None, backend: str = "local", address: str | None = None,
          token_file: str | Path | None = None, max_queue: int = 1_000,
          workspace: str | Path | Workspace | None = None) -> None:
    """Run the prover node until interrupted: accepts jobs over HTTP, proves them on warm
    workers, mints them; the explorer and ``/ipfs/<CID>`` are served by the same process."""
    import uvicorn

    from proofmint.verifier.chain import anvil as anvil_mod
    from proofmint.verifier.node.http import create_app
    from proofmint.verifier.node.service import Node, running

    ws = Workspace.resolve(workspace)
    if not _loopback(host):
        progress.note(f"warning: --host {host} exposes this node beyond this machine: anyone who can reach "
                      f"port {port} reads the explorer, every job's status and proof bundles (inputs "
                      "included) and the content store; POST /api/jobs needs the token, sent in clear "
                      "without TLS — put a TLS proxy in front, or keep 127.0.0.1")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if backend not in ("local", "ray"):
        raise UsageError(f"--backend must be local or ray, not {backend!r}")
    token = ensure_token(Path(token_file) if token_file else ws.node_token())
    with contextlib.ExitStack() as stack:
        # the workspace's chain, held for the node's life: CLI commands meanwhile attach to it
        chain = rpc_url or stack.enter_context(anvil_mod.workspace_chain(ws)).rpc_url
        node = stack.enter_context(running(Node(ws, rpc_url=rpc_url, workers=workers, threads=threads,
                                                backend=backend, address=address)))
        if node.recovered:
            progress.note(f"resumed {node.recovered} item(s) interrupted by the last stop")
        progress.note(f"prover node at http://{host}:{port} — explorer /, API /api/jobs, OpenAPI "
                      f"/openapi.json; chain {chain}{'' if rpc_url else ' (embedded)'}; queue {ws.node_queue()}")
        uvicorn.run(create_app(node, token, max_queue=max_queue), host=host, port=port, log_level="warning",
                    lifespan="off")
