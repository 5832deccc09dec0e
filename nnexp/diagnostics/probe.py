"""A look inside the model on a fixed batch of training rows: the loss, per-layer gradient norms, dead ReLUs.

It sees the model as training does (BatchNorm normalises with the batch's statistics), with dropout
off, and changes nothing the training sees: gradients come from `torch.autograd.grad`, not `.grad`;
BatchNorm's running statistics are put back; the random number streams are restored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from nnexp.data import DataBundle
from nnexp.data.tasks import task_of
from nnexp.train.losses import LossFn

# The layers whose gradient norms are recorded: the ones that hold the weights a learner thinks about.
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase, nn.Embedding)

GRAD_NORM = "grad_norm/"  # metrics columns: grad_norm/<layer>, the L2 norm of the layer's gradient
DEAD_RELU = "dead_relu/"  # metrics columns: dead_relu/<relu>, the share of units never active


@dataclass
class ProbeResult:
    loss: float
    inputs: torch.Tensor  # the probe batch, as the model sees it
    grad_norms: dict[str, float] = field(default_factory=dict)  # layer name -> norm, in forward order
    dead_relu: dict[str, float] = field(default_factory=dict)  # ReLU name -> share of units never active
    last_module: nn.Module | None = None  # the last module the forward pass ran: the output layer

    def columns(self) -> dict[str, float]:
        """What goes into the epoch's metrics row."""
        row = {f"{GRAD_NORM}{name}": round(norm, 8) for name, norm in self.grad_norms.items()}
        row.update({f"{DEAD_RELU}{name}": round(share, 4) for name, share in self.dead_relu.items()})
        return row


class Probe:
    """Measures the model on the first `rows` training examples (a language model: its first batch)."""

    def __init__(self, data: DataBundle, rows: int, lm_batch_size: int) -> None:
        self.task = task_of(data.spec.task)
        size = lm_batch_size if self.task.generates_text else rows
        self.inputs, self.targets = next(iter(data.train.batches(size)))

    def measure(self, model: nn.Module, loss_fn: LossFn) -> ProbeResult:
        names = {module: name for name, module in model.named_modules()}
        order: list[nn.Module] = []  # leaf modules, in the order the forward pass ran them
        relu_outputs: dict[str, torch.Tensor] = {}

        def record(module: nn.Module, inputs: tuple, output: object) -> None:
            order.append(module)
            if isinstance(module, nn.ReLU) and isinstance(output, torch.Tensor):
                relu_outputs[names[module]] = output.detach()

        leaves = [module for module in model.modules() if next(module.children(), None) is None]
        hooks = [module.register_forward_hook(record) for module in leaves]
        modes = {module: module.training for module in model.modules()}
        buffers = [buffer.clone() for buffer in model.buffers()]
        device = self.inputs.device
        try:
            # Train mode: BatchNorm as in training (in eval mode its running statistics, barely formed
            # after a few steps, make healthy units look dead), and cuDNN's RNN backward needs it.
            model.train()
            for module in model.modules():
                if isinstance(module, nn.modules.dropout._DropoutNd):
                    module.eval()
            with _random_streams_kept(model, device), torch.enable_grad():
                outputs, _ = self.task.forward(model, self.inputs)
                loss = self.task.loss(loss_fn, outputs, self.targets)
                layers = _layers_in_order(order, names)
                groups = {
                    name: [p for p in module.parameters(recurse=False) if p.requires_grad]
                    for name, module in layers.items()
                }
                flat = [p for group in groups.values() for p in group]
                gradients = torch.autograd.grad(loss, flat, allow_unused=True) if loss.requires_grad else ()
        finally:
            for hook in hooks:
                hook.remove()
            for module, training in modes.items():
                module.training = training
            with torch.no_grad():
                for buffer, saved in zip(model.buffers(), buffers, strict=True):
                    buffer.copy_(saved)

        gradient_of = {id(p): g for p, g in zip(flat, gradients, strict=True) if g is not None}
        grad_norms = {}
        for name, group in groups.items():
            squares = [gradient_of[id(p)].float().square().sum() for p in group if id(p) in gradient_of]
            grad_norms[name] = torch.stack(squares).sum().sqrt().item() if squares else 0.0
        return ProbeResult(
            loss=loss.item(),
            inputs=self.inputs,
            grad_norms=grad_norms,
            # A ReLU on the outputs is a mistake of its own (clipped-logits), not a dead hidden layer.
            dead_relu={
                name: _dead_share(output)
                for name, output in relu_outputs.items()
                if not (order and names[order[-1]] == name)
            },
            last_module=order[-1] if order else None,
        )


def _random_streams_kept(model: nn.Module, device: torch.device) -> contextlib.AbstractContextManager:
    """Dropout between recurrent layers draws random numbers even here; put the streams back after."""
    if any(isinstance(module, nn.RNNBase) and module.dropout > 0 for module in model.modules()):
        return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
    return contextlib.nullcontext()  # forking costs a millisecond, a tenth of a small probe


def _layers_in_order(order: list[nn.Module], names: dict[nn.Module, str]) -> dict[str, nn.Module]:
    layers: dict[str, nn.Module] = {}
    for module in order:
        if isinstance(module, LAYERS) and names[module] not in layers:
            layers[names[module]] = module
    return layers


def _dead_share(output: torch.Tensor) -> float:
    """The share of units (features; channels of a feature map) that were 0 for every probe row."""
    if output.dim() < 2:
        return 0.0
    active = output.transpose(0, 1).reshape(output.shape[1], -1) > 0  # (units, rows x positions)
    return 1.0 - active.any(dim=1).float().mean().item()
