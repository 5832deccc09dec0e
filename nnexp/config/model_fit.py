"""The model against the data's shape, said as the config's mistake: which key, which layer, the fix.

Only building a model against the data finds these (how many pixels a conv block leaves, what shape
reaches a linear layer); the models raise their plain DoesNotFit, and train/ hands it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnexp.config.layer_list import KEY
from nnexp.errors import ConfigError

if TYPE_CHECKING:
    from nnexp.models.layers import DoesNotFit


def check_model_built(cause: BaseException | None) -> None:
    """ConfigError when a model's builder refused (`cause`, from instantiate) because it does not fit."""
    from nnexp.models.layers import DoesNotFit  # torch: here, not on every command that checks a config

    if isinstance(cause, DoesNotFit):
        message, key = _said(cause)
        raise ConfigError(message, key=key) from None


def _said(problem: DoesNotFit) -> tuple[str, str | None]:
    """(the one line, its key) for each way a model does not fit."""
    shape, detail, kind = problem.shape, problem.detail, problem.problem
    if kind == "model_needs_images":
        return (
            f"{problem.layer} needs images (channels, height, width), and this data's input is {shape}: "
            f"choose an image data set such as data=digits or data=mnist, or model=mlp"
        ), None
    if kind == "block_shrinks":
        return (
            f"model.channels={detail}: block {problem.layer} shrinks the {shape[1]}x{shape[2]} input to "
            f"nothing; use fewer blocks, more padding or model.pool=none"
        ), None
    if kind == "ends_wrong":
        fix = "end the list with flatten, linear" if len(shape) > 1 else "end the list with a bare linear"
        outputs = problem.outputs
        return (
            f"{KEY} ends with {_show(shape)} per example, and this data needs {outputs} "
            f"output{'s' if outputs != 1 else ''}: " + fix
        ), KEY
    label = f"{KEY} layer {problem.layer.position} ({problem.layer.name})"
    arriving = f"{_show(shape)} per example"
    said = {
        "cannot_build": f"{label} cannot be built: {detail}; change its options",
        "needs_vector": f"{label} gets {arriving} and needs a vector: put flatten before it",
        "normalises": f"{label} gets {arriving}: it normalises a vector of features or images "
        f"(channels, height, width); move it after a linear or a conv layer",
        "needs_images": f"{label} needs images (channels, height, width) and gets {arriving}: "
        + (
            "choose image data such as data=digits, or use linear layers"
            if len(shape) == 1
            else "move it before flatten"
        ),
        "cannot_take": f"{label} cannot take {_show(shape)} per example ({detail}): "
        f"change its options or the layers before it",
        "shrinks": f"{label} shrinks {_show(shape)} to nothing: use more padding, a smaller kernel, "
        f"or fewer layers before it",
    }
    return said[kind], KEY


def _show(shape: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in shape) if len(shape) > 1 else f"{shape[0]} features"
