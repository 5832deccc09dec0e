"""Tokens per second of nnexp's language-model training against a hand-written PyTorch loop.

    python benchmarks/lm_throughput.py --text ../shared/data/timemachine.txt --results benchmarks/RESULTS.md

Both sides train the same model (the preset's) on the same (batch, steps) shape in the same process, on
the same number of threads; their epochs alternate, so a change in the machine's load hits both alike.
nnexp runs through `nnexp.runs.run.run` on a config composed by Hydra from the real config files, the
code path of the `nnexp` command. A side's figure is the median over its epochs after the first.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = {"rnn": "time_machine_rnn", "gru": "time_machine_gru"}


# --- the hand-written side: a d2l-style loop with nothing of nnexp in it ----------------------------


class HandLM(nn.Module):
    def __init__(
        self, cell: str, vocab_size: int, hidden_size: int, embedding_dim: int | None, dropout: float
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if embedding_dim else None
        rnn_class = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn_class(embedding_dim or vocab_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x, state=None):
        x = self.embedding(x.T) if self.embedding is not None else F.one_hot(x.T, self.vocab_size).float()
        y, state = self.rnn(x, state)
        return self.head(self.dropout(y.reshape(-1, y.shape[-1]))), state  # (T * B, V)


def hand_written_epoch(
    model, optimizer, corpus, batch_size, num_steps, max_batches, clip
) -> tuple[int, float]:
    """One epoch of sequential batches with the state carried: (tokens, seconds)."""
    offset = int(torch.randint(num_steps + 1, (1,)))
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset : offset + num_tokens].view(batch_size, -1)
    ys = corpus[offset + 1 : offset + 1 + num_tokens].view(batch_size, -1)
    starts = range(0, (xs.shape[1] // num_steps) * num_steps, num_steps)[:max_batches]
    state, tokens, total_loss = None, 0, 0.0
    began = time.perf_counter()
    for start in starts:
        x, y = xs[:, start : start + num_steps], ys[:, start : start + num_steps]
        if state is not None:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits, y.T.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item() * y.numel()  # as d2l's train_epoch_ch8
        tokens += y.numel()
    return tokens, time.perf_counter() - began


# --- the nnexp side: the runner on a config composed from the real config files ----------------------


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nnexp.cli.hydra_hooks import register_resolvers
    from nnexp.paths import CONFIG_DIR

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def nnexp_epochs(overrides: list[str], workdir: Path) -> list[int]:
    """Train with nnexp.runs.run.run; the tokens_per_s column of each epoch."""
    from rich.console import Console

    from nnexp.runs.run import run

    run_dir = Path(tempfile.mkdtemp(prefix="nnexp-run-", dir=workdir))
    run(compose(overrides), run_dir, console=Console(file=io.StringIO()))
    with (run_dir / "metrics.csv").open() as handle:
        return [int(row["tokens_per_s"]) for row in csv.DictReader(handle)]


# --- side by side -----------------------------------------------------------------------------------


def measure(
    model: str, text: Path, rounds: int, epochs: int, max_batches: int, workdir: Path
) -> dict[str, Any]:
    """Alternate `rounds` times: `epochs` epochs of the hand-written loop, then a nnexp run of `epochs`."""
    cfg = compose([f"experiment={PRESETS[model]}", f"data.path={text}"])
    overrides = [
        f"experiment={PRESETS[model]}",
        f"data.path={text}",
        f"trainer.epochs={epochs}",
        f"trainer.max_batches_per_epoch={max_batches}",
        "generation.every=null",
        "generation.num_tokens=0",
        "device=cpu",
    ]
    from nnexp.data.text import load_text

    data = {key: value for key, value in cfg.data.items() if key != "_target_"}
    bundle = load_text(**data)
    corpus = bundle.train.tokens
    threads = cfg.trainer.threads or torch.get_num_threads()
    batch_size, num_steps = cfg.trainer.batch_size, cfg.data.num_steps
    torch.manual_seed(0)
    model_cfg = cfg.model
    hand = HandLM(model, len(bundle.vocab), model_cfg.hidden_size, model_cfg.embedding_dim, model_cfg.dropout)
    optimizer = (
        torch.optim.SGD(hand.parameters(), lr=cfg.optim.lr)
        if "SGD" in cfg.optim._target_
        else torch.optim.Adam(hand.parameters(), lr=cfg.optim.lr)
    )
    hand_rates: list[float] = []
    nnexp_rates: list[float] = []
    for _ in range(rounds):
        torch.set_num_threads(threads)
        rates = []
        for _ in range(epochs):
            tokens, seconds = hand_written_epoch(
                hand, optimizer, corpus, batch_size, num_steps, max_batches, cfg.trainer.clip_grad_norm
            )
            rates.append(tokens / seconds)
        hand_rates += rates[1:]
        nnexp_rates += nnexp_epochs(overrides, workdir)[1:]
    hand_median, nnexp_median = statistics.median(hand_rates), statistics.median(nnexp_rates)
    return {
        "model": model,
        "preset": PRESETS[model],
        "batch": f"{batch_size} x {num_steps}",
        "threads": threads,
        "hand_tokens_per_s": round(hand_median),
        "nnexp_tokens_per_s": round(nnexp_median),
        "ratio": nnexp_median / hand_median,
        "epochs_measured": f"{len(nnexp_rates)} / {len(hand_rates)}",
    }


def markdown(results: list[dict[str, Any]], command: str, load: str) -> str:
    lines = [
        f"## Language-model throughput ({time.strftime('%Y-%m-%d %H:%M %Z')})",
        "",
        f"`{command}`",
        "",
        f"Load average when it started: {load}. Medians over epochs after each run's first.",
        "",
        "| model (preset) | batch | threads | hand-written tokens/s | nnexp tokens/s | nnexp / hand |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} ({r['preset']}) | {r['batch']} | {r['threads']} | {r['hand_tokens_per_s']:,} "
            f"| {r['nnexp_tokens_per_s']:,} | {r['ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_text = Path(os.environ.get("NNEXP_DATA_ROOT", "data")) / "timemachine.txt"
    parser.add_argument("--text", type=Path, default=default_text, help="the book (default: %(default)s)")
    parser.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per side per round")
    parser.add_argument("--max-batches", type=int, default=30, help="batches per epoch")
    parser.add_argument("--results", type=Path, help="append a markdown section to this file")
    args = parser.parse_args()

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory() as workdir:
        results = [
            measure(model, args.text.resolve(), args.rounds, args.epochs, args.max_batches, Path(workdir))
            for model in args.models
        ]
    command = "python benchmarks/lm_throughput.py " + " ".join(
        f"--{key.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for key, v in vars(args).items()
        if key != "results"
    )
    section = markdown(results, command, load)
    print(section)
    if args.results:
        with args.results.open("a") as handle:
            handle.write(("\n" if handle.tell() else "") + section)


if __name__ == "__main__":
    main()
