"""Parameter counts and output shapes per layer: what a run prints at the start and writes into its folder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def parameter_counts(model: nn.Module, example: torch.Tensor | None = None) -> dict[str, Any]:
    """{"total": N, "weights": W, "layers": [{"layer", "type", "parameters"[, "output_shape"]}, ...]} over
    the modules owning parameters; with `example` (a batch of one input) each layer's output shape per
    example. `weights` leaves the biases out, as lectures often count a network's size."""
    shapes = output_shapes(model, example) if example is not None else {}
    layers = []
    for name, module in model.named_modules():
        owned = sum(p.numel() for p in module.parameters(recurse=False))
        if owned:
            layers.append({"layer": name, "type": type(module).__name__, "parameters": owned})
            if name in shapes:
                layers[-1]["output_shape"] = shapes[name]
    # bias, or a recurrent layer's bias_ih_l0
    weights = sum(
        p.numel() for name, p in model.named_parameters() if not name.split(".")[-1].startswith("bias")
    )
    return {"total": sum(p.numel() for p in model.parameters()), "weights": weights, "layers": layers}


@torch.no_grad()
def output_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, list[int]]:
    """{layer name: its output's shape} from one forward pass in eval mode (hooks, removed after).

    A model whose forward pass fails on the example simply has no shapes: the table is a help, not a
    check. A recurrent layer's (outputs, state) counts by its outputs.
    """
    shapes: dict[str, list[int]] = {}
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, tuple):  # nn.RNN/GRU/LSTM: (outputs, state)
            output = output[0]
        if isinstance(output, torch.Tensor):
            shape = list(output.shape)
            # the example's batch of one: the first dimension of size 1 (dimension 1 of a time-major RNN)
            shapes[names[module]] = (
                shape[: shape.index(1)] + shape[shape.index(1) + 1 :] if 1 in shape else shape
            )

    hooks = [module.register_forward_hook(record) for module in names if module is not model]
    was_training = model.training
    model.eval()
    try:
        model(example)
    except Exception:  # noqa: BLE001 - see the docstring
        pass
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def format_parameter_counts(counts: dict[str, Any]) -> str:
    # wide enough for the layer names and the "total" and "weights" rows under them
    width = max([len("weights"), *(len(row["layer"]) for row in counts["layers"])])
    has_shapes = any("output_shape" in row for row in counts["layers"])
    lines = [
        f"{'parameters per layer:':<{width + 29}}output shape (one example)"
        if has_shapes
        else "parameters per layer:"
    ]
    for row in counts["layers"]:
        line = f"  {row['layer']:<{width}}  {row['type']:<11} {row['parameters']:>10,}"
        if "output_shape" in row:
            line += "   " + " x ".join(str(size) for size in row["output_shape"])
        lines.append(line)
    lines.append(f"  {'total':<{width}}  {'':<11} {counts['total']:>10,}")
    if counts.get("weights", counts["total"]) != counts["total"]:
        lines.append(f"  {'weights':<{width}}  {'no biases':<11} {counts['weights']:>10,}")
    return "\n".join(lines)
