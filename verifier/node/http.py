"""The node's HTTP side (FastAPI): the job API, the explorer pages, the content gateway.

Submitting work costs money (proving time, gas), so it needs the bearer token; reading (job
status, explorer, ``/ipfs/<CID>``) needs none and changes nothing. Bad requests get a 4xx with
the CLI's one-line message, never a traceback. Inputs are read by :mod:`proofmint.inputs`, as
``prove`` reads them (``true`` is not 1.0); malformed JSON is answered with where it breaks.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from proofmint.errors import (ChainError, InvalidInputError, InvalidModelError, NotFoundError,
                              ProofmintError, UsageError)

MAX_BODY = 4 << 20  # bytes of a request body
MAX_INPUTS = 1_000  # inputs in one job
RETRY_AFTER_S = 10


CIRCUIT_ID = re.compile(r"[0-9a-fA-F]{8,64}")
_NUMBERS = {"type": "array", "items": {"type": "number"}}
INPUT_SCHEMA = {"anyOf": [_NUMBERS, {"type": "object", "required": ["input_data"], "additionalProperties": False,
                                      "properties": {"input_data": {"type": "array", "items": _NUMBERS}}}]}


class JobRequest(BaseModel):
    """``POST /api/jobs``: what to prove, for whom, and whether to mint."""

    model_config = ConfigDict(extra="forbid")
    circuit: str = Field(description="circuit id (or 8+ character prefix)")
    inputs: list[Any] | None = Field(None, description="inputs: each a flat list of numbers, or "
                                                         "ezkl's {\"input_data\": [[...]]}",
                                     json_schema_extra={"items": INPUT_SCHEMA})
    input: Any = Field(None, description="one input (instead of `inputs`)", json_schema_extra=INPUT_SCHEMA)
    creator: str | None = Field(None, description="who receives the tokens (default: the node's signer)")
    mint: bool = Field(False, description="mint each verified inference as a token")


def status_of(exc: ProofmintError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ChainError):
        return 503
    if isinstance(exc, (UsageError, InvalidInputError, InvalidModelError)):
        return 400
    return 422


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before it is read
    whole (by its Content-Length, or while a chunked body streams in)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send, self.limit)
        seen, answered = 0, False

        async def limited():
            # Past the limit the app is told the client left (its body read fails) and the 413
            # is sent from here: an exception would be turned into a 400 by FastAPI's body parser.
            nonlocal seen, answered
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not answered:
                answered = True
                await _too_large(send, self.limit)
            return {"type": "http.disconnect"} if answered else message

        async def guarded(message):
            if not answered:
                await send(message)

        await self.app(scope, limited, guarded)


def invalid_message(exc) -> str:
    """FastAPI's validation error as one line; malformed JSON says where (line and column)."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        doc, pos = exc.body if isinstance(exc.body, str) else "", first["loc"][-1]
        line, column = doc.count("\n", 0, pos) + 1, pos - doc.rfind("\n", 0, pos)
        why = (first.get("ctx") or {}).get("error", "invalid JSON")
        return f"bad request: the body is not JSON: line {line} column {column}: {why}"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"bad request: {where}: {first.get('msg', 'invalid')} — see /openapi.json"


