"""Classical answers to the same question on the same split, to show beside the network's."""

from __future__ import annotations

from typing import Any

import torch

from nnexp.data import DataBundle


def least_squares(data: DataBundle) -> dict[str, Any]:
    """The closed-form linear fit (with intercept) on the training rows, scored on every split."""

    def design(inputs: torch.Tensor) -> torch.Tensor:
        flat = inputs.reshape(len(inputs), -1).double().cpu()
        return torch.cat([torch.ones(len(flat), 1, dtype=flat.dtype), flat], dim=1)

    train_y = data.train.targets.double().cpu()
    weights = torch.linalg.lstsq(design(data.train.inputs), train_y).solution
    result: dict[str, Any] = {"name": "least squares (closed form)"}
    for name, split in data.splits().items():
        error = design(split.inputs) @ weights - split.targets.double().cpu()
        result[f"{name}_mse"] = error.square().mean().item()
    result["weights"] = [round(w, 6) for w in weights.flatten().tolist()]  # bias first
    return result
