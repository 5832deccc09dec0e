"""Recurrent language models: token ids in, next-token logits out, with the hidden state handed back.

`model=rnn | gru | lstm` picks the cell; the vocabulary size comes from the data (`num_outputs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # LSTMs carry (h, c)


class RecurrentLM(nn.Module):
    """One-hot or embedded tokens -> stacked recurrent layers -> dropout -> a linear head over the vocabulary.

    Runs time-major inside, as torch's recurrent layers do natively; takes and returns batch-major tensors.
    """

    cell: type[nn.RNNBase] = nn.RNN

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        del input_shape  # any number of steps works; the vocabulary is num_outputs
        self.vocab_size = num_outputs
        self.embedding = None if embedding_dim is None else nn.Embedding(num_outputs, embedding_dim)
        self.rnn = self.cell(
            input_size=num_outputs if embedding_dim is None else embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,  # between layers; torch warns on one layer
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_outputs)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        steps = tokens.T  # (T, B)
        if self.embedding is None:
            inputs = F.one_hot(steps, self.vocab_size).float()  # (T, B, V)
        else:
            inputs = self.embedding(steps)  # (T, B, E)
        outputs, state = self.rnn(inputs, state)  # (T, B, H)
        logits = self.head(self.dropout(outputs))  # (T, B, V)
        return logits.transpose(0, 1), state  # (B, T, V)


class RNN(RecurrentLM):
    cell = nn.RNN  # tanh


class GRU(RecurrentLM):
    cell = nn.GRU


class LSTM(RecurrentLM):
    cell = nn.LSTM


def detach_state(state: State | None) -> State | None:
    """Keep the values, drop the graph: gradients stop at the batch boundary (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part.detach() for part in state)
    return state.detach()