async def _too_large(send, limit: int) -> None:
    body = f'{{"error": "the request body is over {limit} bytes — send fewer inputs per job"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(node, token: str, *, max_queue: int = 1_000):
    """The ASGI app of a running :class:`~proofmint.verifier.node.service.Node`."""
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from proofmint.inputs import check_range, parse
    from proofmint.verifier.content.gateway import add_routes

    from proofmint.verifier.node.explorer import Explorer, error_page, wants_page

    explorer = Explorer(node.ws, node.rpc_url, node.queue)
    api = FastAPI(title="proofmint prover node",
                  description="Submit inference jobs (a circuit, inputs, a creator): each input is proven "
                              "with EZKL, verified, and optionally minted as a provenance token. "
                              "POST needs `Authorization: Bearer <token>` (the node's token file).",
                  docs_url=None, redoc_url=None)  # Swagger/ReDoc pages load from a CDN: /openapi.json is local

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @api.exception_handler(ProofmintError)
    async def _proofmint_error(request: Request, exc: ProofmintError):
        return error(status_of(exc), str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error(400, invalid_message(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404 and wants_page(request):
            return error_page(404, "there is no explorer page at this address")
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    def authorized(authorization: str | None = Header(None)) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not authorization or not authorization.startswith("Bearer ") or \
                not hmac.compare_digest(given.encode(), token.encode()):
            raise StarletteHTTPException(401, "a valid `Authorization: Bearer <token>` header is needed to "
                                              "submit jobs (the token is in the node's token file)",
                                         headers={"WWW-Authenticate": "Bearer"})

    def _inputs(req: JobRequest, pkg) -> list[list[float]]:
        raw = req.inputs if req.inputs is not None else ([req.input] if req.input is not None else [])
        if not raw:
            raise UsageError("a job needs `inputs` (a list) or `input`")
        if len(raw) > MAX_INPUTS:
            raise UsageError(f"a job holds at most {MAX_INPUTS} inputs, not {len(raw)} — split it")
        out = []
        for i, doc in enumerate(raw):
            where = f"input {i}"
            x = parse(doc, pkg.input_shape, pkg.input_sizes, where)
            check_range(x, pkg.input_range, where)
            out.append(x.ravel().tolist())
        return out

    @api.post("/api/jobs", status_code=202, dependencies=[Depends(authorized)],
              summary="Queue an inference job", response_description="the job id, at once")
    def submit(req: JobRequest):
        if not CIRCUIT_ID.fullmatch(req.circuit):
            raise UsageError(f"circuit {req.circuit[:80]!r} is not a circuit id (8 to 64 hex digits, as "
                             "`proofmint compile` prints)")
        pkg = node.package(req.circuit.lower())
        if req.creator is not None:
            from eth_utils import is_address

            if not is_address(req.creator):
                raise UsageError(f"creator {req.creator!r} is not an address")
        inputs = _inputs(req, pkg)
        job = node.queue.submit(pkg.circuit_id, inputs, req.creator, req.mint, max_queue)
        if job is None:
            return error(429, f"the queue is full ({max_queue} items pending) — retry later",
                         {"Retry-After": str(RETRY_AFTER_S)})
        return {"job": job, "items": len(inputs), "status": f"/api/jobs/{job}"}

    @api.get("/api/jobs/{job_id}", summary="A job's status, progress, bundles and tokens")
    def job_status(job_id: str):
        job = node.queue.job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} on this node")
        out = job.to_dict()
        for item in out["items"]:
            item["bundle_url"] = f"/api/jobs/{job_id}/items/{item['idx']}/bundle" if item["bundle"] else None
            item.pop("bundle")
        return out

    @api.get("/api/jobs/{job_id}/items/{idx}/bundle", summary="An item's proof bundle")
    def bundle(job_id: str, idx: int):
        job = node.queue.job(job_id)
        items = [i for i in (job.items if job else []) if i.idx == idx and i.bundle]
        if not items:
            raise NotFoundError(f"job {job_id} has no proven item {idx}")
        return FileResponse(items[0].bundle, media_type="application/json")

    @api.get("/api/health", summary="Liveness, queue depth, last chain error")
    def health():
        return {"ok": True, "pending": node.queue.pending(), "recovered_at_start": node.recovered,
                "rpc_url": node.rpc_url, "last_error": node.last_error}

    # ---- explorer (read-only): each page's parameters are its method's; errors are HTML pages ----
    for path, page in (("/", explorer.index), ("/tokens/{token_id}", explorer.token),
                       ("/models", explorer.models), ("/models/{model_id}", explorer.model),
                       ("/queue", explorer.queue_page)):
        api.add_api_route(path, explorer.route(page, status_of), methods=["GET"], response_class=HTMLResponse,
                          include_in_schema=False)
    api.add_api_route("/tokens/{token_id}/verify", explorer.verify, methods=["GET"], include_in_schema=False)

    add_routes(api, node.ws)
    return BodyLimit(api)
