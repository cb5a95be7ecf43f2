"""What `physworld validate` reports: a Finding (a check, a message, where) and the Report that
collects them. Kept apart from validate.py so the checks of other views (validate_clips.py) add
findings without importing validate, which calls them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass


@dataclass
class Finding:
    check: str
    message: str
    file: str | None = None
    scene_id: int | None = None
    scenario_type: str | None = None
    frame: int | None = None
    body: int | None = None
    severity: str = "error"

    def where(self) -> str:
        parts = [self.file]
        if self.scene_id is not None:
            parts.append(f"scene {self.scene_id}")
        if self.frame is not None:
            parts.append(f"frame {self.frame}")
        if self.body is not None:
            parts.append(f"body {self.body}")
        return ", ".join(p for p in parts if p)


@dataclass
class Report:
    data_dir: str
    layout: str
    num_scenes: int = 0
    findings: list = None
    per_type: dict = None
    checks_run: list = None

    def __post_init__(self):
        self.findings = self.findings or []
        self.per_type = self.per_type or defaultdict(lambda: {"scenes": 0, "errors": 0, "warnings": 0})
        self.checks_run = self.checks_run or []

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        key = finding.scenario_type or "(dataset)"
        self.per_type[key]["errors" if finding.severity == "error" else "warnings"] += 1

    def to_json(self) -> dict:
        return {
            "data_dir": self.data_dir,
            "layout": self.layout,
            "ok": self.ok,
            "num_scenes": self.num_scenes,
            "checks": self.checks_run,
            "per_type": dict(self.per_type),
            "findings": [asdict(f) for f in self.findings],
        }
