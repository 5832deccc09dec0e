"""activations.png: what each layer of the trained model outputs, as a histogram per layer.

One batch of validation data (else test, else training) goes through the model in eval mode with a
forward hook on every layer that computes something (a leaf module; Dropout, Identity and Flatten pass
their input on and are left out). A lecture reads saturation here (a sigmoid's outputs piled at 0 and 1),
dead ReLUs (a spike at exactly 0: its share is in the panel's title) and exploding scales (the range).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nnexp.data.tasks import task_of
from nnexp.look.canvas import new_figure, save_png
from nnexp.look.figures import TITLE_PT
from nnexp.look.plots import title_figure

ACTIVATIONS_PLOT = "activations.png"
BATCH = 256  # examples run through the model
MAX_LAYERS = 16  # panels; a deeper model shows its first 15 and its last
MAX_VALUES = 100_000  # values per histogram, taken evenly from the layer's outputs
BINS = 50
PASS_THROUGH = (nn.Dropout, nn.Identity, nn.Flatten)  # in eval mode their output is their input


def layers_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers drawn: leaf modules that compute something, in the order they were registered."""
    leaves = [
        (name, module)
        for name, module in model.named_modules()
        if name and not list(module.children()) and not isinstance(module, PASS_THROUGH)
    ]
    if len(leaves) > MAX_LAYERS:
        leaves = [*leaves[: MAX_LAYERS - 1], leaves[-1]]
    return leaves


@torch.inference_mode()
def layer_outputs(model: nn.Module, inputs: torch.Tensor, task_name: str) -> list[tuple[str, np.ndarray]]:
    """[(layer name and type, its outputs flattened)] for one forward pass of `inputs`, in call order."""
    chosen = layers_of(model)
    seen: dict[str, np.ndarray] = {}
    order: list[str] = []

    def keep(name: str, module: nn.Module) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)):  # a recurrent layer: (outputs, state)
                output = output[0]
            if not isinstance(output, torch.Tensor) or name in seen:
                return
            values = output.detach().float().flatten()
            step = max(1, math.ceil(values.numel() / MAX_VALUES))
            seen[name] = values[::step].cpu().numpy()
            order.append(name)

        return module.register_forward_hook(hook)

    labels = {name: f"{name} ({type(module).__name__})" for name, module in chosen}
    handles = [keep(name, module) for name, module in chosen]
    was_training = model.training
    model.eval()
    try:
        task_of(task_name).forward(model, inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [(labels[name], seen[name]) for name in order]


def save_activations(model: nn.Module, data: Any, path: Path, headline: str = "") -> Path | None:
    """activations.png for one batch of the data's validation split (else test, else training)."""
    split, split_name = next(
        (part, name) for name, part in (("val", data.val), ("test", data.test), ("train", data.train)) if part
    )
    inputs, _ = next(iter(split.batches(BATCH)))
    outputs = layer_outputs(model, inputs, data.spec.task)
    if not outputs:
        return None
    columns = 3 if len(outputs) in (5, 6) else min(4, len(outputs))
    rows = math.ceil(len(outputs) / columns)
    figure = new_figure(figsize=(3.2 * columns, 2.5 * rows + 1.0))
    what = f"each layer's outputs on {len(inputs)} {split_name} examples (eval mode)"
    title = title_figure(figure, "\n".join(filter(None, [headline, what])), TITLE_PT, y=0.995, va="top")
    # a fixed layout, in inches: tight_layout measured every label and took as long as the drawing; the top
    # leaves room for the figure's title and the first row's two-line panel titles
    top = 0.1 + (title.get_text().count("\n") + 1) * TITLE_PT / 72 * 1.25 + 0.45
    height = 2.5 * rows + top - 0.1
    figure.set_size_inches(3.2 * columns, height)
    figure.subplots_adjust(left=0.03, right=0.97, bottom=0.4 / height, top=1 - top / height, hspace=0.55,
                           wspace=0.1)  # fmt: skip
    for index, (name, values) in enumerate(outputs):  # only the panels drawn: an empty one costs as much
        _histogram(figure.add_subplot(rows, columns, index + 1), name, values)
    return save_png(figure, path)  # drawn once, written whole


def _histogram(axis: Any, name: str, values: np.ndarray) -> None:
    """One layer's panel: its outputs' histogram (computed once by numpy, drawn as one artist), titled with
    the layer and its mean, spread and share of exact zeros; a few x ticks and no y ticks (counts of a
    sample say nothing), since every tick label is text to lay out and draw."""
    from matplotlib.ticker import MaxNLocator

    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(finite, bins=BINS) if len(finite) else (np.zeros(1), np.arange(2))
    axis.stairs(counts, edges, fill=True, color="tab:blue")  # one artist, not one bar per bin
    zeros = float(np.mean(finite == 0)) if len(finite) else 0.0
    facts = f"mean {finite.mean():.2g}, std {finite.std():.2g}" if len(finite) else "no finite value"
    if zeros >= 0.01:  # a ReLU's dead or silent units
        facts += f", {zeros:.0%} exactly 0"
    axis.set_title(f"{name}\n{facts}", fontsize=8, y=1.0, pad=4)  # placed: not moved around tick labels
    axis.xaxis.set_major_locator(MaxNLocator(nbins=3))
    axis.tick_params(labelsize=7)
    axis.yaxis.set_visible(False)  # not even drawn empty
