"""The compile report: what compile chose for a circuit and why, typed from the search to the
package file and back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class CompileReport:
    """What compile chose and why, kept in the package (``calibration_report``): the goal, the
    chosen candidate, every candidate tried and why the failed ones failed, what was measured
    and timed, the graph ezkl compiled and its rewrites, and the samples. A segmented model's
    report holds its cuts and the scales its chain was tried at; each segment's, its index."""

    target: str
    goal: str = ""
    chosen: dict = field(default_factory=dict)  # Candidate.summary()
    tolerance: float | None = None
    tried: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    layouts_tried: list[dict] = field(default_factory=list)
    timed: list[dict] = field(default_factory=list)
    search_seconds: float | None = None
    graph: str = "native"  # native, rewritten or side-by-side
    rewrites: list[dict] = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    plan: dict | None = None  # a segmented model's cuts (segments.Plan.to_dict)
    scales_tried: list[dict] = field(default_factory=list)  # ... and its chain's scales
    link: str | None = None
    segment: int | None = None  # a segment's place in its chain

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CompileReport":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
