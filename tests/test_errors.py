"""The errors module's drawn tree is the real one: every ProofmintError is in it, under its
parent, with the builtin it also is; every error survives pickling (workers send them)."""

from __future__ import annotations

import inspect
import pickle
import re

from proofmint import errors


def _classes() -> dict[str, type]:
    return {name: c for name, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, errors.ProofmintError) and c.__module__ == errors.__name__}


def _drawn() -> dict[str, tuple[str, str | None]]:
    """name -> (parent, builtin) as the docstring draws them."""
    tree, parents = {}, {}
    for line in errors.__doc__.splitlines():
        m = re.match(r"^ {4}((?:│   |    )*)[├└]── (\w+)(?: \((\w+)\))?", line)
        if m:
            depth = len(m.group(1)) // 4 + 1
            parents[depth] = m.group(2)
            tree[m.group(2)] = (parents.get(depth - 1, "ProofmintError"), m.group(3))
    return tree


def test_the_docstring_draws_every_error_under_its_parent():
    classes, drawn = _classes(), _drawn()
    assert set(drawn) == set(classes) - {"ProofmintError"}
    for name, (parent, builtin) in drawn.items():
        family, *other = classes[name].__bases__
        assert family.__name__ == parent, name
        assert [b.__name__ for b in other] == ([builtin] if builtin else []), name


def test_every_error_pickles_with_its_message():
    for cls in _classes().values():
        exc = pickle.loads(pickle.dumps(cls("what happened — what to do")))
        assert type(exc) is cls and str(exc) == "what happened — what to do"


def test_an_unreachable_node_is_a_node_error_not_a_chain_error():
    assert issubclass(errors.NodeError, ConnectionError) and not issubclass(errors.NodeError, errors.ChainError)
