"""Weight initialisation schemes, applied after a model is built (`model.init`)."""

from __future__ import annotations

from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def initialize(model: nn.Module, scheme: str, std: float = 0.01) -> None:
    """Re-initialise every linear and convolution layer; biases start at zero. `default` keeps torch's."""
    if scheme == "default":
        return
    schemes = {
        "normal": lambda weight: nn.init.normal_(weight, mean=0.0, std=std),
        "xavier": nn.init.xavier_uniform_,
        "kaiming": lambda weight: nn.init.kaiming_normal_(weight, nonlinearity="relu"),
    }
    if scheme not in schemes:
        raise ValueError(f"unknown init {scheme!r}; choose from default, {', '.join(schemes)}")
    for module in model.modules():
        if isinstance(module, WEIGHTED):
            schemes[scheme](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
