"""Weight initialisation schemes, applied after a model is built (`model.init`, `model.init_bias`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# What each scheme draws the weights of every linear and convolution layer from.
WEIGHT_SCHEMES: dict[str, Callable[[torch.Tensor, float], object]] = {
    "normal": lambda weight, std: nn.init.normal_(weight, mean=0.0, std=std),
    "xavier": lambda weight, std: nn.init.xavier_uniform_(weight),
    "xavier_normal": lambda weight, std: nn.init.xavier_normal_(weight),
    "kaiming": lambda weight, std: nn.init.kaiming_normal_(weight, nonlinearity="relu"),
    # torch's defaults, as the lectures call it: leaky_relu with slope 0 has ReLU's gain, so = kaiming.
    "kaiming_normal": lambda weight, std: nn.init.kaiming_normal_(weight),
}
INITS = ("default", *WEIGHT_SCHEMES)
BIAS_RULES = ("keep", "zero", "normal")


def default_bias_rule(scheme: str) -> str:
    """torch's own init keeps its biases; every other scheme starts them at zero (as nnexp always has)."""
    return "keep" if scheme == "default" else "zero"


def initialize(model: nn.Module, scheme: str, std: float = 0.01, bias: str | None = None) -> None:
    """Re-initialise every linear and convolution layer with `scheme`, and its bias by `bias`.

    `default` keeps torch's weights; `bias` None is the scheme's own rule (`default_bias_rule`):
    keep (torch's draw), zero, or normal (N(0, std), as `init=normal` draws the weights).
    """
    if scheme != "default" and scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"unknown init {scheme!r}; choose from {', '.join(INITS)}")
    bias = bias or default_bias_rule(scheme)
    if bias not in BIAS_RULES:
        raise ValueError(f"unknown init_bias {bias!r}; choose from {', '.join(BIAS_RULES)}")
    for module in model.modules():
        if not isinstance(module, WEIGHTED):
            continue
        if scheme != "default":
            WEIGHT_SCHEMES[scheme](module.weight, std)
        if module.bias is None or bias == "keep":
            continue
        if bias == "zero":
            nn.init.zeros_(module.bias)
        else:
            nn.init.normal_(module.bias, mean=0.0, std=std)
