"""Learner diagnostics: the classic mistakes, caught before and during training and explained.

Each check yields a `Finding`: a stable code, what was seen (with the numbers) and what to try.
`setup` looks at the model, loss and data before the first step; `training` reads each epoch's
metrics row, including what `probe` measured (per-layer gradient norms, dead ReLUs). `baselines`
gives the classical results (chance, logistic regression, least squares) every run is shown beside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    code: str  # stable, e.g. "stuck-loss": what tests, reports and users grep for
    message: str  # what was seen, with the numbers
    hint: str  # what to try
    epoch: int | None = None  # None: found before training
    expected: bool = False  # the experiment declares it demonstrates this mistake
    resolved_at: int | None = None  # the epoch from which it no longer held (the model went on to learn)

    def line(self) -> str:
        when = "before training" if self.epoch is None else f"epoch {self.epoch}"
        note = " (this experiment demonstrates it)" if self.expected else ""
        if self.resolved_at is not None:
            note += f" (resolved at epoch {self.resolved_at})"
        return f"[{self.code}] {when}: {self.message}; try: {self.hint}{note}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refuse(self, error_class: type[Exception]) -> Exception:
        """The error that stops a run over this mistake, carrying the finding for summary.json."""
        error = error_class(f"[{self.code}] {self.message}: {self.hint}")
        error.finding = self
        return error


class Diagnosis:
    """The findings of one run, each code reported once, in the order found."""

    def __init__(self, expected: list[str] | tuple[str, ...] = ()) -> None:
        self.expected = set(expected)
        self.findings: list[Finding] = []

    def add(self, finding: Finding) -> Finding | None:
        """Keep `finding` unless its code was already reported; returns it when it is new."""
        if self.has(finding.code):
            return None
        if finding.code in self.expected:
            finding = Finding(**{**finding.to_dict(), "expected": True})
        self.findings.append(finding)
        return finding

    def resolve(self, code: str, epoch: int) -> Finding | None:
        """Mark the finding `code` as no longer true from `epoch` on; returns it, or None if not found."""
        for index, finding in enumerate(self.findings):
            if finding.code == code and finding.resolved_at is None:
                self.findings[index] = Finding(**{**finding.to_dict(), "resolved_at": epoch})
                return self.findings[index]
        return None

    def has(self, code: str) -> bool:
        return any(finding.code == code for finding in self.findings)

    def to_list(self) -> list[dict[str, Any]]:
        return [finding.to_dict() for finding in self.findings]
