"""The node's HTTP API with no circuit and no chain: a real node (not started: nothing to prove)
over an empty workspace, its app served by uvicorn in this process. Part of ``make test-fast``:
what costs money needs the token, malformed bodies are 400s with one line, nothing is queued
by a refused request, and the jobs client names what went wrong (``NodeError`` when no node
answers)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from proofmint.errors import NodeError, NotFoundError, UsageError
from proofmint.store import Workspace
from proofmint.verifier.node.client import jobs_status, jobs_submit
from proofmint.verifier.node.http import MAX_BODY, create_app
from proofmint.verifier.node.service import Node

from ...conftest import run_cli, tiny_inputs
from .conftest import app_server, free_port
from .test_node import request

TOKEN = "test-token-" + "x" * 24
CIRCUIT = "ab" * 32  # a well-formed circuit id this workspace doesn't hold


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    node = Node(Workspace.resolve(root / "ws"), rpc_url=None)
    with app_server(create_app(node, TOKEN)) as url:
        yield node, url, root


def test_health_answers_with_the_queue_depth(api):
    node, url, _ = api
    status, _, r = request(f"{url}/api/health")
    assert status == 200 and r["ok"] is True and r["pending"] == 0 and r["last_error"] is None, r


def test_submitting_needs_the_token_and_malformed_bodies_are_400s(api):
    node, url, _ = api
    good = {"circuit": CIRCUIT, "inputs": tiny_inputs(1, seed=1)}
    for token in (None, "wrong-" + "x" * 30, TOKEN + "x", TOKEN[:-1]):
        status, headers, r = request(f"{url}/api/jobs", good, token)
        assert status == 401 and "Bearer" in r["error"] and headers["WWW-Authenticate"] == "Bearer", (token, r)
    broken = '{"circuit": "' + CIRCUIT + '",\n "inputs": [[1,,]]}'
    with pytest.raises(json.JSONDecodeError) as where:  # Python's own reading of it
        json.loads(broken)
    cases = [
        (dict(raw=b"{not json"), "the body is not JSON: line 1 column 2"),
        (dict(raw=broken.encode()), f"not JSON: line 2 column {where.value.colno}: {where.value.msg}"),
        (dict(body={**good, "surprise": 1}), "surprise: Extra inputs are not permitted"),
        (dict(body={**good, "inputs": "0.5"}), "inputs: Input should be a valid list"),
        (dict(body={"inputs": good["inputs"]}), "circuit: Field required"),
        (dict(body={**good, "mint": "maybe"}), "mint: Input should be a valid boolean"),
        (dict(body={**good, "circuit": "../../etc/passwd"}), "is not a circuit id"),
        (dict(body={**good, "circuit": "0x" + "ab" * 8}), "is not a circuit id"),
        (dict(body=[good]), "bad request: body: Input should be a valid dictionary"),
    ]
    for kwargs, message in cases:
        status, _, r = request(f"{url}/api/jobs", token=TOKEN, **kwargs)
        assert status == 400 and message in r["error"] and "\n" not in r["error"], (kwargs, r)
    status, _, r = request(f"{url}/api/jobs", good, TOKEN)
    assert status == 404 and f"no circuit {CIRCUIT}" in r["error"], r
    conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30)
    conn.putrequest("POST", "/api/jobs")  # a body over the limit announced, none sent: refused unread
    for k, v in (("Content-Length", str(MAX_BODY + 1)), ("Authorization", f"Bearer {TOKEN}")):
        conn.putheader(k, v)
    conn.endheaders()
    answer = conn.getresponse()
    status, r = answer.status, json.loads(answer.read())
    conn.close()
    assert status == 413 and f"over {MAX_BODY} bytes" in r["error"], r
    assert node.queue.jobs(100) == [] and node.queue.pending() == 0  # nothing refused was queued


def test_reading_is_open_and_writing_to_it_is_refused(api):
    _, url, _ = api
    status, _, r = request(f"{url}/api/jobs/0123456789abcdef")
    assert status == 404 and "no job 0123456789abcdef" in r["error"], r
    for method in ("PUT", "DELETE", "PATCH"):
        status, _, _ = request(f"{url}/api/jobs", raw=b"{}", method=method, token=TOKEN)
        assert status == 405, method
    status, _, r = request(f"{url}/openapi.json")
    assert status == 200 and "/api/jobs" in r["paths"]


def test_the_jobs_client_says_what_the_node_answered(api):
    node, url, root = api
    (root / "ws" / "node").mkdir(exist_ok=True)
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    inputs = root / "in.jsonl"
    inputs.write_text("\n".join(json.dumps(x) for x in tiny_inputs(2, seed=2)))
    with pytest.raises(NotFoundError, match=f"the node answered 404: no circuit {CIRCUIT}"):
        jobs_submit(CIRCUIT, input=inputs, node=url, token_file=token_file)
    (root / "bad-token").write_text("nope\n")
    with pytest.raises(UsageError, match="the node answered 401"):
        jobs_submit(CIRCUIT, input=inputs, node=url, token_file=root / "bad-token")
    with pytest.raises(NotFoundError, match="the node answered 404: no job"):
        jobs_status("0123456789abcdef", node=url)
    assert node.queue.jobs(100) == []


def test_no_node_at_the_address_is_a_node_error_and_one_cli_line():
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeError, match=f"no prover node answered at {nobody}/api/jobs/x") as e:
        jobs_status("x", node=nobody)
    assert isinstance(e.value, ConnectionError)
    r = run_cli("jobs", "status", "x", "--node", nobody)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no prover node answered at"), r.stderr
    assert "start one with `proofmint serve`" in lines[0]
