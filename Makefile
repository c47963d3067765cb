# Two entry points: `make demo` (the whole flow on an embedded anvil) and `make test`.
# Both depend on `setup`, which is idempotent and installs everything into this folder.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.proofmint-installed
NPM_STAMP := toolchain/node_modules/.proofmint-installed
# Debian's Chromium for the explorer's browser tests (Playwright drives it by path: browser
# downloads are not available); as root, or with passwordless sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: setup system demo test test-fast jstprove clean

setup: system $(STAMP) $(NPM_STAMP)

system:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# torch first, pinned, so the CPU wheel is used and no CUDA packages are pulled in
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $@

$(NPM_STAMP): toolchain/package.json toolchain/package-lock.json
	# npm install, not npm ci: the lock pins every version, but npm ci also demands anvil's
	# optional binaries for other platforms, which npm never writes into the lock
	cd toolchain && npm install --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	.venv/bin/proofmint demo --out demo-out

test: setup
	$(PY) -m pytest -q

# The fast layer: no zoo compiles, no proofs, no chain (a test that needs them is marked slow
# by tests/conftest.py); under two minutes on 2 cores. It holds the structure, the input reader's
# refusals (tests/test_inputs.py), the node's HTTP API over an empty workspace
# (tests/verifier/node/test_http.py) and the search walk on a fake engine.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# JSTprove, for `proofmint bench --corpus`: its wheel is for Python 3.12 only, so it gets a venv of
# its own (pyenv's 3.12 or any python3.12 on PATH).
JST_PY ?= $(shell { ls -d $$HOME/.pyenv/versions/3.12*/bin/python; command -v python3.12; } 2>/dev/null | head -n 1)
jstprove: .jstprove/.installed
.jstprove/.installed:
	test -n "$(JST_PY)" || { echo "no Python 3.12 found: set JST_PY=/path/to/python3.12"; exit 2; }
	$(JST_PY) -m venv .jstprove
	.jstprove/bin/pip install -q jstprove==2.12.1 msgpack==1.2.4 zstandard==0.25.0
	touch $@

clean:
	rm -rf .venv toolchain/node_modules .proofmint demo-out .jstprove
