"""The package's shape, checked: one ezkl layer, stages in order, no import cycles, one config module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where each importable proofmint module lives (setuptools' package-dir mapping in pyproject.toml).
PACKAGES = {"proofmint": "proofmint", "proofmint.models": "models", "proofmint.circuits": "circuits",
            "proofmint.prover": "prover", "proofmint.verifier": "verifier",
            "proofmint.benchmarks": "bench"}
# Stages import only from the core and earlier stages, in the flow's order: ONNX -> circuit ->
# proof -> verification -> the asset's content -> the chain -> a minted asset read back -> the
# node. The facades (the package roots that re-export) and the tools above them import anything.
ORDER = ["proofmint.models", "proofmint.circuits", "proofmint.prover", "proofmint.verifier",
         "proofmint.verifier.content", "proofmint.verifier.chain", "proofmint.verifier.asset",
         "proofmint.verifier.node"]
ABOVE_STAGES = ("proofmint.api", "proofmint.demo_flow", "proofmint.cli", "proofmint.__main__",
                "proofmint.benchmarks")
FACADES = ("proofmint", "proofmint.verifier")


def _above(module: str) -> bool:
    return module in FACADES or any(module == a or module.startswith(a + ".") for a in ABOVE_STAGES)


def modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in PACKAGES.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts]) if parts else pkg] = f
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every proofmint module ``name`` imports, at the top or inside a function."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in found if m in known}


def test_only_the_ezkl_layer_imports_ezkl():
    offenders = []
    for folder in [*PACKAGES.values(), "tests"]:
        for f in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                if any(n == "ezkl" or n.startswith("ezkl.") for n in names):
                    offenders.append(str(f.relative_to(ROOT)))
    assert sorted(set(offenders)) == ["proofmint/ezkl_layer.py"]


def test_no_import_cycles():
    mods = modules()
    graph = {m: imports(m, p, set(mods)) - {m} for m, p in mods.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n] if n in stack else [m, n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def _stage(module: str) -> str | None:
    """The stage ``module`` belongs to: the longest stage name it starts with."""
    if module in FACADES:
        return None
    return max((s for s in ORDER if module == s or module.startswith(s + ".")), key=len, default=None)


def test_stages_import_only_the_core_and_earlier_stages():
    mods = modules()
    wrong = []
    for m, p in mods.items():
        stage = _stage(m)
        if stage is None:
            if not _above(m):  # a core module: it imports no stage at all
                wrong += [(m, n) for n in imports(m, p, set(mods)) if _stage(n) or _above(n)]
            continue
        for n in imports(m, p, set(mods)):
            other = _stage(n)
            if other is None and _above(n):
                wrong.append((m, n))
            elif other is not None and ORDER.index(other) > ORDER.index(stage):
                wrong.append((m, n))
    assert not wrong, wrong


def test_only_the_config_module_reads_proofmint_variables():
    readers = []
    for folder in PACKAGES.values():
        for f in (ROOT / folder).rglob("*.py"):
            text = f.read_text()
            if '"PROOFMINT_' in text and f.name != "config.py":
                readers.append(str(f.relative_to(ROOT)))
    assert readers == []


def test_no_module_names_a_workspace_path_but_the_workspace():
    """Workspace folders are named by proofmint.store.Workspace only."""
    offenders = []
    for folder in PACKAGES.values():
        for f in (ROOT / folder).rglob("*.py"):
            if f.name == "store.py":
                continue
            tree = ast.parse(f.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("path", "ensure") \
                        and node.args and isinstance(node.args[0], ast.Constant) \
                        and node.args[0].value in ("chain", "chains", "assets", "circuits", "compiles",
                                                   "models", "build", "locks"):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_package_attribute_shadows_a_submodule():
    """`from .compile import compile` in a package makes `pkg.compile` the function, and
    `import pkg.compile as m` then fails: a name re-exported by a package is never also a module."""
    mods = modules()
    clashes = []
    for name, path in mods.items():
        if path.name != "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                clashes += [f"{name}.{a.asname or a.name}" for a in node.names
                            if f"{name}.{a.asname or a.name}" in mods and node.level]
    # re-exporting a submodule itself is fine; binding another object to its name is not
    real = [c for c in clashes if not any(
        isinstance(n, ast.ImportFrom) and n.module is None for n in ast.walk(ast.parse(mods[c.rsplit(".", 1)[0]].read_text())))]
    assert real == []
