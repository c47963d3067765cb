"""Where proofs go and what didn't become one: shared by single-circuit and segmented proving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Failure:
    """An input that was not proven, and why (one line)."""

    index: int
    error: str
    type: str


def output_paths(out: str | Path | None, count: int) -> list[Path]:
    """One bundle per proof: ``out`` itself for one, ``stem-0000.json``... for several."""
    base = Path(out) if out else Path("proof.json")
    if count == 1:
        return [base]
    suffix = base.suffix or ".json"
    return [base.with_name(f"{base.stem}-{i:04d}{suffix}") for i in range(count)]
