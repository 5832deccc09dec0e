"""Text from a language model: a prefix continued token by token, greedily or sampled."""

from __future__ import annotations

import torch
from torch import nn

from nnexp.data.text import Tokenizer, Vocab


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
