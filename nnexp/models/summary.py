"""Parameter counts per layer: what a run prints at the start and writes into its folder."""

from __future__ import annotations

from typing import Any

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """{"total": N, "layers": [{"layer", "type", "parameters"}, ...]} over modules owning parameters."""
    layers = [
        {"layer": name, "type": type(module).__name__, "parameters": owned}
        for name, module in model.named_modules()
        if (owned := sum(p.numel() for p in module.parameters(recurse=False)))
    ]
    return {"total": sum(p.numel() for p in model.parameters()), "layers": layers}


def format_parameter_counts(counts: dict[str, Any]) -> str:
    width = max((len(row["layer"]) for row in counts["layers"]), default=5)
    lines = ["parameters per layer:"]
    lines += [
        f"  {row['layer']:<{width}}  {row['type']:<11} {row['parameters']:>10,}" for row in counts["layers"]
    ]
    lines.append(f"  {'total':<{width}}  {'':<11} {counts['total']:>10,}")
    return "\n".join(lines)
