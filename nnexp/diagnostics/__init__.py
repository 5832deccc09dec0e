"""Learner diagnostics: the classic mistakes, caught before and during training and explained.

Each check yields a `Finding`: a stable code, what was seen (with the numbers) and what to try
(defined in nnexp/errors.py, beside the errors that stop a run over one).
`setup` looks at the model, loss and data before the first step; `training` reads each epoch's
metrics row, including what `probe` measured (per-layer gradient norms, dead ReLUs). `baselines`
gives the classical results (chance, logistic regression, least squares) every run is shown beside.
"""

from __future__ import annotations

from typing import Any

from nnexp.errors import Finding  # defined with the errors that carry one; read here as diagnostics' own


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
