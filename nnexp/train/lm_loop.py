"""The language-model step, evaluation and generation: train/loop.py with a hidden state to look after."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from nnexp.data.text import Tokenizer, TokenSplit, Vocab
from nnexp.models.recurrent import State, detach_state
from nnexp.train.losses import LossFn
from nnexp.train.metrics import MetricAccumulator

Batch = tuple[torch.Tensor, torch.Tensor]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    carry_state: bool,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    clip_grad_norm: float | None = None,
    on_batch: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
) -> dict[str, float]:
    """One pass over `batches` of (B, T) token ids; returns loss, perplexity and the tokens seen.

    With `carry_state` (sequential batches) each batch starts from the last one's final state,
    detached; otherwise every batch starts from zeros.
    """
    model.train()
    device = next(model.parameters()).device
    running = MetricAccumulator("language_model", device)
    state: State | None = None
    for inputs, targets in batches:
        state = detach_state(state) if carry_state else None
        optimizer.zero_grad(set_to_none=True)
        with autocast():  # bf16 with trainer.precision=bf16, else nothing
            logits, state = model(inputs, state)  # (B, T, V)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        objective = loss if penalty is None else loss + penalty(model)
        objective.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        running.update(logits, targets, loss)
        if on_batch is not None:
            on_batch(loss)
    return {**running.compute(), "tokens": running.count}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: TokenSplit,
    loss_fn: LossFn,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Loss and perplexity over `split` read in order from its start, carrying the state as in training."""
    model.eval()
    device = next(model.parameters()).device
    totals = MetricAccumulator("language_model", device)
    state: State | None = None
    for inputs, targets in itertools.islice(split.batches(batch_size), max_batches):
        with autocast():
            logits, state = model(inputs, state if split.carries_state else None)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        totals.update(logits, targets, loss)
    return totals.compute()


@torch.inference_mode()
def generate(
    model: nn.Module,
    vocab: Vocab,
    tokenizer: Tokenizer,
    prefix: str,
    num_tokens: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> str:
    """`prefix` followed by `num_tokens` predicted tokens: the most likely one (temperature 0) or sampled.

    The prefix goes through the training preprocessing first, so it reads as the model saw text.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    prompt = vocab.encode(tokenizer.tokenize(prefix)) or [0]  # an empty prompt starts from <unk>
    # Warm-up: read the whole prompt once; its last logits predict the first new token.
    logits, state = model(torch.tensor([prompt], device=device), None)
    generated: list[int] = []
    for _ in range(num_tokens):
        last = logits[0, -1]  # (V,)
        if temperature == 0:
            token = int(last.argmax())
        else:
            probabilities = torch.softmax(last.float().cpu() / temperature, dim=0)
            token = int(torch.multinomial(probabilities, 1, generator=generator))
        generated.append(token)
        logits, state = model(torch.tensor([[token]], device=device), state)
    model.train(was_training)
    return tokenizer.join(vocab.decode(prompt + generated))
